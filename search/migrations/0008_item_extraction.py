"""Words inside media (issue 27): text read from pictures and scanned pages, speech from recordings.

The full-text document gains the words read from the item, weighted below its title and its own text:
`search_document_vector(title, body, extracted)` is the two-argument vector of migration 0006 with the
extracted words appended at weight C, and the same fallback (no positions, then a prefix) when they would
pass PostgreSQL's 1 MB tsvector limit. Pictures and recordings stored before are marked for extraction, so
`manage.py extract --missing-only` reads them.
"""

import django.contrib.postgres.indexes
import django.contrib.postgres.search
from django.db import migrations, models

FUNCTION = """
CREATE OR REPLACE FUNCTION search_document_vector(title text, body text, extracted text) RETURNS tsvector
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    own tsvector := search_document_vector(title, body);
BEGIN
    IF COALESCE(extracted, '') = '' THEN
        RETURN own;
    END IF;
    RETURN own || setweight(to_tsvector('english'::regconfig, extracted), 'C');
EXCEPTION WHEN program_limit_exceeded THEN
    BEGIN
        RETURN own || strip(to_tsvector('english'::regconfig, left(extracted, 150000)));
    EXCEPTION WHEN program_limit_exceeded THEN
        RETURN own;
    END;
END
$$;
"""


def document_field(*columns):
    return models.GeneratedField(
        db_persist=True,
        expression=models.Func(*(models.F(c) for c in columns), function="search_document_vector",
                               output_field=django.contrib.postgres.search.SearchVectorField()),
        output_field=django.contrib.postgres.search.SearchVectorField(),
    )


class Migration(migrations.Migration):

    dependencies = [
        ("search", "0007_job_kind_evaluate"),
    ]

    operations = [
        migrations.RunSQL(FUNCTION, "DROP FUNCTION IF EXISTS search_document_vector(text, text, text)"),
        migrations.AddField(model_name="item", name="extracted_text", field=models.TextField(blank=True, default=""),
                            preserve_default=False),
        migrations.AddField(model_name="item", name="extraction", field=models.JSONField(blank=True, default=dict)),
        migrations.AddField(
            model_name="item", name="extraction_status",
            field=models.CharField(choices=[("none", "Nothing to read"), ("pending", "Pending"), ("done", "Done"),
                                            ("failed", "Failed")], default="none", max_length=8),
        ),
        migrations.AddField(model_name="item", name="extraction_error", field=models.TextField(blank=True,
                                                                                               default=""),
                            preserve_default=False),
        migrations.AddIndex(model_name="item",
                            index=models.Index(fields=["extraction_status"], name="item_extraction_idx")),
        # A generated column cannot be altered in place: dropped and added again (PostgreSQL recomputes it).
        migrations.RemoveIndex(model_name="item", name="item_fts_gin"),
        migrations.RemoveField(model_name="item", name="search_document"),
        migrations.AddField(model_name="item", name="search_document",
                            field=document_field("title", "text", "extracted_text")),
        migrations.AddIndex(
            model_name="item",
            index=django.contrib.postgres.indexes.GinIndex(fields=["search_document"], name="item_fts_gin"),
        ),
        migrations.AlterField(
            model_name="job", name="kind",
            field=models.CharField(choices=[("ingest", "Batch upload"), ("embed", "Embed (re-embed or backfill)"),
                                            ("evaluate", "Evaluate a space"),
                                            ("extract", "Read words (text in pictures, speech)")], max_length=8),
        ),
        migrations.RunSQL("UPDATE search_item SET extraction_status = 'pending' WHERE modality IN ('image', 'audio')",
                          migrations.RunSQL.noop),
    ]
