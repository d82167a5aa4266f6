"""Vectors at half precision by default, stored inline; full precision a per-space option.

`search_embedding.vector` becomes a `halfvec` (2 bytes a dimension) with STORAGE MAIN, so a
vector is never moved out of line into TOAST (at 512 dimensions a `vector` was, and every
exact scan paid to fetch it back). `vector_full` holds the float32 vectors of spaces
configured with `"PRECISION": "full"`. The HNSW indexes were built on `vector::vector(dim)`;
they are dropped here and rebuilt on the new expression by the post-migrate hook
(search.spaces.sync_after_migrate), with the maintenance memory the build needs.
"""

import pgvector.django.vector
from django.db import migrations, models

import search.models

DROP_HNSW_INDEXES = """
DO $$
DECLARE name text;
BEGIN
  FOR name IN SELECT indexname FROM pg_indexes
              WHERE tablename = 'search_embedding' AND indexname LIKE 'embedding_hnsw_space_%'
  LOOP
    EXECUTE format('DROP INDEX IF EXISTS %I', name);
  END LOOP;
END $$;
"""

# One ALTER TABLE: the rewrite for the new type runs after SET STORAGE, so existing rows come out inline.
TO_HALF = """
ALTER TABLE search_embedding
  ALTER COLUMN vector TYPE halfvec USING vector::halfvec,
  ALTER COLUMN vector SET STORAGE MAIN,
  ADD COLUMN vector_full vector NULL,
  ALTER COLUMN vector_full SET STORAGE MAIN;
"""

TO_FULL = """
ALTER TABLE search_embedding
  ALTER COLUMN vector TYPE vector USING COALESCE(vector_full, vector::vector),
  ALTER COLUMN vector SET STORAGE EXTERNAL,
  DROP COLUMN vector_full;
"""


class Migration(migrations.Migration):

    dependencies = [
        ("search", "0004_jobs"),
    ]

    operations = [
        migrations.RunSQL(DROP_HNSW_INDEXES, reverse_sql=DROP_HNSW_INDEXES),
        migrations.AddField(
            model_name="embeddingspace",
            name="precision",
            field=models.CharField(
                choices=[
                    ("half", "Half (halfvec, 2 bytes a dimension)"),
                    ("full", "Full (vector, 4 bytes a dimension)"),
                ],
                default="half",
                max_length=4,
            ),
        ),
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunSQL(TO_HALF, reverse_sql=TO_FULL)],
            state_operations=[
                migrations.AlterField(model_name="embedding", name="vector", field=search.models.HalfVector()),
                migrations.AddField(
                    model_name="embedding",
                    name="vector_full",
                    field=pgvector.django.vector.VectorField(blank=True, null=True),
                ),
            ],
        ),
    ]
