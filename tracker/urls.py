from django.urls import path

from . import api, views
from .api import audit as audit_api
from .api import flags as flags_api
from .api import handovers as handovers_api
from .api import inventory as inventory_api
from .api import loan_requests as loan_requests_api
from .api import signatures as signatures_api
from .views import actions as actions_views
from .views import audit as audit_views
from .views import exports as exports_views
from .views import flags as flags_views
from .views import handovers as handovers_views
from .views import home as home_views
from .views import inventory as inventory_views
from .views import labels as labels_views
from .views import loan_requests as loan_requests_views

api_urlpatterns = [
    path("media/", api.MediaListApi.as_view(), name="api-media-list"),
    path("media/<str:code>/", api.MediaDetailApi.as_view(), name="api-media-detail"),
    path("media/<str:code>/chain/", api.MediaChainApi.as_view(), name="api-media-chain"),
    path("media/<str:code>/seen/", api.MediaSeenApi.as_view(), name="api-media-seen"),
    path("media/<str:code>/retire/", api.MediaRetireApi.as_view(), name="api-media-retire"),
    path("locations/", api.LocationListApi.as_view(), name="api-location-list"),
    path("locations/<str:code>/", api.LocationDetailApi.as_view(), name="api-location-detail"),
    path("tags/", api.TagListApi.as_view(), name="api-tag-list"),
    path("tags/bind/", api.TagBindApi.as_view(), name="api-tag-bind"),
    path("tags/<str:uid>/unbind/", api.TagUnbindApi.as_view(), name="api-tag-unbind"),
    path("loans/", api.LoanListApi.as_view(), name="api-loan-list"),
    path("loans/<int:pk>/", api.LoanDetailApi.as_view(), name="api-loan-detail"),
    path("loans/<int:pk>/return/", api.LoanReturnApi.as_view(), name="api-loan-return"),
    path("transfers/", api.TransferListApi.as_view(), name="api-transfer-list"),
    path("ledger/verify/", api.LedgerVerifyApi.as_view(), name="api-ledger-verify"),
    path("scans/", api.ScanIngestApi.as_view(), name="api-scans"),
    *loan_requests_api.urlpatterns,
    *flags_api.urlpatterns,
    *inventory_api.urlpatterns,
    *handovers_api.urlpatterns,
    *signatures_api.urlpatterns,
    *audit_api.urlpatterns,
]

urlpatterns = [
    *actions_views.urlpatterns,  # /media/new/ (no item may be called "new": media_register)
    path("", views.media_search, name="media-search"),
    path("media/<str:code>/", views.media_detail, name="media-detail"),
    path("t/", views.tag_landing, name="tag-landing"),
    path("station/<str:name>/", views.station, name="station"),
    path("station/<str:name>/configure/", views.station_configure, name="station-configure"),
    path("station/<str:name>/scan/", views.station_scan, name="station-scan"),
    path("station/<str:name>/undo/", views.station_undo, name="station-undo"),
    path("station/<str:name>/events/", views.station_events, name="station-events"),
    path("station/<str:name>/bind/", views.station_bind, name="station-bind"),
    *loan_requests_views.urlpatterns,
    *flags_views.urlpatterns,
    *inventory_views.urlpatterns,
    *handovers_views.urlpatterns,
    *exports_views.urlpatterns,
    *home_views.urlpatterns,
    *labels_views.urlpatterns,
    *audit_views.urlpatterns,
]
