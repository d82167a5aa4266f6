"""The search page's form: query parts from text, files, items and chips, filters and paging."""

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError

from search.engine.query_vectors import QueryError, QueryPart
from search.engine.requests import Filters, SearchRequest
from search.ingest.ingester import split_tags
from search.models import Modality
from search.runtime import json_input

PAGE_SIZE = 24  # fills 2, 3, 4 or 6 columns evenly


class ItemIdsField(forms.Field):
    """Repeated `like=<id>` parameters: the items a "more like this" query starts from."""

    widget = forms.MultipleHiddenInput

    def to_python(self, value):
        if not value:
            return []
        values = value if isinstance(value, list | tuple) else [value]
        if len(values) > settings.SEARCH_MAX_QUERY_PARTS:
            raise ValidationError(f"a query has at most {settings.SEARCH_MAX_QUERY_PARTS} parts")
        try:
            ids = [int(v) for v in values]
        except (TypeError, ValueError):
            raise ValidationError("an item to search like must be given by its number") from None
        if any(i < 1 for i in ids):
            raise ValidationError("an item to search like must be given by its number")
        return list(dict.fromkeys(ids))


class SearchForm(forms.Form):
    """The search page's parameters, the same for the plain GET page and the script's POSTs.

    A POST may also carry `parts`: a JSON list of weighted chips, `{"text": ...}`, `{"item": id}`
    or `{"file": "<field name>"}` for a file uploaded alongside, each with a `weight`.
    """

    q = forms.CharField(required=False, strip=True, label="Search")
    like = ItemIdsField(required=False)
    modality = forms.MultipleChoiceField(choices=Modality.choices, required=False,
                                         widget=forms.CheckboxSelectMultiple)
    tag = forms.CharField(required=False, max_length=500, label="Tags")
    collection = forms.CharField(required=False, max_length=100)
    mode = forms.ChoiceField(choices=[("vector", "Meaning"), ("hybrid", "Meaning and words")], required=False)
    page = forms.IntegerField(required=False, min_value=1, max_value=settings.SEARCH_MAX_PAGE)
    parts = forms.CharField(required=False, widget=forms.HiddenInput)
    sort = forms.ChoiceField(choices=[("relevance", "Relevance"), ("newest", "Newest"), ("oldest", "Oldest"),
                                      ("title", "Title")], required=False)
    weak = forms.BooleanField(required=False)  # also list the results below the relevance cutoff

    def __init__(self, data=None, files=None, **kwargs):
        if data is not None and hasattr(data, "getlist"):
            # QueryDict: keep every `like`, and read the rest as single values.
            data = {key: data.getlist(key) if key in ("like", "modality") else data.get(key) for key in data}
        super().__init__(data, files, **kwargs)

    @property
    def has_query(self) -> bool:
        return bool(self.data.get("q", "").strip() or self.data.get("like") or self.data.get("parts"))

    def clean_parts(self) -> list[QueryPart]:
        raw = self.cleaned_data["parts"]
        if not raw:
            return []
        try:
            chips = json_input.loads(raw)
        except json_input.UntrustedJSONError as exc:
            raise ValidationError(f"the query parts are not valid JSON: {exc}") from None
        if not isinstance(chips, list):
            raise ValidationError("the query parts must be a list")
        if len(chips) > settings.SEARCH_MAX_QUERY_PARTS:
            raise ValidationError(f"a query has at most {settings.SEARCH_MAX_QUERY_PARTS} parts")
        parts = []
        for chip in chips:
            if not isinstance(chip, dict):
                raise ValidationError("each query part must be an object")
            try:
                weight = float(chip.get("weight", 1.0))
            except (TypeError, ValueError, OverflowError):
                raise ValidationError("each weight must be a number") from None
            if "text" in chip:
                if "\x00" in str(chip["text"]):
                    raise ValidationError("query text cannot contain NUL characters")
                parts.append(QueryPart(text=str(chip["text"]), weight=weight))
            elif "item" in chip:
                try:
                    parts.append(QueryPart(item_id=int(chip["item"]), weight=weight))
                except (TypeError, ValueError):
                    raise ValidationError("an item part must name the item by its number") from None
            elif "file" in chip:
                upload = (self.files or {}).get(str(chip["file"]))
                if upload is None:
                    raise ValidationError("a file part arrived without its file; add the file again")
                if upload.size > settings.SEARCH_MAX_UPLOAD_BYTES:
                    raise ValidationError(f"{upload.name} is larger than {settings.SEARCH_MAX_UPLOAD_BYTES:,} bytes")
                parts.append(QueryPart(data=upload.read(), weight=weight))
            else:
                raise ValidationError("each query part needs text, an item or a file")
        return parts

    def first_error(self) -> str:
        for name, errors in self.errors.items():
            label = self.fields[name].label if name in self.fields else ""
            prefix = f"{label or name}: " if name not in ("parts", "like", "__all__") else ""
            return f"{prefix}{errors[0]}"
        return ""

    def search_request(self) -> SearchRequest:
        """The service request; raises QueryError for input the service would refuse anyway."""
        data = self.cleaned_data
        parts = []
        if data["q"]:
            parts.append(QueryPart(text=data["q"]))
        parts += [QueryPart(item_id=item_id) for item_id in data["like"]]
        parts += data["parts"]
        if not parts:
            raise QueryError("type something to search for, or add an image or a sound")
        mode = data["mode"] or "vector"
        if mode == "hybrid" and not any(p.text for p in parts if p.weight > 0):
            mode = "vector"  # nothing to match words against: meaning alone is the honest answer
        filters = Filters(modalities=data["modality"], tags=split_tags(data["tag"]),
                          collection=data["collection"].strip())
        # An item in the query is not a result of it.
        exclude = list(dict.fromkeys(p.item_id for p in parts if p.item_id is not None))
        page = data["page"] or 1
        # Facet chips are counted once, for the first page.
        return SearchRequest(parts=parts, filters=filters, k=PAGE_SIZE, page=page, mode=mode, exclude_ids=exclude,
                             sort=data["sort"] or "relevance", include_weak=data["weak"],
                             facets=["modality", "collection", "tags"] if page == 1 else [])
