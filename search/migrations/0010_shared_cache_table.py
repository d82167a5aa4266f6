"""The shared cache's table (search/storage/db_cache.py), so that `migrate` is all a deployment runs.

The columns are those of Django's `createcachetable`. UNLOGGED: a cache write (a throttle's count on every search)
writes no WAL, so it costs a fraction of a logged write and never travels to the replicas; after a crash PostgreSQL
empties it, which a cache may lose (counts restart, layouts are computed again).
"""

from django.db import migrations

CREATE = """
CREATE UNLOGGED TABLE IF NOT EXISTS search_cache (
    cache_key varchar(255) NOT NULL PRIMARY KEY,
    value text NOT NULL,
    expires timestamp with time zone NOT NULL
);
CREATE INDEX IF NOT EXISTS search_cache_expires ON search_cache (expires);
"""


class Migration(migrations.Migration):

    dependencies = [
        ('search', '0009_extraction_db_defaults'),
    ]

    operations = [
        migrations.RunSQL(CREATE, reverse_sql="DROP TABLE IF EXISTS search_cache"),
    ]
