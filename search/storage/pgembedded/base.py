"""Django database backend: PostgreSQL, with the embedded server started on first connect.

Starting the server lazily (instead of in settings) keeps `manage.py check`, `ruff` and
anything else that never touches the database from spawning PostgreSQL. The application
database is created on first use too, so a fresh checkout needs no set-up step.
"""

import contextlib
from pathlib import Path

import psycopg
from django.db.backends.postgresql import base
from psycopg import sql

from search.storage import embedded_server
from search.storage.pool_checks import check_if_idle


class DatabaseWrapper(base.DatabaseWrapper):
    @property
    def pool(self):
        # Django's pool, made with a check sent only to connections that sat unused (search.storage.pool_checks).
        options = self.settings_dict["OPTIONS"].get("pool")
        if not options or not self.settings_dict["CONN_HEALTH_CHECKS"] or self.alias == base.NO_DB_ALIAS:
            return super().pool
        if self.alias not in self._connection_pools:
            from psycopg_pool import ConnectionPool

            if self.settings_dict.get("CONN_MAX_AGE", 0) != 0:
                return super().pool  # Django refuses this with its own message
            kwargs = self.get_connection_params()
            kwargs["autocommit"] = True  # Django sets its own later, as in its own pool
            pool = ConnectionPool(kwargs=kwargs, open=False, configure=self._configure_connection,
                                  check=check_if_idle, **({} if options is True else options))
            self._connection_pools.setdefault(self.alias, pool)
        return self._connection_pools[self.alias]

    # Per database: the parameters its pool was made with.
    _pooled_params: dict = {}

    def get_connection_params(self):
        # Django asks for them on every request's connect, but a pooled connection comes from the pool, made with the
        # parameters of its first connect: reading the server's socket directory again (postmaster.pid) cost 0.1-0.2 ms
        # a request for nothing.
        key = (self.alias, self.settings_dict["NAME"], self.settings_dict["PGDATA"])
        known = self._pooled_params.get(key)
        if known is not None and self.alias in self._connection_pools:
            return dict(known)
        params = super().get_connection_params()
        pgdata = Path(self.settings_dict["PGDATA"])
        params["host"] = embedded_server.socket_dir(pgdata, self.settings_dict.get("TUNING"))
        params.setdefault("user", "postgres")
        if self.settings_dict["OPTIONS"].get("pool"):
            self._pooled_params[key] = dict(params)
        return params

    _databases_known: set = set()

    def get_new_connection(self, conn_params):
        if self.pool is not None:
            # A pool retries a missing database in the background until its timeout; create it up front.
            name = conn_params.get("dbname")
            if name and name != "postgres" and name not in self._databases_known:
                self._create_database(conn_params)
                self._databases_known.add(name)
            return super().get_new_connection(conn_params)
        try:
            return super().get_new_connection(conn_params)
        except psycopg.OperationalError as exc:
            if "does not exist" not in str(exc) or conn_params.get("dbname") in (None, "postgres"):
                raise
            self._create_database(conn_params)
            return super().get_new_connection(conn_params)

    @staticmethod
    def _create_database(conn_params):
        admin = {key: value for key, value in conn_params.items() if key in {"host", "user", "port"}}
        with psycopg.connect(dbname="postgres", autocommit=True, **admin) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [conn_params["dbname"]]).fetchone()
            # Another process may create it between our check and our CREATE: that is success too.
            if not exists:
                with contextlib.suppress(psycopg.errors.DuplicateDatabase):
                    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(conn_params["dbname"])))
