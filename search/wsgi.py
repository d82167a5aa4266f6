import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "search.settings")
application = get_wsgi_application()

# Load the models and compile librosa's numba kernels now, off the request path, so the
# first search does not stall for seconds.
from search.warmup import warm_up_in_background  # noqa: E402

warm_up_in_background()
