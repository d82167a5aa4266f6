from django.conf import settings
from django.db.models import Count, Q
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from search.api.parsers import JSONParser
from search.api.search_params import search_params
from search.api.serializers import (
    ItemCreateSerializer,
    ItemSerializer,
    SearchBodySerializer,
    SearchPageSerializer,
    SearchParamsSerializer,
    SpaceSerializer,
)
from search.engine import access
from search.engine.query_vectors import QueryPart
from search.engine.requests import Filters, SearchRequest
from search.engine.search_service import search
from search.engine.similar import more_like_this
from search.ingest.ingester import Ingester, IngestInput
from search.jobs.submit import submit_extract_after_ingest
from search.models import EmbeddingSpace, Item
from search.storage import spaces


def _filters(params: dict) -> Filters:
    return Filters(
        modalities=params["modality"], tags=params["tag"], collection=params["collection"],
        metadata=params["metadata"], created_after=params["created_after"], created_before=params["created_before"],
        taken_after=params.get("taken_after"), taken_before=params.get("taken_before"),
    )


def _run_search(request, params: dict, upload=None):
    parts = [
        QueryPart(text=p.get("text"), item_id=p.get("item"), vector=p.get("vector"), weight=p["weight"])
        for p in params.get("parts", [])
    ]
    if params.get("q"):
        parts.insert(0, QueryPart(text=params["q"]))
    if upload is not None:
        parts.append(QueryPart(data=upload.read(), weight=params.get("weight", 1.0)))
    page = search(SearchRequest(
        parts=parts, filters=_filters(params), space=params["space"] or None, k=params["k"], page=params["page"],
        mode=params["mode"], exact=params["exact"], viewer=request.user, min_relevance=params["min_relevance"],
        include_weak=params["include_weak"], sort=params["sort"], facets=params["facets"],
    ))
    return Response(SearchPageSerializer(page, context={"request": request}).data)


def _query_params(request) -> dict:
    data = {key: request.query_params.get(key) for key in request.query_params if key not in ("modality", "tag")}
    data["modality"] = request.query_params.getlist("modality")
    data["tag"] = request.query_params.getlist("tag")
    if len(request.query_params.getlist("facets")) > 1:
        data["facets"] = request.query_params.getlist("facets")
    return data


class SearchView(APIView):
    """Search across modalities: GET with a text query, or POST with a weighted query or a file."""

    throttle_scope = "search"
    read_only_post = True
    parser_classes = [JSONParser, MultiPartParser, FormParser]

    @extend_schema(
        parameters=[SearchParamsSerializer(partial=True)],
        responses=SearchPageSerializer,
        summary="Search with a text query",
    )
    def get(self, request):
        params = search_params(_query_params(request), body=False)
        if not params.get("q"):
            return Response({"q": ["give a query text, e.g. ?q=red+circle"]}, status=status.HTTP_400_BAD_REQUEST)
        return _run_search(request, params)

    @extend_schema(request=SearchBodySerializer, responses=SearchPageSerializer,
                   summary="Search with a weighted query (JSON) or a file (multipart)")
    def post(self, request):
        data = request.data
        if hasattr(data, "getlist"):
            data = {key: data.get(key) for key in data if key not in ("modality", "tag")} | {
                "modality": data.getlist("modality"), "tag": data.getlist("tag")}
        params = search_params(data, body=True)
        upload = params.get("file")
        if upload is not None and upload.size > settings.SEARCH_MAX_UPLOAD_BYTES:
            return Response({"file": [f"the file is larger than {settings.SEARCH_MAX_UPLOAD_BYTES:,} bytes"]},
                            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
        if not (params.get("q") or params["parts"] or upload):
            return Response({"non_field_errors": ["give a query: 'q', 'parts' or a 'file'"]},
                            status=status.HTTP_400_BAD_REQUEST)
        return _run_search(request, params, upload)


# Characters of each text a list of items carries (`text_truncated` says when there is more).
LIST_TEXT_CHARS = 2000


class ItemViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.UpdateModelMixin,
                  mixins.DestroyModelMixin, viewsets.GenericViewSet):
    """Stored items. POST stores a file (multipart) or a text (JSON); the same content twice is one item."""

    serializer_class = ItemSerializer
    parser_classes = [JSONParser, MultiPartParser, FormParser]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_serializer_context(self):
        context = super().get_serializer_context()
        if self.action == "list":
            context["list_text_chars"] = LIST_TEXT_CHARS
        return context

    def get_queryset(self):
        items = access.visible(Item.objects.select_related("owner").order_by("-created_at", "-id"), self.request.user)
        params = self.request.query_params
        if params.getlist("modality"):
            items = items.filter(modality__in=params.getlist("modality"))
        if params.get("collection"):
            items = items.filter(collection=params["collection"])
        for tag in params.getlist("tag"):
            items = items.filter(tags__contains=[tag.lower()])
        return items

    def get_throttles(self):
        if self.action == "similar":
            self.throttle_scope = "search"
        elif self.request.method in ("GET", "HEAD", "OPTIONS"):
            return []
        else:
            self.throttle_scope = "write"
        return super().get_throttles()

    @extend_schema(request=ItemCreateSerializer, responses={201: ItemSerializer, 200: ItemSerializer})
    def create(self, request):
        serializer = ItemCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        upload = data.get("file")
        outcome = Ingester().ingest(IngestInput(
            text=data.get("text"), data=upload.read() if upload else None, title=data["title"],
            caption=data["caption"], tags=data["tags"], collection=data["collection"], metadata=data["metadata"],
            owner_id=request.user.pk, source="api", filename=upload.name if upload else "",
        ))
        if outcome.status == "present" and not access.can_view(request.user, outcome.item):
            # Nothing of an item the caller may not see: not its id, title, owner or flags.
            return Response({"detail": "this content cannot be stored: it is already in the collection",
                             "code": "duplicate"}, status=status.HTTP_409_CONFLICT)
        if outcome.status == "added":
            submit_extract_after_ingest([outcome.item], owner_id=request.user.pk)  # its words, in the background
        code = status.HTTP_201_CREATED if outcome.status == "added" else status.HTTP_200_OK
        return Response(ItemSerializer(outcome.item, context={"request": request}).data, status=code)

    def perform_destroy(self, instance):
        media, preview = instance.media.name, instance.preview.name
        instance.delete()
        for name in (media, preview):
            if name:
                instance.media.storage.delete(name)

    @extend_schema(
        parameters=[
            OpenApiParameter("k", int, description="results per page (default 10)"),
            OpenApiParameter("page", int),
            OpenApiParameter("modality", str, many=True),
        ],
        responses=SearchPageSerializer,
        summary="Items most like this one",
    )
    @action(detail=True, methods=["get"])
    def similar(self, request, pk=None):
        item = self.get_object()
        serializer = SearchParamsSerializer(data=_query_params(request))
        serializer.is_valid(raise_exception=True)
        params = serializer.validated_data
        page = more_like_this(item.pk, k=params["k"], page=params["page"], filters=_filters(params),
                              space=params["space"] or None, viewer=request.user)
        return Response(SearchPageSerializer(page, context={"request": request}).data)


class SpaceList(generics.ListAPIView):
    """The embedding spaces, their encoder identities, dimensions, modalities and item counts."""

    serializer_class = SpaceSerializer
    pagination_class = None

    def get_queryset(self):
        usable = [space.pk for space in spaces.registered_spaces()]
        return EmbeddingSpace.objects.filter(pk__in=usable).annotate(
            item_count=Count("embeddings", filter=Q(embeddings__segment_start__isnull=True,
                                                    embeddings__item__hidden=False))
        )
