from django.conf import settings
from rest_framework import permissions

from search.engine import access


class ReadPublicWriteAuthenticated(permissions.BasePermission):
    """Reads are public (unless SEARCH_API_PUBLIC_READS is off); writes need a token or a staff session.

    Searching by POST is a read: it carries a query, it changes nothing.
    """

    message = "writing needs an API token (Authorization: Token <key>) or a staff session"

    def has_permission(self, request, view):
        if request.method in permissions.SAFE_METHODS or getattr(view, "read_only_post", False):
            return settings.SEARCH_API_PUBLIC_READS or bool(request.user and request.user.is_authenticated)
        user = request.user
        if not (user and user.is_authenticated):
            return False
        # A session alone (no token) is enough only for staff: it is how the admin's users arrive.
        return request.auth is not None or user.is_staff

    def has_object_permission(self, request, view, obj):
        # The same rule as the admin's and the pages' (search.engine.access), by model permission, not is_staff.
        if request.method in permissions.SAFE_METHODS:
            return access.can_view(request.user, obj)
        if request.method == "DELETE":
            return access.can_delete(request.user, obj)
        return access.can_change(request.user, obj)
