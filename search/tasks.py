"""The background tasks, found by procrastinate's Django integration (it imports each app's `tasks`).

Tasks are thin: the work is in search/jobs.py, which tests call directly.
"""

import logging

from django.conf import settings
from procrastinate import RetryStrategy
from procrastinate.contrib.django import app

from search import jobs

logger = logging.getLogger("search.jobs")

QUEUE = "jobs"
# Five tries over about a minute (2 s, 4 s, 8 s, 16 s apart): long enough for a database restart.
MAX_ATTEMPTS = 5


@app.task(name="search.run_job", queue=QUEUE, pass_context=True,
          retry=RetryStrategy(max_attempts=MAX_ATTEMPTS, exponential_wait=2))
def run_job(context, job_id: int) -> None:
    # procrastinate counts attempts from 0; MAX_ATTEMPTS - 1 retries follow the first try.
    jobs.run(job_id, final_attempt=context.job.attempts + 1 >= MAX_ATTEMPTS)


async def retry_stalled_jobs(job_manager) -> int:
    """Queue again the jobs of workers that stopped sending heartbeats (killed with -9, a lost machine)."""
    stalled = await job_manager.get_stalled_jobs(seconds_since_heartbeat=settings.SEARCH_JOB_STALLED_SECONDS)
    for job in stalled:
        logger.warning("job %s of a stalled worker is queued again", job.id)
        await job_manager.retry_job(job)
    return len(stalled)
