"""Bulk work as background jobs: batch uploads, re-embeds, space backfills and evaluations.

A job is a `Job` row (what, how far, how each input ended) plus one task in procrastinate's queue, deferred
in the same transaction, so a job never exists without its task or the reverse. `submit` queues jobs,
`runner` runs them (resumably: see its docstring), `queue` names the task both use; the task itself is in
search/tasks.py, where procrastinate's autodiscovery finds it.
"""
