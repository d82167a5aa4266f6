from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from search.api import views

router = DefaultRouter()
router.register("items", views.ItemViewSet, basename="item")

urlpatterns = [
    path("search/", views.SearchView.as_view(), name="api-search"),
    path("spaces/", views.SpaceList.as_view(), name="api-spaces"),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("", include(router.urls)),
]
