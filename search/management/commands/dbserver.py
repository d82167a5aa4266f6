from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from search.storage import embedded_server


class Command(BaseCommand):
    help = "Start, stop or inspect the embedded PostgreSQL server (var/pgdata)."

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["status", "start", "stop", "url"])

    def handle(self, *args, action, **options):
        db = settings.DATABASES["default"]
        if "PGDATA" not in db:
            raise CommandError("DATABASE_URL points at an external PostgreSQL; there is no embedded server to manage")
        pgdata = Path(db["PGDATA"])
        if action == "status":
            state = embedded_server.status(pgdata)
            word = "running" if state["running"] else "stopped"
            self.stdout.write(f"{word}: {state['pgdata']}" + (f" (pid {state['pid']})" if state["running"] else ""))
        elif action == "start":
            # A handle kept by a short-lived command would stop the server at exit; detach it.
            server = embedded_server.get_server(pgdata, db.get("TUNING"))
            server.cleanup_mode = None
            self.stdout.write(f"running: {server.get_uri(database=db['NAME'])}")
        elif action == "url":
            self.stdout.write(embedded_server.get_server(pgdata, db.get("TUNING")).get_uri(database=db["NAME"]))
        else:
            stopped = embedded_server.stop(pgdata)
            self.stdout.write("stopped" if stopped else "was not running")
