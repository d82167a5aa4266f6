"""Words a recording may have said (issue 27): the alternatives of the speech recogniser's n-best list.

`Item.extracted_alternatives` holds the words PocketSphinx heard as alternatives in a recording's utterances, not
in its best transcript (search.ingest.extraction). They are searched, never shown as said: the full-text document
gains them at weight D, below the transcript's C. `search_document_vector(title, body, extracted, alternatives)`
is the three-argument vector of migration 0008 with them appended, and the same fallback (no positions, then
left out) when they would pass PostgreSQL's 1 MB tsvector limit.
"""

import django.contrib.postgres.indexes
import django.contrib.postgres.search
from django.db import migrations, models

FUNCTION = """
CREATE OR REPLACE FUNCTION search_document_vector(title text, body text, extracted text, alternatives text)
RETURNS tsvector LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    own tsvector := search_document_vector(title, body, extracted);
BEGIN
    IF COALESCE(alternatives, '') = '' THEN
        RETURN own;
    END IF;
    RETURN own || setweight(strip(to_tsvector('english'::regconfig, alternatives)), 'D');
EXCEPTION WHEN program_limit_exceeded THEN
    RETURN own;
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
        ("search", "0011_evaluation_report"),
    ]

    operations = [
        migrations.RunSQL(FUNCTION, "DROP FUNCTION IF EXISTS search_document_vector(text, text, text, text)"),
        migrations.AddField(model_name="item", name="extracted_alternatives",
                            field=models.TextField(blank=True, db_default="", default="")),
        # A generated column cannot be altered in place: dropped and added again (PostgreSQL recomputes it).
        migrations.RemoveIndex(model_name="item", name="item_fts_gin"),
        migrations.RemoveField(model_name="item", name="search_document"),
        migrations.AddField(model_name="item", name="search_document",
                            field=document_field("title", "text", "extracted_text", "extracted_alternatives")),
        migrations.AddIndex(
            model_name="item",
            index=django.contrib.postgres.indexes.GinIndex(fields=["search_document"], name="item_fts_gin"),
        ),
    ]
