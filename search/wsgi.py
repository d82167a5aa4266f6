import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "search.settings")
application = get_wsgi_application()

from search.runtime.checks import require_collected_static  # noqa: E402  (needs the settings loaded above)

require_collected_static()

# Load the models and compile librosa's numba kernels now, off the request path, so the
# first search does not stall for seconds.
from search.runtime.warmup import warm_up_in_background  # noqa: E402

warm_up_in_background()
