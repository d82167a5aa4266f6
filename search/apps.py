from django.apps import AppConfig


class SearchConfig(AppConfig):
    name = "search"
    verbose_name = "Multimodal search"

    def ready(self):
        from django.conf import settings
        from django.db.backends.signals import connection_created
        from django.db.models.signals import post_migrate

        import encoders
        from search.runtime import checks
        from search.storage import spaces
        from search.storage.shards import layout as shard_layout

        connection_created.connect(checks.check_pgvector_on_connect)
        post_migrate.connect(spaces.sync_after_migrate, sender=self)
        # After the spaces: each shard gets their indexes (a no-op without DATABASE_SHARD_URLS).
        post_migrate.connect(shard_layout.sync_after_migrate, sender=self)
        encoders.configure(settings.SEARCH_SPACES)
