"""`runserver` as `make run` uses it: WhiteNoise's (static files through the app, as in production), with a
listen backlog deep enough for a burst of clients.

Django's development server accepts connections on one thread with a backlog of 10; when a few hundred
clients connect at once while request threads hold the CPU, the kernel drops their SYNs and the clients
retry after 1, 3, 7... seconds, up to minutes. The kernel still caps the backlog at net.core.somaxconn.
"""

from django.core.servers.basehttp import WSGIServer
from whitenoise.runserver_nostatic.management.commands.runserver import Command as WhiteNoiseCommand


class DeepBacklogWSGIServer(WSGIServer):
    request_queue_size = 1024


class Command(WhiteNoiseCommand):
    server_cls = DeepBacklogWSGIServer
