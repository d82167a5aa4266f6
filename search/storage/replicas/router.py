"""The database router: writes and migrations to the primary, reads where search.storage.replicas says."""

from django.db import DEFAULT_DB_ALIAS

from search.storage import replicas


class ReplicaRouter:
    def db_for_read(self, model, **hints):
        return replicas.read_alias()

    def db_for_write(self, model, **hints):
        replicas.mark_wrote()
        return DEFAULT_DB_ALIAS

    def allow_relation(self, obj1, obj2, **hints):
        return True  # every alias is the same database

    def allow_migrate(self, db, app_label, **hints):
        return db == DEFAULT_DB_ALIAS
