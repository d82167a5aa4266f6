from django.contrib import admin
from django.urls import include, path

from search.runtime.healthz import healthz
from search.runtime.metrics import metrics_view
from search.web import file_serving, pages

urlpatterns = [
    path("", pages.home, name="home"),
    path("results/", pages.results, name="search-results"),
    path("items/<int:pk>/", pages.item_detail, name="item"),
    path("map/", pages.map_view, name="map"),
    path("map/data/", pages.map_data, name="map-data"),
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics_view, name="metrics"),
    path("media/<path:path>", file_serving.media, name="media"),
    path("admin/", admin.site.urls),
    path("api/", include("search.api.api_urls")),
]

handler400 = "search.web.error_pages.bad_request"
handler404 = "search.web.error_pages.not_found"
handler500 = "search.web.error_pages.server_error"
