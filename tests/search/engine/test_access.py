"""Who may see and change what (search.engine.access), through the API, the pages, query parts and the admin:
a hidden item answers exactly like a missing one (issue 11)."""


import pytest
from django.core.cache import cache
from django.test import Client

from search.models import Item
from tests.search.attack_helpers import api
from tests.search.users import CURATOR_PERMS, make_user

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fake_spaces")]


@pytest.fixture(autouse=True)
def _fresh_throttles():
    cache.clear()



def test_staff_without_model_permissions_cannot_curate_or_read_hidden_items_through_the_api(stored):
    image, hidden = stored
    staff = api(make_user("bare-staff", staff=True))
    assert staff.patch(f"/api/items/{image.pk}/", {"title": "defaced"}, format="json").status_code == 403
    assert staff.patch(f"/api/items/{image.pk}/", {"hidden": True}, format="json").status_code == 403
    assert staff.patch(f"/api/items/{image.pk}/", {"pinned": True}, format="json").status_code == 403
    assert staff.patch(f"/api/items/{image.pk}/", {"tags": ["spam"]}, format="json").status_code == 403
    assert staff.delete(f"/api/items/{image.pk}/").status_code == 403
    assert staff.get(f"/api/items/{hidden.pk}/").status_code == 404
    assert hidden.pk not in [row["id"] for row in staff.get("/api/items/").json()["results"]]
    image.refresh_from_db()
    assert (image.title, image.hidden, image.pinned, image.tags) == ("Visible picture", False, False, [])


def test_model_permissions_grant_exactly_what_they_name(stored):
    image, hidden = stored
    viewer = api(make_user("viewer", staff=True, perms=("view",)))
    assert viewer.get(f"/api/items/{hidden.pk}/").status_code == 200
    assert viewer.patch(f"/api/items/{image.pk}/", {"title": "x"}, format="json").status_code == 403
    editor = api(make_user("editor", staff=True, perms=("change",)))
    renamed = editor.patch(f"/api/items/{image.pk}/", {"pinned": True, "title": "Renamed"}, format="json")
    assert renamed.status_code == 200
    assert editor.delete(f"/api/items/{image.pk}/").status_code == 403
    remover = api(make_user("remover", staff=True, perms=("delete",)))
    assert remover.delete(f"/api/items/{image.pk}/").status_code == 204
    assert not Item.objects.filter(pk=image.pk).exists()


def test_staff_without_permissions_cannot_open_a_hidden_item_page(stored):
    _, hidden = stored
    make_user("bare", staff=True, password="pw-bare-12345")
    client = Client()
    client.login(username="bare", password="pw-bare-12345")
    assert client.get(f"/items/{hidden.pk}/").status_code == 404


def test_view_only_staff_cannot_run_curation_actions_in_the_admin(stored):
    image, _ = stored
    make_user("looker", staff=True, perms=("view",), password="pw-looker-123")
    client = Client()
    client.login(username="looker", password="pw-looker-123")
    page = client.get("/admin/search/item/")
    assert page.status_code == 200 and 'value="hide"' not in page.content.decode()
    client.post("/admin/search/item/", {"action": "hide", "_selected_action": [image.pk]})
    image.refresh_from_db()
    assert not image.hidden


def test_reuploading_a_hidden_items_content_reveals_nothing_about_it(stored):
    _, hidden = stored
    other = make_user("other")
    response = api(other, token=True).post("/api/items/", {"text": "a secret memo about the merger"}, format="json")
    assert response.status_code == 409
    body = response.content.decode()
    assert str(hidden.pk) not in body and "Secret memo" not in body and "owner" not in body and "hidden" not in body


def test_a_hidden_item_cannot_be_a_query_part_and_answers_like_a_missing_one(stored):
    _, hidden = stored
    missing = hidden.pk + 1000
    for client in (api(), api(make_user("bare-staff", staff=True))):
        as_hidden = client.post("/api/search/", {"parts": [{"item": hidden.pk}]}, format="json")
        as_missing = client.post("/api/search/", {"parts": [{"item": missing}]}, format="json")
        assert as_hidden.status_code == as_missing.status_code == 400
        assert as_hidden.json()["detail"].replace(str(hidden.pk), "N") == \
            as_missing.json()["detail"].replace(str(missing), "N")
        assert client.get(f"/api/items/{hidden.pk}/similar/").status_code == 404
    page = Client().get("/", {"like": hidden.pk})
    assert page.status_code == 400 and f"There is no item {hidden.pk}" in page.content.decode()
    curator = api(make_user("curator", staff=True, perms=CURATOR_PERMS))
    assert curator.post("/api/search/", {"parts": [{"item": hidden.pk}]}, format="json").status_code == 200


def test_a_hidden_items_media_and_preview_are_served_only_to_its_owner_and_curators(stored, owner):
    image, _ = stored
    urls = [f"/media/{image.media.name}", f"/media/{image.preview.name}"]
    assert all(Client().get(url).status_code == 200 for url in urls)
    Item.objects.filter(pk=image.pk).update(hidden=True)
    stranger = Client()
    stranger.force_login(make_user("stranger"))
    bare_staff = Client()
    bare_staff.force_login(make_user("bare-staff", staff=True))
    for client in (Client(), stranger, bare_staff):
        assert [client.get(url).status_code for url in urls] == [404, 404]
    mine = Client()
    mine.force_login(owner)
    curator = Client()
    curator.force_login(make_user("curator", staff=True, perms=("view",)))
    for client in (mine, curator):
        assert [client.get(url).status_code for url in urls] == [200, 200]


def test_space_counts_exclude_hidden_items(stored):
    [space] = api().get("/api/spaces/").json()
    assert space["item_count"] == 1


def test_uploaders_names_are_shown_to_curators_and_to_themselves_only(stored, owner, settings):
    image, _ = stored
    assert api().get(f"/api/items/{image.pk}/").json()["owner"] is None
    assert api(make_user("someone")).get(f"/api/items/{image.pk}/").json()["owner"] is None
    assert api(owner).get(f"/api/items/{image.pk}/").json()["owner"] == "owner"
    curator = api(make_user("curator", staff=True, perms=("view",)))
    assert curator.get(f"/api/items/{image.pk}/").json()["owner"] == "owner"
    assert " by owner" not in Client().get(f"/items/{image.pk}/").content.decode()
    settings.SEARCH_SHOW_OWNERS = True
    assert api().get(f"/api/items/{image.pk}/").json()["owner"] == "owner"

