from django.contrib import admin
from django.urls import include, path

from search import views

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("media/<path:path>", views.media, name="media"),
    path("admin/", admin.site.urls),
    path("api/", include("search.api.urls")),
]
