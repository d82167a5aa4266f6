import json
import math

from django.conf import settings
from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers, status
from rest_framework.exceptions import APIException

from search.engine import access
from search.engine.requests import FACETS, MODES, SORTS
from search.ingest import extraction, revise
from search.ingest.ingester import clean_tags
from search.ingest.prepare import clean_text, describe_all
from search.media import MediaRejected, media_formats
from search.models import EmbeddingSpace, Item, Modality
from search.runtime import json_input
from search.storage import spaces


class Conflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "duplicate"
    default_detail = "this content is stored already"

class BoundedListField(serializers.ListField):
    """A list whose length is checked before any of its elements: 300,000 bad elements cost one comparison,
    not 300,000 validations and an error body that lists each of them."""

    def to_internal_value(self, data):
        if isinstance(data, list | tuple) and self.max_length is not None and len(data) > self.max_length:
            self.fail("max_length", max_length=self.max_length)
        return super().to_internal_value(data)


class VectorField(BoundedListField):
    """A raw query vector. A list of plain JSON numbers (what clients send) is checked in one pass; anything
    else gets the per-element validation and messages of a list of floats."""

    def __init__(self, **kwargs):
        kwargs.setdefault("child", serializers.FloatField())
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if isinstance(data, list) and (self.max_length is None or len(data) <= self.max_length) \
                and all(type(x) is float or type(x) is int for x in data):
            if not data and not self.allow_empty:
                self.fail("empty")
            try:
                values = [float(x) for x in data]
            except OverflowError:  # an integer past float's range
                values = [math.inf]
            if not all(map(math.isfinite, values)):
                raise serializers.ValidationError("vector components must be finite numbers")
            return values
        return super().to_internal_value(data)


class TagsField(BoundedListField):
    """A list of tags; multipart forms may send one comma-separated string instead."""

    child = serializers.CharField(max_length=64)

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 50)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if isinstance(data, str):
            data = [part for part in data.split(",") if part.strip()]
        elif hasattr(data, "getlist"):
            data = [part for value in data.getlist(self.field_name) for part in str(value).split(",") if part.strip()]
        return super().to_internal_value(data)

    def get_value(self, dictionary):
        if hasattr(dictionary, "getlist") and self.field_name in dictionary:
            values = dictionary.getlist(self.field_name)
            return values[0] if len(values) == 1 else values
        return super().get_value(dictionary)


class JSONObjectField(serializers.JSONField):
    """A JSON object (multipart forms send it as a JSON string)."""

    def to_internal_value(self, data):
        if isinstance(data, str):
            if len(data) > 20_000:
                raise serializers.ValidationError("is larger than 20,000 characters of JSON")
            try:
                data = json_input.loads(data)
            except json_input.UntrustedJSONError as exc:
                raise serializers.ValidationError(f"must be a JSON object: {exc}") from None
        if not isinstance(data, dict):
            raise serializers.ValidationError("must be a JSON object")
        try:
            # Bodies are checked by the parser already; a dict from elsewhere (a form) is checked here.
            json_input.check(data)
        except json_input.UntrustedJSONError as exc:
            raise serializers.ValidationError(str(exc)) from None
        encoded = json.dumps(data)
        if len(encoded) > 20_000:
            raise serializers.ValidationError("is larger than 20,000 characters of JSON")
        if "\\u0000" in encoded:
            raise serializers.ValidationError("cannot contain NUL characters")
        return data


def _media_url(request, field) -> str | None:
    if not field:
        return None
    url = reverse("media", args=[field.name])
    return request.build_absolute_uri(url) if request else url


class ItemSerializer(serializers.ModelSerializer):
    tags = TagsField(required=False)
    metadata = JSONObjectField(required=False)
    media_url = serializers.SerializerMethodField()
    preview_url = serializers.SerializerMethodField()
    owner = serializers.CharField(source="owner.username", read_only=True, allow_null=True, default=None)
    text_length = serializers.SerializerMethodField(help_text="characters of the whole text")
    text_truncated = serializers.SerializerMethodField(
        help_text="true in a list when `text` holds only the start of a long text (GET the item for all of it)")
    extraction = serializers.SerializerMethodField(
        help_text="where the words read from inside it are (GET the item): the lines of text in a picture or scanned "
                  "page with their boxes (pixels) and confidences, or the spoken words with their times (seconds)")

    class Meta:
        model = Item
        fields = [
            "id", "modality", "title", "text", "text_length", "text_truncated", "tags", "collection", "metadata",
            "hidden", "pinned",
            "mime_type", "byte_size", "sha256", "width", "height", "duration", "sample_rate", "taken_at",
            "embedding_status", "embedding_error", "media_url", "preview_url", "owner", "created_at", "updated_at",
            "extraction_status", "extraction_error", "extracted_text", "extraction",
        ]
        read_only_fields = [
            "id", "modality", "mime_type", "byte_size", "sha256", "width", "height", "duration", "sample_rate",
            "taken_at", "embedding_status", "embedding_error", "created_at", "updated_at",
            "extraction_status", "extraction_error",
        ]
        extra_kwargs = {"extracted_text": {
            "required": False, "help_text": "the words read from inside a picture, scan or recording; a curator's "
                                            "correction (PATCH) is searched and embedded again at once"}}

    def get_media_url(self, item) -> str | None:
        return _media_url(self.context.get("request"), item.media)

    def get_preview_url(self, item) -> str | None:
        return _media_url(self.context.get("request"), item.preview)

    def validate_text(self, value):
        if self.instance is not None and self.instance.modality == Modality.TEXT:
            # The body of a text item: its hash and vectors follow it (search.ingest.revise), in update().
            try:
                return clean_text(value, what="text")
            except MediaRejected as exc:
                raise serializers.ValidationError(str(exc)) from None
        if not value.strip():
            return ""
        # The same cleaning and cap as a caption given at upload: an edit is no way around them.
        try:
            return clean_text(value, what="caption")
        except MediaRejected as exc:
            raise serializers.ValidationError(str(exc)) from None

    def validate_tags(self, value):
        return clean_tags(value)

    def validate_extracted_text(self, value):
        if self.instance is None or self.instance.extraction_status == "none":
            raise serializers.ValidationError("only the words read from a picture, scan or recording can be corrected")
        if self.instance.extraction_status == "pending":
            raise serializers.ValidationError("its words are being read; correct them when that is done")
        if len(value) > settings.SEARCH_MAX_TEXT_CHARS:
            raise serializers.ValidationError(f"at most {settings.SEARCH_MAX_TEXT_CHARS:,} characters")
        return value.replace("\x00", "")

    def update(self, instance, validated_data):
        words = validated_data.pop("extracted_text", None)
        if words is not None:
            try:
                extraction.correct(instance, words)
            except extraction.ExtractionFailed as exc:
                raise serializers.ValidationError({"extracted_text": [str(exc)]}) from None
            instance.refresh_from_db()
        text = validated_data.pop("text", None)
        if text is not None and instance.modality == Modality.TEXT:
            try:
                instance = revise.replace_text(instance, text)
            except revise.DuplicateContent as exc:
                raise Conflict(str(exc)) from None
            except MediaRejected as exc:
                raise serializers.ValidationError({"text": [str(exc)]}) from None
        elif text is not None:
            validated_data["text"] = text
        return super().update(instance, validated_data)

    def validate(self, attrs):
        request = self.context.get("request")
        if ({"hidden", "pinned"} & attrs.keys()) and not (request and access.can_curate(request.user)):
            raise serializers.ValidationError({"hidden": ["hiding and pinning need the permission to change items"]})
        return attrs

    def to_representation(self, item):
        data = super().to_representation(item)
        request = self.context.get("request")
        if not access.can_see_owner(request.user if request else None, item):
            data["owner"] = None
        # A list holds the start of each text (a document may be a million characters); the item itself all of it.
        if data["text_truncated"]:
            data["text"] = item.text[:self.context["list_text_chars"]]
        return data

    def get_text_length(self, item) -> int:
        return len(item.text)

    def get_extraction(self, item) -> dict | None:
        # In a list, none (it is read on its own, and a recording's words may be many); the item itself has it.
        if self.context.get("list_text_chars") or item.extraction_status != "done":
            return None
        return item.extraction

    def get_text_truncated(self, item) -> bool:
        limit = self.context.get("list_text_chars")
        return bool(limit) and len(item.text) > limit


class ItemCreateSerializer(serializers.Serializer):
    file = serializers.FileField(required=False, help_text=f"{describe_all()}, recognised by its content")
    text = serializers.CharField(required=False, allow_blank=False, trim_whitespace=True,
                                 help_text="the body of a text item (instead of a file)")
    title = serializers.CharField(required=False, allow_blank=True, max_length=300, default="")
    caption = serializers.CharField(required=False, allow_blank=True, default="")
    tags = TagsField(required=False, default=list)
    collection = serializers.CharField(required=False, allow_blank=True, max_length=100, default="")
    metadata = JSONObjectField(required=False, default=dict)

    def validate(self, attrs):
        if ("file" in attrs) == ("text" in attrs):
            raise serializers.ValidationError({"non_field_errors": ["send exactly one of 'file' or 'text'"]})
        upload = attrs.get("file")
        if upload is not None and upload.size > settings.SEARCH_MAX_UPLOAD_BYTES:
            raise serializers.ValidationError(
                {"file": [f"the file is {upload.size:,} bytes; the limit is {settings.SEARCH_MAX_UPLOAD_BYTES:,}"]}
            )
        return attrs


class QueryPartListSerializer(serializers.ListSerializer):
    """The parts of a query: their number is checked before any part is validated."""

    def to_internal_value(self, data):
        limit = settings.SEARCH_MAX_QUERY_PARTS
        if isinstance(data, list | tuple) and len(data) > limit:
            raise serializers.ValidationError(f"a query has at most {limit} parts; got {len(data)}")
        return super().to_internal_value(data)


class QueryPartSerializer(serializers.Serializer):
    text = serializers.CharField(required=False, max_length=10_000)
    item = serializers.IntegerField(required=False, min_value=1)
    vector = VectorField(required=False, max_length=16_000)
    weight = serializers.FloatField(required=False, default=1.0, min_value=-100, max_value=100)

    def validate(self, attrs):
        given = [key for key in ("text", "item", "vector") if key in attrs]
        if len(given) != 1:
            raise serializers.ValidationError("each part needs exactly one of 'text', 'item' or 'vector'")
        return attrs

    class Meta:
        list_serializer_class = QueryPartListSerializer


class FacetsField(BoundedListField):
    """Facet names, repeated or comma-separated."""

    child = serializers.ChoiceField(choices=list(FACETS))

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", len(FACETS))
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if isinstance(data, str):
            data = [part.strip() for part in data.split(",") if part.strip()]
        return super().to_internal_value(data)


class SearchParamsSerializer(serializers.Serializer):
    """A search by query string: the text, filters, paging and mode."""

    q = serializers.CharField(required=False, allow_blank=True, max_length=settings.SEARCH_MAX_QUERY_CHARS)
    modality = BoundedListField(child=serializers.ChoiceField(choices=Modality.values), required=False,
                                default=list, max_length=3)
    tag = BoundedListField(child=serializers.CharField(max_length=64), required=False, default=list,
                           max_length=20)
    collection = serializers.CharField(required=False, allow_blank=True, max_length=100, default="")
    metadata = JSONObjectField(required=False, default=dict)
    created_after = serializers.DateTimeField(required=False, allow_null=True, default=None)
    created_before = serializers.DateTimeField(required=False, allow_null=True, default=None)
    taken_after = serializers.DateTimeField(required=False, allow_null=True, default=None,
                                            help_text="photos taken at or after this time (EXIF capture time)")
    taken_before = serializers.DateTimeField(required=False, allow_null=True, default=None,
                                             help_text="photos taken before this time (EXIF capture time)")
    k = serializers.IntegerField(required=False, default=10, min_value=1)
    page = serializers.IntegerField(required=False, default=1, min_value=1)
    mode = serializers.ChoiceField(choices=MODES, required=False, default="vector")
    space = serializers.CharField(required=False, allow_blank=True, max_length=64, default="")
    exact = serializers.BooleanField(required=False, default=False)
    min_relevance = serializers.FloatField(
        required=False, allow_null=True, default=None, min_value=0.0, max_value=1.0,
        help_text="leave out results below this calibrated relevance (default: the server's SEARCH_MIN_RELEVANCE)")
    include_weak = serializers.BooleanField(required=False, default=False,
                                            help_text="also list the results below the cutoff, after the relevant ones")
    sort = serializers.ChoiceField(choices=list(SORTS), required=False, default="relevance",
                                   help_text="order of the relevant set")
    facets = FacetsField(required=False, default=list,
                         help_text="count the relevant set by these fields: modality, collection, tags")

    def validate_k(self, value):
        if value > settings.SEARCH_MAX_K:
            raise serializers.ValidationError(f"k is at most {settings.SEARCH_MAX_K}")
        return value

    def validate_page(self, value):
        if value > settings.SEARCH_MAX_PAGE:
            raise serializers.ValidationError(f"page is at most {settings.SEARCH_MAX_PAGE}")
        return value



class SearchBodySerializer(SearchParamsSerializer):
    """A search by POST: also weighted query parts, or an uploaded file (multipart) with its weight."""

    parts = QueryPartSerializer(many=True, required=False, default=list)
    weight = serializers.FloatField(required=False, default=1.0, min_value=-100, max_value=100,
                                    help_text="weight of the uploaded file when combined with q or parts")
    file = serializers.FileField(required=False, help_text=f"{media_formats.describe()} as (part of) the query")


class MomentSerializer(serializers.Serializer):
    start = serializers.FloatField()
    end = serializers.FloatField()


class WordsFoundSerializer(serializers.Serializer):
    source = serializers.CharField(help_text='"text_in_picture" or "speech"')
    text = serializers.CharField(help_text="the lines of the picture, or the spoken words, that matched")
    highlights = serializers.ListField(
        child=serializers.ListField(child=serializers.IntegerField(), min_length=2, max_length=2),
        help_text="[start, end] of each of the query's words in `text`")
    boxes = serializers.ListField(
        child=serializers.ListField(child=serializers.FloatField(), min_length=4, max_length=4),
        help_text="[left, top, right, bottom] of each line shown, as fractions of the picture's width and height")
    moment = MomentSerializer(allow_null=True, help_text="seconds where the words are said")
    page = serializers.IntegerField(allow_null=True, help_text="page of a scanned document")


class PassageSerializer(serializers.Serializer):
    start = serializers.IntegerField(help_text="character offset in the item's text (its body, or a caption)")
    end = serializers.IntegerField(help_text="character offset just past the passage")
    text = serializers.CharField()
    page = serializers.IntegerField(allow_null=True, help_text="page of the document where it starts (PDF)")
    highlights = serializers.ListField(
        child=serializers.ListField(child=serializers.IntegerField(), min_length=2, max_length=2),
        help_text="[start, end] of each of the query's words in `text`",
    )


class ScoreField(serializers.FloatField):
    """The list's own sort key, reported within [-1, 1] (its documented range) whatever the mode computed."""

    def to_representation(self, value):
        return bounded_score(value)


def bounded_score(value) -> float:
    return min(1.0, max(-1.0, float(value)))


_DATETIME = serializers.DateTimeField()


class SearchHitSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="item.id")
    modality = serializers.CharField(source="item.modality")
    title = serializers.CharField(source="item.title")
    snippet = serializers.SerializerMethodField()
    media_url = serializers.SerializerMethodField()
    preview_url = serializers.SerializerMethodField()
    tags = serializers.ListField(source="item.tags", child=serializers.CharField())
    collection = serializers.CharField(source="item.collection")
    score = ScoreField(help_text="what the list is sorted by, in [-1, 1]: in vector mode the similarity (across "
                                 "modalities, above the modality's baseline), in hybrid the fused rank, in lexical "
                                 "the text rank; compare it within one answer, and use `relevance` across answers")
    similarity = serializers.FloatField(allow_null=True, help_text="cosine similarity to the query")
    rank = serializers.IntegerField()
    distance = serializers.FloatField(allow_null=True)
    vector_rank = serializers.IntegerField(allow_null=True)
    lexical_rank = serializers.IntegerField(allow_null=True)
    moment = serializers.SerializerMethodField()
    relevance = serializers.FloatField(allow_null=True, help_text="calibrated relevance to the query, in [0, 1]")
    weak = serializers.BooleanField(help_text="below the cutoff (listed only with include_weak)")
    space = serializers.CharField(help_text="the embedding space whose vectors matched it")
    passage = serializers.SerializerMethodField(
        help_text="the part of a text (or of a long caption) that matched: its best passage, or where the words are")
    matched_in = serializers.CharField(
        allow_null=True, help_text='where it matched: "caption", "text" (a document\'s), "text_in_picture" or '
                                   '"speech"; null when by its picture or sound')
    words = serializers.SerializerMethodField(help_text="the words read from inside it that matched")
    created_at = serializers.DateTimeField(source="item.created_at", help_text="when the item was stored")
    taken_at = serializers.DateTimeField(source="item.taken_at", allow_null=True,
                                         help_text="when a photo was taken (its EXIF capture time); null if unknown")

    def get_snippet(self, hit) -> str:
        text = hit.item.text or ""
        return text if len(text) <= 240 else text[:237].rsplit(" ", 1)[0] + "..."

    def get_media_url(self, hit) -> str | None:
        return _media_url(self.context.get("request"), hit.item.media)

    def get_preview_url(self, hit) -> str | None:
        return _media_url(self.context.get("request"), hit.item.preview)

    @extend_schema_field(MomentSerializer(allow_null=True))
    def get_moment(self, hit):
        return {"start": hit.moment[0], "end": hit.moment[1]} if hit.moment else None

    @extend_schema_field(PassageSerializer(allow_null=True))
    def get_passage(self, hit):
        passage = getattr(hit, "passage", None)
        if passage is None:
            return None
        return {"start": passage.start, "end": passage.end, "text": passage.text, "page": passage.page,
                "highlights": [list(pair) for pair in passage.highlights]}

    @extend_schema_field(WordsFoundSerializer(allow_null=True))
    def get_words(self, hit):
        found = hit.words
        if found is None:
            return None
        return {"source": found.source, "text": found.text, "highlights": [list(pair) for pair in found.highlights],
                "boxes": found.boxes, "moment": {"start": found.moment[0], "end": found.moment[1]} if found.moment
                else None, "page": found.page}

    def to_representation(self, hit):
        # The declared fields, written out: this runs for every hit of every search, and DRF's walk over
        # them (copied per serializer, then read one by one) cost as much CPU as the search's SQL.
        # tests/search/test_api.py checks that the two give the same answer.
        item = hit.item
        return {
            "id": item.id, "modality": str(item.modality), "title": str(item.title),
            "snippet": self.get_snippet(hit), "media_url": self.get_media_url(hit),
            "preview_url": self.get_preview_url(hit), "tags": [str(tag) for tag in item.tags],
            "collection": str(item.collection), "score": bounded_score(hit.score), "similarity": _float(hit.similarity),
            "rank": int(hit.rank), "distance": _float(hit.distance), "vector_rank": _int(hit.vector_rank),
            "lexical_rank": _int(hit.lexical_rank), "moment": self.get_moment(hit),
            "relevance": _float(hit.relevance), "weak": bool(hit.weak), "space": str(hit.space),
            "passage": self.get_passage(hit), "matched_in": hit.matched_in, "words": self.get_words(hit),
            "created_at": _DATETIME.to_representation(item.created_at),
            "taken_at": _DATETIME.to_representation(item.taken_at),
        }


def _float(value):
    return None if value is None else float(value)


def _int(value):
    return None if value is None else int(value)


class SearchPageSerializer(serializers.Serializer):
    results = SearchHitSerializer(many=True, source="hits")
    page = serializers.IntegerField()
    k = serializers.IntegerField()
    has_more = serializers.BooleanField()
    space = serializers.CharField()
    mode = serializers.CharField()
    exact = serializers.BooleanField()
    timings = serializers.DictField(child=serializers.FloatField())
    min_relevance = serializers.FloatField(help_text="the cutoff applied")
    sort = serializers.CharField()
    total_relevant = serializers.IntegerField(help_text="relevant results among the candidates looked at")
    weak_count = serializers.IntegerField(help_text="candidates below the cutoff (include_weak=true lists them)")
    facets = serializers.DictField(child=serializers.DictField(child=serializers.IntegerField()),
                                   help_text="counts over the relevant set, per requested facet")
    suggestions = SearchHitSerializer(many=True,
                                      help_text="when nothing is relevant: the nearest few, for 'no close match'")
    matched_words = serializers.BooleanField(help_text="whether any result matched the query's words")

    def to_representation(self, page):
        # Written out like SearchHitSerializer's, and checked against the declared fields the same way.
        hits = SearchHitSerializer(context=self.context)
        return {
            "results": [hits.to_representation(hit) for hit in page.hits], "page": int(page.page),
            "k": int(page.k), "has_more": bool(page.has_more), "space": str(page.space), "mode": str(page.mode),
            "exact": bool(page.exact), "timings": {str(key): _float(value) for key, value in page.timings.items()},
            "min_relevance": float(page.min_relevance), "sort": str(page.sort),
            "total_relevant": int(page.total_relevant), "weak_count": int(page.weak_count),
            "facets": {str(name): {str(key): _int(count) for key, count in counts.items()}
                       for name, counts in page.facets.items()},
            "suggestions": [hits.to_representation(hit) for hit in page.suggestions],
            "matched_words": bool(page.matched_words),
        }


class SpaceSerializer(serializers.ModelSerializer):
    item_count = serializers.IntegerField(read_only=True)
    default = serializers.SerializerMethodField()
    model = serializers.SerializerMethodField(help_text="The model behind the space, as configured.")
    languages = serializers.SerializerMethodField(help_text="Languages its text side reads (ISO 639-1); null: "
                                                            "not stated by the model.")
    licence = serializers.SerializerMethodField(help_text="The model's licence (SPDX id); null: not stated.")

    class Meta:
        model = EmbeddingSpace
        fields = ["name", "identity", "dimension", "metric", "modalities", "item_count", "default", "created_at",
                  "model", "languages", "licence"]

    def _described(self, space) -> dict:
        # One encoder per configured space and process; describe() never loads the model.
        return spaces.get_encoder(space.name).describe()

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_model(self, space) -> str | None:
        return self._described(space).get("model")

    @extend_schema_field(serializers.ListField(child=serializers.CharField(), allow_null=True))
    def get_languages(self, space) -> list[str] | None:
        languages = self._described(space).get("languages")
        return list(languages) if languages is not None else None

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_licence(self, space) -> str | None:
        return self._described(space).get("licence")

    def get_default(self, space) -> bool:
        return space.name == settings.SEARCH_DEFAULT_SPACE
