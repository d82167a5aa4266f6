import pytest
from django.core.management import call_command

from search.models import Item

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fake_spaces")]


def test_loaddemo_fills_an_empty_database_once(tmp_path, monkeypatch):
    from search.management.commands import loaddemo

    monkeypatch.setattr(loaddemo, "DEMO_COUNTS", {"n_images": 6, "n_audio": 4, "n_texts": 4})
    call_command("loaddemo", folder=str(tmp_path), verbosity=0)
    counts = {m: Item.objects.filter(modality=m).count() for m in ("image", "audio", "text")}
    assert counts == {"image": 6, "audio": 4, "text": 4}
    assert set(Item.objects.values_list("collection", flat=True)) == {"demo"}
    call_command("loaddemo", folder=str(tmp_path), verbosity=0)
    assert Item.objects.count() == 14
    Item.objects.filter(modality="audio").delete()
    call_command("loaddemo", folder=str(tmp_path), verbosity=0)
    assert Item.objects.count() == 10  # curated away stays away
    call_command("loaddemo", folder=str(tmp_path), force=True, verbosity=0)
    assert Item.objects.count() == 14
