"""Forms of the web UI and the admin: they turn what people type and upload into service calls."""

from django import forms
from django.conf import settings
from django.contrib.admin.helpers import ActionForm
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils.html import format_html
from django.utils.text import capfirst

from encoders.base import EncoderError
from search import jsoninput
from search.ingest import Ingester, IngestInput
from search.media import MediaRejected, describe_all
from search.models import Item, Modality
from search.queries import QueryError, QueryPart
from search.searching import Filters, SearchRequest
from search.spaces import SpaceIdentityMismatch

PAGE_SIZE = 24  # fills 2, 3, 4 or 6 columns evenly


def split_tags(value: str) -> list[str]:
    return [tag.strip().lower() for tag in value.split(",") if tag.strip()]


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
            chips = jsoninput.loads(raw)
        except jsoninput.UntrustedJSONError as exc:
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


class ItemActionForm(ActionForm):
    """The admin's action bar, with the value that "add tag" and "set collection" apply."""

    value = forms.CharField(required=False, max_length=100, label="Tag or collection",
                            widget=forms.TextInput(attrs={"placeholder": "for add tag / set collection"}))


class ItemUploadForm(forms.ModelForm):
    """The admin's "add item": a file or a text, stored through the one ingestion service.

    Ingestion runs during validation so that a refused file (wrong type, corrupt, too large)
    is reported on the form like any other invalid input, and nothing is stored.
    """

    file = forms.FileField(required=False, help_text=capfirst(describe_all()) + ".")
    text = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 4}),
                           help_text="Or, instead of a file, the text of a text item.")
    title = forms.CharField(required=False, max_length=300)
    caption = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}),
                              help_text="Words describing an image or a sound; they are searchable.")
    tags = forms.CharField(required=False, help_text="Separated by commas.")
    collection = forms.CharField(required=False, max_length=100)

    owner_id: int | None = None  # set by the admin for the signed-in curator

    class Meta:
        model = Item
        fields = ["hidden", "pinned"]

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        upload, text = cleaned.get("file"), cleaned.get("text", "").strip()
        if bool(upload) == bool(text):
            raise ValidationError("Give either a file or a text, not both." if upload else "Give a file or a text.")
        if upload is not None and upload.size > settings.SEARCH_MAX_UPLOAD_BYTES:
            self.add_error("file", f"The file is larger than {settings.SEARCH_MAX_UPLOAD_BYTES:,} bytes.")
            return cleaned
        source = IngestInput(
            text=text if not upload else None, data=upload.read() if upload else None, title=cleaned["title"],
            caption=cleaned["caption"], tags=split_tags(cleaned["tags"]), collection=cleaned["collection"],
            owner_id=self.owner_id, source="admin", filename=upload.name if upload else "",
        )
        try:
            outcome = Ingester().ingest(source)
        except (SpaceIdentityMismatch, EncoderError) as exc:
            raise ValidationError(f"Nothing was stored: an embedding space cannot be used ({exc}).") from None
        except MediaRejected as exc:
            self.add_error("file" if upload else "text", str(exc)[:1].upper() + str(exc)[1:])
            return cleaned
        if outcome.status == "present":
            url = reverse("admin:search_item_change", args=[outcome.item.pk])
            raise ValidationError(format_html('This content is already stored as <a href="{}">{}</a>.', url,
                                              outcome.item))
        self.instance = outcome.item
        return cleaned
