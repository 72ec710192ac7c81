from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularSwaggerSplitView

from archive.urls import api_urlpatterns as archive_api_urlpatterns
from tracker import api
from tracker.urls import api_urlpatterns
from tracker.views import language

# The schema and its docs need a login (any role): a hospital network keeps even the shape of
# its systems to its own staff. The docs page loads Swagger UI from this site (sidecar), no CDN,
# and its settings script as a file (the split view), as the Content-Security-Policy requires.
docs_view = login_required(SpectacularSwaggerSplitView.as_view(url_name="api-schema"))

urlpatterns = [
    path("admin/", admin.site.urls),
    path("login/", language.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    # Before Django's own: the language a logged-in person picks is remembered for them.
    path("i18n/setlang/", language.set_language, name="set_language"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("api/v1/", include(api_urlpatterns)),
    path("api/v1/", include(archive_api_urlpatterns)),
    path("api/schema/", api.SchemaApi.as_view(), name="api-schema"),
    path("api/docs/", docs_view, name="api-docs"),
    # After every API route: any other address under /api/ is a JSON 404, whatever DEBUG says.
    re_path(r"^api/", api.not_found),
    path("", include("tracker.urls")),
    path("", include("archive.urls")),
]

handler400 = "tracker.views.bad_request"
handler404 = "tracker.views.page_not_found"
handler500 = "tracker.views.server_error"
