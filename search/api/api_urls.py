from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from search.api import job_views, views

router = DefaultRouter()
router.register("items", views.ItemViewSet, basename="item")

urlpatterns = [
    path("search/", views.SearchView.as_view(), name="api-search"),
    path("spaces/", views.SpaceList.as_view(), name="api-spaces"),
    # Before the router, whose item detail route would take "batch" for an id.
    path("items/batch/", job_views.BatchUpload.as_view(), name="api-items-batch"),
    path("jobs/<int:pk>/", job_views.JobDetail.as_view(), name="api-job"),
    path("jobs/<int:pk>/cancel/", job_views.JobCancel.as_view(), name="api-job-cancel"),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("", include(router.urls)),
]
