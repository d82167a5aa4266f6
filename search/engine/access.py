"""Who may see and change which items: one rule for the admin, the API and the pages.

The rule is Django's model permissions, as the admin already applies them, never `is_staff`
alone: a staff account with no permissions can sign in to the admin and do nothing there, and
it can do no more through the API.

- Anyone may see an item that is not hidden. A hidden item is visible to its owner and to users
  with `search.view_item` or `search.change_item`; to everyone else it does not exist (404, the
  same answer as for an id that was never used).
- Changing an item's fields needs `search.change_item`, or owning the item. Hiding and pinning
  (curation) need `search.change_item`. Deleting needs `search.delete_item`, or owning the item.
"""

from django.conf import settings
from django.db.models import Q, QuerySet


def _perm(user, action: str) -> bool:
    return bool(user and user.is_authenticated and user.is_active and user.has_perm(f"search.{action}_item"))


def _owns(user, item) -> bool:
    return bool(user and user.is_authenticated and item.owner_id is not None and item.owner_id == user.pk)


def can_see_hidden(user) -> bool:
    return _perm(user, "view") or _perm(user, "change")


def can_view(user, item) -> bool:
    return not item.hidden or can_see_hidden(user) or _owns(user, item)


def visible(items: QuerySet, user) -> QuerySet:
    """The items of `items` that `user` may see."""
    if can_see_hidden(user):
        return items
    if user and user.is_authenticated:
        return items.filter(Q(hidden=False) | Q(owner_id=user.pk))
    return items.filter(hidden=False)


def can_change(user, item) -> bool:
    return _perm(user, "change") or _owns(user, item)


def can_delete(user, item) -> bool:
    return _perm(user, "delete") or _owns(user, item)


def can_curate(user) -> bool:
    return _perm(user, "change")


def can_see_owner(user, item) -> bool:
    """Uploaders' usernames are personal data: shown to the uploader and curators, or to all by a setting."""
    return settings.SEARCH_SHOW_OWNERS or _owns(user, item) or can_see_hidden(user)


class _Curator:
    """The viewer of admin pages, which Django has already limited to users with `search.view_item`
    (or `change_item`): such a page may show a hidden item's neighbours."""

    is_authenticated = True
    is_active = True
    pk = None

    def has_perm(self, perm: str) -> bool:
        return perm == "search.view_item"


CURATOR = _Curator()
