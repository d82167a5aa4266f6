"""Documents and long texts (issue 17): passages searched through each space's index, a PDF's page
offsets, and a full-text document that no text can overflow.

PostgreSQL refuses a tsvector over 1 MB, which a text of mostly distinct tokens (a word list, a hex
dump) reaches well under the 1-million-character cap: its positions alone pass it. The generated
column now calls `search_document_vector`, which is exactly the weighted vector it was before and,
only for such a text, keeps the body's words without their positions (they still match, unranked),
and if even they do not fit, the words of its first 400,000 (or 150,000) characters, rather than
refusing the item. Its passages are embedded whole either way.
"""

import django.contrib.postgres.fields
import django.contrib.postgres.indexes
import django.contrib.postgres.search
from django.db import migrations, models

FUNCTION = """
CREATE OR REPLACE FUNCTION search_document_vector(title text, body text) RETURNS tsvector
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    head tsvector := setweight(to_tsvector('english'::regconfig, COALESCE(title, '')), 'A');
BEGIN
    RETURN head || setweight(to_tsvector('english'::regconfig, COALESCE(body, '')), 'B');
EXCEPTION WHEN program_limit_exceeded THEN
    BEGIN
        RETURN head || strip(to_tsvector('english'::regconfig, COALESCE(body, '')));
    EXCEPTION WHEN program_limit_exceeded THEN
        BEGIN
            RETURN head || strip(to_tsvector('english'::regconfig, left(COALESCE(body, ''), 400000)));
        EXCEPTION WHEN program_limit_exceeded THEN
            RETURN head || strip(to_tsvector('english'::regconfig, left(COALESCE(body, ''), 150000)));
        END;
    END;
END
$$;
"""


def drop_vector_indexes(apps, schema_editor):
    # Each space's HNSW index now also holds passages (its predicate changed): dropped here, built again
    # for every configured space right after `migrate` (search.spaces.sync_after_migrate).
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'search_embedding'"
                       " AND indexname LIKE 'embedding_hnsw_space_%%'")
        for (name,) in cursor.fetchall():
            cursor.execute(f'DROP INDEX IF EXISTS "{name}"')


def document_field():
    return models.GeneratedField(
        db_persist=True,
        expression=models.Func(models.F("title"), models.F("text"), function="search_document_vector",
                               output_field=django.contrib.postgres.search.SearchVectorField()),
        output_field=django.contrib.postgres.search.SearchVectorField(),
    )


class Migration(migrations.Migration):

    dependencies = [
        ("search", "0005_halfvec_storage"),
    ]

    operations = [
        migrations.RunSQL(FUNCTION, "DROP FUNCTION IF EXISTS search_document_vector(text, text)"),
        migrations.AddField(
            model_name="item",
            name="text_pages",
            field=django.contrib.postgres.fields.ArrayField(base_field=models.PositiveIntegerField(), blank=True,
                                                            null=True, size=None),
        ),
        # A generated column cannot be altered in place: dropped and added again (PostgreSQL recomputes it).
        migrations.RemoveIndex(model_name="item", name="item_fts_gin"),
        migrations.RemoveField(model_name="item", name="search_document"),
        migrations.AddField(model_name="item", name="search_document", field=document_field()),
        migrations.AddIndex(
            model_name="item",
            index=django.contrib.postgres.indexes.GinIndex(fields=["search_document"], name="item_fts_gin"),
        ),
        # Passages of long texts: stored like audio windows, but indexed and searched.
        migrations.AddField(model_name="embedding", name="passage", field=models.BooleanField(default=False)),
        migrations.AddIndex(
            model_name="embedding",
            index=models.Index(condition=models.Q(passage=True), fields=["space"], name="embedding_passage_space_idx"),
        ),
        migrations.AddConstraint(
            model_name="embedding",
            constraint=models.CheckConstraint(condition=models.Q(passage=False) | models.Q(segment_start__isnull=False),
                                              name="passage_has_span"),
        ),
        migrations.RunPython(drop_vector_indexes, migrations.RunPython.noop),
    ]
