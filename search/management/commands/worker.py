"""A background worker: runs queued jobs until SIGINT/SIGTERM (in the spirit of healthchecks' sendalerts)."""

import asyncio
import logging
import os
import signal

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import close_old_connections, connection
from procrastinate.contrib.django import app

from search.jobs import runner
from search.jobs.queue import QUEUE
from search.runtime.warmup import warm_up
from search.tasks import retry_stalled_jobs

logger = logging.getLogger("search.jobs")


class Command(BaseCommand):
    help = ("Run a background worker for bulk jobs (batch uploads, re-embeds, backfills) until SIGINT or "
            "SIGTERM. Jobs of workers that died without stopping (kill -9) are taken over.")

    def add_arguments(self, parser):
        parser.add_argument("--name", default="worker", help="shown in logs")

    def handle(self, *args, name, verbosity, **options):
        # Jobs read words with ONNX Runtime models (search.ingest.extraction): its telemetry stays off here too.
        os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
        connection.ensure_connection()  # starts the embedded database and checks pgvector, before anything
        warm_up()  # the models load before the first job, not in it
        close_old_connections()
        with app.replace_connector(app.connector.get_worker_connector()):
            asyncio.run(self._run(name, verbosity))

    async def _run(self, name: str, verbosity: int) -> None:
        async with app.open_async():
            worker = app._worker(
                queues=[QUEUE], name=name, concurrency=1, install_signal_handlers=False,
                update_heartbeat_interval=settings.SEARCH_JOB_HEARTBEAT_SECONDS,
                stalled_worker_timeout=settings.SEARCH_JOB_STALLED_SECONDS,
                fetch_job_polling_interval=1.0,
            )
            loop = asyncio.get_running_loop()

            def stop(signum):
                # The running job stops after its current chunk and is queued again (search/jobs/runner.py).
                logger.info("worker %s: %s received, stopping", name, signal.Signals(signum).name)
                runner.STOPPING.set()
                worker.stop()

            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, stop, signum)
            recovery = asyncio.create_task(self._recover_stalled_jobs())
            if verbosity >= 1:
                self.stdout.write(f"worker {name} ready", ending="\n")
                self.stdout.flush()
            try:
                await worker.run()
            finally:
                recovery.cancel()

    async def _recover_stalled_jobs(self) -> None:
        # Right away (a restart after a crash takes over the dead worker's job), then every so often.
        while True:
            try:
                await retry_stalled_jobs(app.job_manager)
            except Exception:
                logger.exception("could not look for stalled jobs")
            await asyncio.sleep(max(1.0, settings.SEARCH_JOB_STALLED_SECONDS / 2))
