from django.contrib import admin
from django.urls import include, path

from search import views

urlpatterns = [
    path("", views.home, name="home"),
    path("results/", views.results, name="search-results"),
    path("items/<int:pk>/", views.item_detail, name="item"),
    path("map/", views.map_view, name="map"),
    path("healthz", views.healthz, name="healthz"),
    path("media/<path:path>", views.media, name="media"),
    path("admin/", admin.site.urls),
    path("api/", include("search.api.urls")),
]

handler400 = "search.error_views.bad_request"
handler404 = "search.error_views.not_found"
handler500 = "search.error_views.server_error"
