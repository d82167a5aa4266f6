"""Bulk uploads as background jobs, and the jobs' status.

POST /api/items/batch/ takes many files (multipart, repeated `file` fields) or many texts (JSON) and
answers 202 at once with the job's URL; GET /api/jobs/<id>/ says how far it got and how each input
ended. A single upload (POST /api/items/) stays synchronous.
"""

from django.conf import settings
from django.http import Http404
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema, extend_schema_field, inline_serializer
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.reverse import reverse
from rest_framework.views import APIView

from search.api.parsers import JSONParser
from search.api.serializers import ItemCreateSerializer, JSONObjectField, TagsField
from search.jobs import submit
from search.models import Job, JobInput


class JobInputSerializer(serializers.ModelSerializer):
    item_url = serializers.SerializerMethodField()

    class Meta:
        model = JobInput
        fields = ["position", "name", "outcome", "item", "item_url", "error"]

    def get_item_url(self, entry) -> str | None:
        if entry.item_id is None:
            return None
        return reverse("item-detail", args=[entry.item_id], request=self.context.get("request"))


class JobSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField()
    inputs = serializers.SerializerMethodField()

    class Meta:
        model = Job
        fields = ["id", "url", "kind", "status", "total", "processed", "succeeded", "failed", "attempts", "error",
                  "cancel_requested", "created_at", "started_at", "finished_at", "params", "inputs"]

    def get_url(self, job) -> str:
        return reverse("api-job", args=[job.pk], request=self.context.get("request"))

    @extend_schema_field(JobInputSerializer(many=True))
    def get_inputs(self, job):
        if job.kind != Job.Kind.INGEST:
            return []
        rows = job.inputs.only("position", "name", "outcome", "item_id", "error").order_by("position")
        return JobInputSerializer(rows, many=True, context=self.context).data


class BatchFieldsSerializer(serializers.Serializer):
    """Fields applied to every file of a multipart batch."""

    tags = TagsField(required=False, default=list)
    collection = serializers.CharField(required=False, allow_blank=True, max_length=100, default="")
    metadata = JSONObjectField(required=False, default=dict)


def _item_fields(data: dict) -> dict:
    return {key: data[key] for key in ("title", "caption", "tags", "collection", "metadata") if key in data}


def can_see(user, job: Job) -> bool:
    return user.is_authenticated and (job.owner_id == user.pk or user.has_perm("search.view_job"))


class BatchUpload(APIView):
    """Store many items in the background: multipart with repeated `file` fields, or JSON texts."""

    throttle_scope = "write"
    parser_classes = [JSONParser, MultiPartParser, FormParser]

    @extend_schema(
        request={"application/json": inline_serializer("BatchTexts", {"items": ItemCreateSerializer(many=True)}),
                 "multipart/form-data": inline_serializer("BatchFiles", {
                     "file": serializers.ListField(child=serializers.FileField()),
                     "tags": TagsField(required=False), "collection": serializers.CharField(required=False)})},
        responses={202: JobSerializer}, summary="Upload many items as a background job",
    )
    def post(self, request):
        limit = settings.SEARCH_MAX_BATCH_ITEMS
        if hasattr(request.data, "getlist"):  # multipart or form
            files = request.FILES.getlist("file")
            if not files:
                return _bad({"file": ["send one or more files as repeated 'file' fields (or JSON texts)"]})
            if len(files) > limit:
                return _bad({"file": [f"a batch holds at most {limit} inputs; got {len(files)}"]})
            common = BatchFieldsSerializer(data={key: request.data.get(key) for key in ("tags", "collection",
                                                                                         "metadata")
                                                 if request.data.get(key) is not None})
            common.is_valid(raise_exception=True)
            too_big = [f.name for f in files if f.size > settings.SEARCH_MAX_UPLOAD_BYTES]
            if too_big:
                message = f"over {settings.SEARCH_MAX_UPLOAD_BYTES:,} bytes: {', '.join(too_big[:10])}"
                return Response({"file": [message]}, status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
            inputs = [{"name": f.name or "", "data": f.read(), "fields": dict(common.validated_data)} for f in files]
        else:
            entries = request.data.get("items") if isinstance(request.data, dict) else request.data
            if not isinstance(entries, list) or not entries:
                return _bad({"items": ["send a JSON list of items, e.g. {\"items\": [{\"text\": \"...\"}]}"]})
            if len(entries) > limit:
                return _bad({"items": [f"a batch holds at most {limit} inputs; got {len(entries)}"]})
            inputs, errors = [], {}
            for index, entry in enumerate(entries):
                if not isinstance(entry, dict) or "file" in entry:
                    errors[str(index)] = ["each item is an object with a 'text' (files go in a multipart batch)"]
                    continue
                serializer = ItemCreateSerializer(data=entry)
                if not serializer.is_valid():
                    errors[str(index)] = serializer.errors
                    if len(errors) >= 20:  # enough to fix the client; the body stays small
                        break
                    continue
                data = serializer.validated_data
                inputs.append({"name": data.get("title", "")[:300], "text": data["text"], "fields": _item_fields(data)})
            if errors:
                return _bad({"items": errors})
        job = submit.submit_ingest(inputs, owner_id=request.user.pk)
        body = JobSerializer(job, context={"request": request}).data
        return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": body["url"]})


def _bad(errors: dict) -> Response:
    return Response(errors, status=status.HTTP_400_BAD_REQUEST)


class JobDetail(APIView):
    """A background job: status (queued, running, done, failed, cancelled), counts and each input's outcome."""

    permission_classes = [IsAuthenticated]
    throttle_classes = []  # polling a job's progress costs one indexed read

    @extend_schema(responses=JobSerializer)
    def get(self, request, pk: int):
        job = _visible_job(request, pk)
        return Response(JobSerializer(job, context={"request": request}).data)


class JobCancel(APIView):
    """Cancel a job: a queued one at once, a running one after its current chunk."""

    permission_classes = [IsAuthenticated]
    throttle_scope = "write"

    @extend_schema(request=None, responses=JobSerializer)
    def post(self, request, pk: int):
        job = _visible_job(request, pk)
        if not (job.owner_id == request.user.pk or request.user.has_perm("search.change_job")):
            return Response({"detail": "only the job's owner or a curator may cancel it"}, status=403)
        submit.cancel(job)
        job.refresh_from_db()
        return Response(JobSerializer(job, context={"request": request}).data)


def _visible_job(request, pk: int) -> Job:
    job = get_object_or_404(Job, pk=pk)
    if not can_see(request.user, job):
        raise Http404("no such job")  # like a missing id: no one learns which jobs exist
    return job
