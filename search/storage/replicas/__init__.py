"""Read replicas: searches and page reads go to a streaming replica, writes to the primary.

`DATABASE_REPLICA_URLS` adds one Django database alias per replica (`replica1`, ...; listed in
`settings.SEARCH_REPLICAS`). Which alias a read uses is decided here, in one place:

- the primary inside a transaction on the primary, and for the rest of a unit of work that wrote;
- the primary for a client that wrote within `SEARCH_REPLICA_STICKY_SECONDS` (read-your-writes;
  the client is its token, its session or its address: see middleware.py);
- otherwise a replica that answers and is no more than `SEARCH_REPLICA_MAX_LAG` seconds behind
  (replica_health.py), else the primary.

The ORM follows through the router (router.py); raw SQL reads through `read_connection`, a
stand-in for `django.db.connection` bound to the alias chosen for the current unit of work.
"""

import contextvars
import random
from dataclasses import dataclass

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections

from search.storage.replicas import replica_health


@dataclass
class Work:
    """What the current request (or command) has done: set by the middleware, else per call."""

    pinned: bool = False  # the client wrote recently: read from the primary
    wrote: bool = False  # this unit of work wrote: its reads see the primary from now on
    alias: str | None = None  # the alias chosen for this unit's reads, kept so they all see one server


_work: contextvars.ContextVar[Work | None] = contextvars.ContextVar("search_replica_work", default=None)


def begin(pinned: bool = False) -> contextvars.Token:
    return _work.set(Work(pinned=pinned))


def end(token: contextvars.Token) -> Work:
    work = _work.get()
    _work.reset(token)
    return work


def mark_wrote() -> None:
    work = _work.get()
    if work is not None:
        work.wrote = True


def replica_aliases() -> list[str]:
    return list(getattr(settings, "SEARCH_REPLICAS", []))


def read_alias() -> str:
    """The database alias reads use now."""
    aliases = replica_aliases()
    if not aliases or connections[DEFAULT_DB_ALIAS].in_atomic_block:
        return DEFAULT_DB_ALIAS
    work = _work.get()
    if work is not None:
        if work.pinned or work.wrote:
            return DEFAULT_DB_ALIAS
        if work.alias is not None:
            return work.alias
    usable = [alias for alias in aliases if replica_health.usable(alias)]
    alias = random.choice(usable) if usable else DEFAULT_DB_ALIAS
    if work is not None:
        work.alias = alias
    return alias


def replica_failed(alias: str) -> None:
    """A query on a replica failed: take it out of rotation and read the rest of this unit from the primary."""
    replica_health.mark_down(alias)
    work = _work.get()
    if work is not None and work.alias == alias:
        work.alias = DEFAULT_DB_ALIAS


class _ReadConnection:
    """`django.db.connection` for the alias reads use now (see read_alias)."""

    def __getattr__(self, name):
        return getattr(connections[read_alias()], name)


read_connection = _ReadConnection()
