"""Hand-over pages (being built)."""
urlpatterns: list = []
