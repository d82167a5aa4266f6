"""The whole stack in one command: gunicorn (or, with --dev, the development server) and the job workers.

This process supervises its children: a job worker that dies is started again (its job is taken over,
see search/tasks.py), the web server dying stops everything, and SIGINT/SIGTERM stops all of them
together (each finishes what it is doing: a request, or the current chunk of a job).
"""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from search.runtime.env import env_int, env_str

MANAGE = str(Path(settings.BASE_DIR) / "manage.py")


class Command(BaseCommand):
    help = ("Serve in production: collect static files, then run gunicorn and the background job workers until "
            "SIGINT/SIGTERM. --dev runs the development server instead of gunicorn (what `make run` uses).")

    def add_arguments(self, parser):
        parser.add_argument("--bind", default=env_str("HOST", "127.0.0.1:8000"), help="host:port (env HOST)")
        parser.add_argument("--web-workers", type=int, default=env_int("SEARCH_WEB_WORKERS", 2, minimum=1))
        parser.add_argument("--job-workers", type=int, default=env_int("SEARCH_JOB_WORKERS", 1, minimum=0))
        parser.add_argument("--dev", action="store_true", help="the development server instead of gunicorn")

    def handle(self, *args, bind, web_workers, job_workers, dev, verbosity, **options):
        if web_workers < 1 or job_workers < 0:
            raise CommandError("--web-workers must be >= 1 and --job-workers >= 0")
        if settings.STATIC_ROOT and not dev:
            call_command("collectstatic", interactive=False, verbosity=0)
        env = dict(os.environ)
        processes = (1 if dev else web_workers) + job_workers
        env["DJANGO_DB_SERVER_PROCESSES"] = str(processes)
        # The cores shared among the processes: encoders of two processes must not each spread over all cores.
        env.setdefault("SEARCH_TORCH_THREADS", str(max(1, (os.cpu_count() or 1) // processes)))
        env["SEARCH_WEB_WORKERS"] = str(web_workers)
        if not dev:
            # Every process writes its metrics here and /metrics sums them (search/runtime/metrics.py).
            metrics_dir = Path(settings.VAR_DIR) / "prometheus"
            shutil.rmtree(metrics_dir, ignore_errors=True)
            metrics_dir.mkdir(parents=True)
            env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
        # Start (or attach to) the database here, so it stays up while children come and go.
        connection.ensure_connection()
        connection.close()

        if dev:
            web_cmd = [sys.executable, MANAGE, "runserver", bind]
        else:
            web_cmd = [sys.executable, "-m", "gunicorn", "--config", "python:search.runtime.gunicorn_conf",
                       "--bind", bind, "--workers", str(web_workers), "search.wsgi:application"]
        stopping = False

        def request_stop(signum, frame):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)
        web = subprocess.Popen(web_cmd, env=env)
        workers = {i: self._start_worker(i, env) for i in range(job_workers)}
        self.stdout.write(f"serving on http://{bind}/ with {web_workers if not dev else 1} web and "
                          f"{job_workers} job worker(s); Ctrl-C stops all")
        self.stdout.flush()
        code = 0
        try:
            while not stopping:
                if web.poll() is not None:
                    self.stderr.write(f"the web server exited ({web.returncode}); stopping")
                    code = web.returncode or 1
                    break
                for i, proc in list(workers.items()):
                    if proc.poll() is not None:
                        self.stderr.write(f"job worker {i} exited ({proc.returncode}); starting it again")
                        time.sleep(1)
                        workers[i] = self._start_worker(i, env)
                time.sleep(0.5)
        finally:
            self._stop([web, *workers.values()])
        if code:
            raise CommandError("the web server stopped", returncode=code)

    @staticmethod
    def _start_worker(index: int, env: dict) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, MANAGE, "worker", "--name", f"worker-{index}"], env=env)

    @staticmethod
    def _stop(procs: list[subprocess.Popen], grace: float = 40.0) -> None:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
