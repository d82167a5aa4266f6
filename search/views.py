import mimetypes

from django.conf import settings
from django.db import DatabaseError, connection
from django.db.models import Count
from django.http import FileResponse, Http404, JsonResponse
from django.shortcuts import render
from django.utils._os import safe_join

from search.models import EmbeddingSpace, Item

# Media is only ever served as one of these types, whatever its file name says.
SERVED_TYPES = {
    "image/png", "image/jpeg", "image/webp", "image/gif",
    "audio/wav", "audio/x-wav", "audio/flac", "audio/ogg", "audio/mpeg",
}


def home(request):
    rows = Item.objects.filter(hidden=False).values("modality").annotate(n=Count("id"))
    counts = {row["modality"]: row["n"] for row in rows}
    return render(request, "search/home.html", {"counts": counts, "spaces": EmbeddingSpace.objects.all()})


def healthz(request):
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
            row = cursor.fetchone()
    except DatabaseError as exc:
        return JsonResponse({"status": "unavailable", "database": str(exc).splitlines()[0]}, status=503)
    return JsonResponse({"status": "ok", "pgvector": row[0] if row else None})


def media(request, path: str):
    try:
        full = safe_join(settings.MEDIA_ROOT, path)
    except Exception:
        raise Http404("no such file") from None
    content_type, _ = mimetypes.guess_type(full)
    if content_type not in SERVED_TYPES:
        raise Http404("no such file")
    try:
        response = FileResponse(open(full, "rb"), content_type=content_type)
    except (FileNotFoundError, IsADirectoryError):
        raise Http404("no such file") from None
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response
