"""When the database is down the site keeps its layout and says what is wrong (issue 12, item 10)."""

from unittest import mock

import pytest
from django.db import OperationalError
from django.db.backends import utils
from playwright.sync_api import expect

from tests.e2e.helpers import shoot

pytestmark = pytest.mark.e2e


@pytest.fixture
def database_down(app_server):
    """Every query fails as with a stopped server, until the test ends (and before the database is
    flushed: hence a fixture of its own rather than `monkeypatch`, which may be torn down later)."""
    def refuse(*args, **kwargs):
        raise OperationalError("connection to server on socket failed: No such file or directory")

    with mock.patch.object(utils.CursorWrapper, "execute", refuse), \
            mock.patch.object(utils.CursorWrapper, "executemany", refuse):
        yield


@pytest.mark.parametrize("path", ["/", "/?q=a+red+circle", "/items/1/", "/map/"])
def test_pages_keep_the_layout_and_explain_an_outage(page, app_server, database_down, output_dir, path):
    response = page.goto(path)
    assert response.status == 503
    expect(page.get_by_role("heading", name="Search is unavailable for a moment")).to_be_visible()
    expect(page.locator(".site-header")).to_be_visible()
    expect(page.get_by_role("link", name="Search", exact=True)).to_be_visible()
    assert page.locator("link[rel=stylesheet]").count() == 1
    assert page.evaluate("getComputedStyle(document.body).fontFamily") != "Times New Roman"
    if path == "/":
        shoot(page, output_dir, "outage")
