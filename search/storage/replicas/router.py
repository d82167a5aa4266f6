"""The database router: writes and migrations to the primary, reads where search.storage.replicas says."""

from django.db import DEFAULT_DB_ALIAS

from search.storage import replicas

# Django's DatabaseCache names its table's model so: the shared cache (search/storage/db_cache.py) is read and
# written on the primary only (an UNLOGGED table, absent on replicas), and its writes (a throttle's count, a layout)
# are no writes of the client's: they must not pin it to the primary for read-your-writes.
CACHE_APP_LABEL = "django_cache"


class ReplicaRouter:
    def db_for_read(self, model, **hints):
        if model._meta.app_label == CACHE_APP_LABEL:
            return DEFAULT_DB_ALIAS
        return replicas.read_alias()

    def db_for_write(self, model, **hints):
        if model._meta.app_label == CACHE_APP_LABEL:
            return DEFAULT_DB_ALIAS
        replicas.mark_wrote()
        return DEFAULT_DB_ALIAS

    def allow_relation(self, obj1, obj2, **hints):
        return True  # every alias is the same database

    def allow_migrate(self, db, app_label, **hints):
        return db == DEFAULT_DB_ALIAS
