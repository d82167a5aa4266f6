"""The background tasks, found by procrastinate's Django integration (it imports each app's `tasks`).

Tasks are thin: the work is in search/jobs/runner/runner.py, which tests call directly.
"""

import logging

from django.conf import settings
from procrastinate import RetryStrategy
from procrastinate.contrib.django import app

from search.jobs import runner
from search.jobs.queue import MAX_ATTEMPTS, QUEUE, TASK_NAME

logger = logging.getLogger("search.jobs")


@app.task(name=TASK_NAME, queue=QUEUE, pass_context=True,
          retry=RetryStrategy(max_attempts=MAX_ATTEMPTS, exponential_wait=2))
def run_job(context, job_id: int) -> None:
    # procrastinate counts attempts from 0; MAX_ATTEMPTS - 1 retries follow the first try.
    runner.run(job_id, final_attempt=context.job.attempts + 1 >= MAX_ATTEMPTS)


async def retry_stalled_jobs(job_manager) -> int:
    """Queue again the jobs of workers that stopped sending heartbeats (killed with -9, a lost machine)."""
    stalled = await job_manager.get_stalled_jobs(seconds_since_heartbeat=settings.SEARCH_JOB_STALLED_SECONDS)
    for job in stalled:
        logger.warning("job %s of a stalled worker is queued again", job.id)
        await job_manager.retry_job(job)
    return len(stalled)
