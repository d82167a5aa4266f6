from django.contrib import admin
from django.urls import path

from search import views

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("media/<path:path>", views.media, name="media"),
    path("admin/", admin.site.urls),
]
