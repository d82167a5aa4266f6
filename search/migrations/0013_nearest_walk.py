"""search_nearest_walk: the nearest items of several modalities from one walk of a space's HNSW index (issue 28).

A search ranks each target modality on its own (search.engine.rankers.cross_modal_results), and each modality's
scan walked the same index from the same query vector, passing over the other modalities' vectors: three scans of
about 300 tuples each for 100 images, 100 sounds and 100 texts. The function runs one such walk (`query`: the
scan's SELECT of item_id, modality, passage and distance, in index order) and hands each modality (a slot) its
first `reads` rows, as its own scan would have had them: the index returns the same tuples in the same order
whatever the filter above it keeps. It stops when every slot is full, or when the walk ends (its LIMIT: the
iterative scan's tuple budget, as for one scan). A passage counts only for a slot whose scan reads passages.

With a LIMIT of thousands the planner prefers reading every row of the space and sorting them (bitmap scans, a hash
join, a sort: 230 ms at 100,000 rows against 4 ms for the walk); the walk is only ever asked of the index, so
inside the function sequential and bitmap scans and sorts are off, which leaves the index's ordered scan.
"""

from django.db import migrations

FUNCTION = """
CREATE OR REPLACE FUNCTION search_nearest_walk(query text, modalities text[], reads int[], passages boolean[])
RETURNS TABLE (slot int, item_id bigint, distance float8)
LANGUAGE plpgsql STABLE PARALLEL UNSAFE
SET enable_seqscan = off
SET enable_bitmapscan = off
SET enable_sort = off
AS $$
DECLARE
    found record;
    counts int[] := array_fill(0, ARRAY[cardinality(modalities)]);
    open_slots int := cardinality(modalities);
    j int;
BEGIN
    FOR found IN EXECUTE query LOOP
        j := array_position(modalities, found.modality::text);
        CONTINUE WHEN j IS NULL OR counts[j] >= reads[j] OR (found.passage AND NOT passages[j]);
        counts[j] := counts[j] + 1;
        slot := j - 1;
        item_id := found.item_id;
        distance := found.distance;
        RETURN NEXT;
        IF counts[j] = reads[j] THEN
            open_slots := open_slots - 1;
            EXIT WHEN open_slots = 0;
        END IF;
    END LOOP;
END
$$;
"""


class Migration(migrations.Migration):
    dependencies = [("search", "0012_item_extracted_alternatives")]

    operations = [
        migrations.RunSQL(FUNCTION, "DROP FUNCTION IF EXISTS search_nearest_walk(text, text[], int[], boolean[])"),
    ]
