"""Users of each kind the access rules distinguish: anonymous, a token holder, staff with and without
model permissions."""

from django.contrib.auth.models import Permission, User


def make_user(username: str, *, staff: bool = False, perms: tuple[str, ...] = (), password: str | None = None):
    """A user with the given `search.<perm>_item` permissions ("view", "change", "delete")."""
    user = User.objects.create_user(username, password=password, is_staff=staff)
    if perms:
        codenames = [f"{perm}_item" for perm in perms]
        user.user_permissions.add(*Permission.objects.filter(content_type__app_label="search", codename__in=codenames))
    return User.objects.get(pk=user.pk)  # permissions are cached per instance


CURATOR_PERMS = ("view", "change", "delete")
