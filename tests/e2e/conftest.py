"""Browser tests: Debian's Chromium, driven by Playwright, against a live server holding a small
demo world embedded by the real demo model.

Embedding the demo world is the slow part, so it runs once per session: the first test ingests
it and keeps a snapshot of the rows and media files, and every later test restores that
snapshot into its freshly flushed database in a few milliseconds.
"""

import os
import shutil
from pathlib import Path

import pytest
from django.core.management import call_command

from encoders.demo import synth
from search.models import Embedding, EmbeddingSpace, Item
from search.storage import spaces

# Playwright's sync API runs an event loop in this thread; the test's own ORM calls are still synchronous.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = Path("/usr/bin/chromium")
DEMO_SEED = 11
DEMO_COUNTS = {"n_images": 40, "n_audio": 20, "n_texts": 10}


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        pytest.fail("Chromium is missing: run `bash scripts/ensure-test-tools` (or `apt-get install -y chromium`)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-background-networking", "--disable-gpu",
                  # A synthetic microphone, granted without a prompt, for the recording test.
                  "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"],
        )
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def _app_server():
    """pytest-django's live server, except that /media/ is answered by the app's own view (content types,
    byte ranges for seeking audio) as in production, not by the test server's plain file handler."""
    from django.test.utils import override_settings
    from pytest_django.live_server_helper import LiveServer

    # The test handler claims the paths under MEDIA_URL, read once when the server thread starts.
    with override_settings(MEDIA_URL="/not-media/"):
        server = LiveServer("localhost")
    yield server
    server.stop()


@pytest.fixture
def app_server(_app_server, transactional_db):
    """The server, allowed to answer for its host during this test (as pytest-django's `live_server`)."""
    _app_server._live_server_modified_settings.enable()
    yield _app_server
    _app_server._live_server_modified_settings.disable()


@pytest.fixture
def make_page(browser, app_server):
    contexts = []

    def make(*, javascript: bool = True, width: int = 1280, height: int = 900):
        context = browser.new_context(base_url=app_server.url, java_script_enabled=javascript,
                                      viewport={"width": width, "height": height})
        context.set_default_timeout(20_000)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def page(make_page):
    return make_page()


@pytest.fixture(scope="session")
def demo_manifest(tmp_path_factory) -> Path:
    return synth.write_dataset(tmp_path_factory.mktemp("demo"), seed=DEMO_SEED, **DEMO_COUNTS)


@pytest.fixture(scope="session")
def _demo_snapshot(tmp_path_factory) -> dict:
    return {"media": tmp_path_factory.mktemp("demo-media") / "media"}


def _item_fields() -> list[str]:
    return [f.attname for f in Item._meta.concrete_fields if not f.generated]


@pytest.fixture
def demo(app_server, settings, demo_manifest, _demo_snapshot):
    """The demo world in the database and media folder the live server uses."""
    snapshot = _demo_snapshot
    if "items" not in snapshot:
        call_command("ingest", str(demo_manifest), collection="demo", verbosity=0)
        # As `loaddemo` does: relevance is calibrated on the space's own data (no golden set here).
        call_command("calibrate", root=str(demo_manifest.parent / "no-golden"), verbosity=0)
        snapshot["spaces"] = list(EmbeddingSpace.objects.values("id", "name", "calibration"))
        snapshot["items"] = list(Item.objects.values(*_item_fields()))
        snapshot["embeddings"] = list(Embedding.objects.values("item_id", "space_id", "vector", "segment_start",
                                                               "segment_end", "passage"))
        shutil.copytree(settings.MEDIA_ROOT, snapshot["media"])
    else:
        # The flush after the last test re-registered the spaces (post_migrate), under new ids.
        space_ids = {row["id"]: spaces.register(row["name"]).pk for row in snapshot["spaces"]}
        for row in snapshot["spaces"]:
            EmbeddingSpace.objects.filter(pk=space_ids[row["id"]]).update(calibration=row["calibration"])
        Item.objects.bulk_create([Item(**row) for row in snapshot["items"]])
        Embedding.objects.bulk_create([Embedding(**{**row, "space_id": space_ids[row["space_id"]]})
                                       for row in snapshot["embeddings"]])
        shutil.copytree(snapshot["media"], settings.MEDIA_ROOT, dirs_exist_ok=True)
    assert Item.objects.filter(embedding_status="done").count() == sum(DEMO_COUNTS.values())
    return demo_manifest


@pytest.fixture
def curator_page(page, demo):
    """A page logged in to the admin as a curator, over the demo world."""
    from django.contrib.auth.models import User

    User.objects.create_superuser("curator", "curator@example.com", "pw-curator-e2e")
    page.goto("/admin/login/")
    page.get_by_label("Username").fill("curator")
    page.get_by_label("Password").fill("pw-curator-e2e")
    page.get_by_role("button", name="Log in").click()
    return page
