"""The queue a job's task goes to, and deferring it by name.

Deferring by the task's name (not by importing it) keeps this package below search/tasks.py, which
defines the task and calls the runner: the two never import each other.
"""

from procrastinate.contrib.django import app

from search.models import Job

QUEUE = "jobs"
TASK_NAME = "search.run_job"
# Five tries over about a minute (2 s, 4 s, 8 s, 16 s apart): long enough for a database restart.
MAX_ATTEMPTS = 5


def defer(job: Job) -> None:
    app.configure_task(TASK_NAME, queue=QUEUE).defer(job_id=job.pk)
