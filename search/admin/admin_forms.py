"""The admin's own forms: bulk-action values and uploads through the ingestion service."""

from django import forms
from django.conf import settings
from django.contrib.admin.helpers import ActionForm
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils.html import format_html
from django.utils.text import capfirst

from encoders.base import EncoderError
from search.ingest.ingester import Ingester, IngestInput, split_tags
from search.ingest.prepare import describe_all
from search.jobs.submit import submit_extract_after_ingest
from search.media import MediaRejected
from search.models import Item
from search.storage.spaces import SpaceIdentityMismatch


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
        submit_extract_after_ingest([outcome.item], owner_id=self.owner_id)
        self.instance = outcome.item
        return cleaned
