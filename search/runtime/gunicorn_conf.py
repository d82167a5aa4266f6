"""gunicorn settings for `manage.py serve` (python:search.runtime.gunicorn_conf).

No preload: forking a process that has loaded torch leaves its thread pools and OpenMP state in
the parent's image, a known source of hangs. Each worker loads the app itself and warms the models in
`post_worker_init`, which gunicorn runs before the worker accepts its first connection, so no request
ever waits for a model.
"""

import os

# ONNX Runtime (OCR, the speech detector) sends telemetry unless this is set before its first import; set here
# too, so the master and every worker have it whatever their environment (search/settings.py sets it as well).
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

from search.runtime.env import env_int  # noqa: E402

workers = env_int("SEARCH_WEB_WORKERS", 2, minimum=1)
# Threads per worker: requests waiting on PostgreSQL or on a client overlap; encoding holds the GIL only
# partly (torch releases it), so a few threads keep the CPUs busy without queueing behind one slow upload.
worker_class = "gthread"
threads = env_int("SEARCH_WEB_THREADS", 4, minimum=1)
preload_app = False
backlog = 2048  # a burst waits in the kernel's queue instead of being refused
timeout = env_int("SEARCH_WEB_TIMEOUT", 120, minimum=10)  # the worst allowed upload decodes in seconds
graceful_timeout = 30
keepalive = 5
# One JSON access line per request comes from search.runtime.logs; gunicorn's own access log would repeat it.
accesslog = None
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
# Behind a proxy on the same machine (or the test client): only it may set X-Forwarded-*.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
# gunicorn 24+ opens a control socket at one path per user (~/.gunicorn/gunicorn.ctl): a second server on the machine
# (another node, a blue-green switch) takes it over from the first. Nothing here uses it.
control_socket_disable = True


def post_worker_init(worker):
    from search.runtime.warmup import share_cpus, warm_up

    # Every worker (and job worker) has its own intra-op pool; together they should not oversubscribe. `serve`
    # counts its job workers too (SEARCH_TORCH_THREADS); gunicorn started on its own shares among its workers.
    share_cpus(env_int("SEARCH_TORCH_THREADS", 0, minimum=0) or max(1, (os.cpu_count() or 1) // workers))
    states = warm_up()
    worker.log.info("worker %s warmed up: %s", worker.pid, states)


def child_exit(server, worker):
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
