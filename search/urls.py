from django.contrib import admin
from django.urls import include, path

from search import views
from search.health import healthz
from search.metrics import metrics_view

urlpatterns = [
    path("", views.home, name="home"),
    path("results/", views.results, name="search-results"),
    path("items/<int:pk>/", views.item_detail, name="item"),
    path("map/", views.map_view, name="map"),
    path("map/data/", views.map_data, name="map-data"),
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics_view, name="metrics"),
    path("media/<path:path>", views.media, name="media"),
    path("admin/", admin.site.urls),
    path("api/", include("search.api.urls")),
]

handler400 = "search.error_views.bad_request"
handler404 = "search.error_views.not_found"
handler500 = "search.error_views.server_error"
