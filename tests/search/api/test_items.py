"""The item model's promises: one item per content, vectors bound to their space."""

import pytest
from django.db import IntegrityError, transaction

from search.models import Embedding, EmbeddingSpace, Item

pytestmark = pytest.mark.django_db

SHA = "ab" * 32


def test_the_same_content_is_one_item():
    Item.objects.create(modality="image", title="first", sha256=SHA, mime_type="image/png", byte_size=10)
    with pytest.raises(IntegrityError), transaction.atomic():
        Item.objects.create(modality="image", title="second upload", sha256=SHA, mime_type="image/png")
    assert Item.objects.filter(sha256=SHA).count() == 1
    assert Item.objects.get(sha256=SHA).title == "first"


def test_at_most_one_whole_item_vector_per_space_but_many_segments():
    space = EmbeddingSpace.objects.create(name="s", identity="test:s", dimension=3, modalities=["audio"])
    item = Item.objects.create(modality="audio", sha256=SHA, duration=25.0)
    Embedding.objects.create(item=item, space=space, vector=[1, 0, 0])
    Embedding.objects.create(item=item, space=space, vector=[0, 1, 0], segment_start=0, segment_end=10)
    Embedding.objects.create(item=item, space=space, vector=[0, 0, 1], segment_start=5, segment_end=15)
    with pytest.raises(IntegrityError), transaction.atomic():
        Embedding.objects.create(item=item, space=space, vector=[1, 1, 0])
    with pytest.raises(IntegrityError), transaction.atomic():
        Embedding.objects.create(item=item, space=space, vector=[1, 1, 0], segment_start=8, segment_end=3)
    assert item.embeddings.count() == 3


def test_unknown_modality_is_refused_by_the_database():
    with pytest.raises(IntegrityError), transaction.atomic():
        Item.objects.create(modality="video", sha256=SHA)


def test_full_text_document_is_generated_and_weighted():
    Item.objects.create(modality="text", title="Harbour lights", text="boats at night", sha256="1" * 64)
    Item.objects.create(modality="text", title="Forest", text="the harbour is far away", sha256="2" * 64)
    from django.contrib.postgres.search import SearchQuery, SearchRank
    from django.db.models import F

    ranked = list(
        Item.objects.filter(search_document=SearchQuery("harbour", config="english"))
        .annotate(rank=SearchRank(F("search_document"), SearchQuery("harbour", config="english")))
        .order_by("-rank")
        .values_list("title", flat=True)
    )
    assert ranked == ["Harbour lights", "Forest"]


def test_deleting_an_item_deletes_its_vectors():
    space = EmbeddingSpace.objects.create(name="s2", identity="test:s2", dimension=2, modalities=["text"])
    item = Item.objects.create(modality="text", sha256=SHA, text="x")
    Embedding.objects.create(item=item, space=space, vector=[1, 0])
    item.delete()
    assert Embedding.objects.count() == 0
