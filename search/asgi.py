import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "search.settings")
application = get_asgi_application()

from search.runtime.checks import require_collected_static  # noqa: E402  (needs the settings loaded above)

require_collected_static()
