"""axe-core (vendored in search/static/search/vendor, no CDN) on every page people use, at a desktop
and a 390 px phone size, with a screenshot of each under test-output/ (issue 12, item 11)."""

import pytest
from django.contrib.auth.models import User

from search.models import Item
from tests.e2e.helpers import PHONE, assert_accessible, shoot, wait_for_results

pytestmark = pytest.mark.e2e
SIZES = {"desktop": {}, "phone": PHONE}


def log_in(page) -> None:
    User.objects.create_superuser("curator", "curator@example.com", "pw-curator-e2e")
    page.goto("/admin/login/")
    page.get_by_label("Username").fill("curator")
    page.get_by_label("Password").fill("pw-curator-e2e")
    page.get_by_role("button", name="Log in").click()


@pytest.mark.parametrize("size", SIZES)
def test_search_pages_have_no_serious_violations(make_page, demo, output_dir, size):
    page = make_page(**SIZES[size])
    page.goto("/")
    assert_accessible(page)
    shoot(page, output_dir, f"a11y-welcome-{size}")
    page.goto("/?q=a+beeping+tone")
    wait_for_results(page)
    assert_accessible(page)
    shoot(page, output_dir, f"a11y-search-{size}")


@pytest.mark.parametrize("size", SIZES)
def test_item_pages_have_no_serious_violations(make_page, demo, output_dir, size):
    page = make_page(**SIZES[size])
    for modality in ("image", "audio", "text"):
        item = Item.objects.filter(modality=modality).order_by("id").first()
        page.goto(f"/items/{item.pk}/")
        assert_accessible(page)
        shoot(page, output_dir, f"a11y-item-{modality}-{size}")


@pytest.mark.parametrize("size", SIZES)
def test_the_map_has_no_serious_violations(make_page, demo, output_dir, size):
    page = make_page(**SIZES[size])
    page.goto("/map/?q=a+red+circle")
    page.wait_for_function("() => window.searchMap && window.searchMap.count > 0")
    assert_accessible(page)
    shoot(page, output_dir, f"a11y-map-{size}")


@pytest.mark.parametrize("size", SIZES)
def test_admin_pages_have_no_serious_violations(make_page, demo, output_dir, size):
    page = make_page(**SIZES[size])
    page.goto("/admin/login/")
    assert_accessible(page)
    log_in(page)
    item = Item.objects.filter(modality="audio").order_by("id").first()
    for name, path in [("index", "/admin/"), ("items", "/admin/search/item/"),
                       ("item", f"/admin/search/item/{item.pk}/change/"), ("add", "/admin/search/item/add/"),
                       ("spaces", "/admin/search/embeddingspace/"), ("upload", "/admin/search/item/upload/"),
                       ("duplicates", "/admin/search/item/duplicates/")]:
        page.goto(path)
        assert_accessible(page)
        shoot(page, output_dir, f"a11y-admin-{name}-{size}")
