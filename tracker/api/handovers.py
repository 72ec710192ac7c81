"""Hand-overs API (being built)."""
urlpatterns: list = []
