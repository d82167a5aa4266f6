"""Add a shard server and move to it its share of the vectors (docs/scaling.md, "Adding a shard").

    python manage.py add_shard postgres://user:pass@host:5432/search [--batch 5000]
    python manage.py add_shard            # finish a move that was interrupted, or rebalance

Put the new server's URL at the end of DATABASE_SHARD_URLS on every node (the order numbers the shards; `migrate`
refuses a list shorter than the coordinator's servers) and run this once, anywhere. It makes the shard's table and
indexes, registers the server with the coordinator, and moves whole buckets to it from the fullest servers until
each holds its share, in batches that each commit. Searches answer throughout and writes wait only while a bucket
changes server (milliseconds). Safe to interrupt: run it again and it goes on from where it stopped.
"""

import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction

from search.runtime.env import parse_database_url
from search.storage import shards
from search.storage.shards import layout, move


class Command(BaseCommand):
    help = "Register a new shard server and move its share of the vectors to it; resumable."

    def add_arguments(self, parser):
        parser.add_argument("url", nargs="?", help="the new shard's URL (omit to finish a move under way)")
        parser.add_argument("--batch", type=int, default=5000, help="rows copied per transaction")
        parser.add_argument("--max-steps", type=int, default=None,
                            help="stop after this many committed steps (to move in slices; tests use it)")
        parser.add_argument("--settle", type=float, default=layout.SERVERS_TTL + 1,
                            help="seconds to wait before the new server owns anything, so every process asks it")

    def handle(self, *args, url, batch, max_steps, settle, verbosity, **options):
        if not shards.configured():
            raise CommandError("DATABASE_SHARD_URLS is not set: this database is not sharded")
        entries = list(settings.SEARCH_SHARDS)
        if url:
            try:
                entry = parse_database_url(url)
            except Exception as exc:
                raise CommandError(f"not a database URL: {exc}") from None
            key = (entry["HOST"], entry["PORT"], entry["NAME"])
            same = [n for n, e in enumerate(entries, start=1) if (e["HOST"], e["PORT"], e["NAME"]) == key]
            if same:
                number = same[0]
            else:
                entries.append(entry)
                number = len(entries)
            layout.ensure_shard(entry)
            with transaction.atomic(), connection.cursor() as cursor:
                known = layout.registered_servers(cursor)
                if number > (max(known) if known else 0) + 1:
                    raise CommandError(f"the coordinator has {max(known)} shard servers; this would be number {number}")
                layout.register_server(cursor, number, entry)
            if not same:
                self.stdout.write(f"shard {number} registered ({layout.server_name(number)}): add its URL at the end "
                                  "of DATABASE_SHARD_URLS on every node")
        planned = move.start()
        steps = 0

        def step(message: str) -> None:
            nonlocal steps
            steps += 1
            if verbosity >= 1:
                self.stdout.write(message)
            if max_steps is not None and steps >= max_steps:
                raise move.StepLimit

        started = time.monotonic()
        mover = move.Mover(batch=batch, settle=settle, step=step, entries=entries)
        try:
            moved = mover.run()
        except move.StepLimit:
            self.stdout.write(f"stopped after {steps} steps: run add_shard again to go on")
            return
        if verbosity >= 1:
            counts = ", ".join(f"shard {n}: {c}" for n, c in sorted(move.balance().items()))
            self.stdout.write(f"{moved} buckets moved ({planned} planned now) in {time.monotonic() - started:.1f} s;"
                              f" buckets per shard: {counts}")
