"""SQL that makes a Supabase project fast for pixelgrade: bulk guarded writes and statistics.

Through the REST API alone, pixelgrade can only write one row per request (a guarded PATCH),
which is slow against a hosted project (one round trip per image) and cannot compute an
average. ``pixelgrade migrate --supabase --sql`` prints these functions; paste them into the
SQL editor (or apply them with ``--db postgresql://...``), and the backfill writes each batch
in one RPC call.

* ``pixelgrade_write_scores(results jsonb, retry_failed boolean, rescore_version text,
  url_checked boolean)`` updates, in one statement, every row of ``results`` whose score is
  still missing (the same rule the backfill selects rows by) and, when a result carries the
  URL column's value it was computed for (and ``url_checked``, the default), whose URL is
  still that value; it records the URL in ``quality_source`` and returns how many rows it
  updated. The array's objects are read with ``jsonb_populate_recordset(NULL::<table>,
  ...)``, so the key keeps the table's own type (bigint, uuid...) and the primary-key index
  is used. (The version before ``url_checked`` is dropped: a store finding only that one
  writes row by row, URL-checked, until the SQL is applied again.)
* ``pixelgrade_reopened_rows()`` returns the rows re-opened by a URL change that have no score
  yet (URL different from ``quality_source``), read off the partial index ``migrate`` makes;
  ``watch`` polls it, with the REST API's filters and keyset on top. PostgREST cannot compare
  two columns in a filter, hence a function.
* ``pixelgrade_quality_stats(high_from int, medium_from int)`` returns the ``verify`` figures
  as one JSON object.

All are ``SECURITY INVOKER``: they can do nothing the caller's role could not; EXECUTE is
granted to ``service_role`` only.
"""

from __future__ import annotations

from pixelgrade.stores.base import TableSpec

WRITE_FUNCTION = "pixelgrade_write_scores"
STATS_FUNCTION = "pixelgrade_quality_stats"
REOPENED_FUNCTION = "pixelgrade_reopened_rows"


def _q(name: str) -> str:
    """Double-quote an identifier (names are validated by TableSpec already)."""
    return '"' + name.replace('"', '""') + '"'


def function_sql(spec: TableSpec) -> list[str]:
    """The statements that create (or replace) both functions for table ``spec``."""
    schema = spec.schema or "public"
    table = f"{_q(schema)}.{_q(spec.name)}"
    t_id, score = _q(spec.id_column), _q(spec.score_column)
    status, details, at = (_q(spec.status_column), _q(spec.details_column),
                           _q(spec.scored_at_column))
    url, source = _q(spec.url_column), _q(spec.source_column)
    write_fn = f"{_q(schema)}.{_q(WRITE_FUNCTION)}"
    stats_fn = f"{_q(schema)}.{_q(STATS_FUNCTION)}"
    reopened_fn = f"{_q(schema)}.{_q(REOPENED_FUNCTION)}"
    needs = (f"((t.{score} IS NULL AND (t.{status} IS NULL OR t.{status} = 'scored' "
             f"OR (retry_failed AND t.{status} = 'failed'))) "
             f"OR (rescore_version IS NOT NULL AND t.{details}->>'scorer_version' IS NOT NULL "
             f"AND t.{details}->>'scorer_version' <> rescore_version))")
    write = f"""CREATE OR REPLACE FUNCTION {write_fn}(
    results jsonb, retry_failed boolean DEFAULT false, rescore_version text DEFAULT NULL,
    url_checked boolean DEFAULT true)
RETURNS integer
LANGUAGE plpgsql SECURITY INVOKER SET search_path = ''
AS $$
DECLARE
    written integer;
BEGIN
    UPDATE {table} AS t
    SET {score} = r.{score},
        {status} = r.{status},
        {details} = r.{details},
        {at} = now(),
        {source} = t.{url}
    FROM jsonb_populate_recordset(NULL::{table}, results) AS r
    WHERE t.{t_id} = r.{t_id}
      AND {needs}
      AND (NOT url_checked OR r.{url} IS NULL OR t.{url} = r.{url});
    GET DIAGNOSTICS written = ROW_COUNT;
    RETURN written;
END
$$"""
    stats = f"""CREATE OR REPLACE FUNCTION {stats_fn}(high_from integer, medium_from integer)
RETURNS jsonb
LANGUAGE sql STABLE SECURITY INVOKER SET search_path = ''
AS $$
    SELECT jsonb_build_object(
        'total', count(*),
        'with_score', count({score}),
        'average', round(avg({score}), 2),
        'minimum', min({score}),
        'maximum', max({score}),
        'high', count(*) FILTER (WHERE {score} >= high_from),
        'medium', count(*) FILTER (WHERE {score} >= medium_from AND {score} < high_from),
        'low', count(*) FILTER (WHERE {score} < medium_from),
        'histogram', jsonb_build_array(
            {", ".join(f"count(*) FILTER (WHERE {score} >= {10 * i} AND {score} < "
                       f"{10 * i + 10 if i < 9 else 101})" for i in range(10))}),
        'statuses', (SELECT coalesce(jsonb_object_agg(label, n), '{{}}'::jsonb) FROM (
            SELECT CASE WHEN {score} IS NULL AND ({status} IS NULL OR {status} = 'scored')
                        THEN 'pending' WHEN {status} IS NULL THEN 'scored'
                        ELSE {status} END AS label, count(*) AS n
            FROM {table} GROUP BY 1) AS s),
        'versions', (SELECT coalesce(jsonb_object_agg(v, n), '{{}}'::jsonb) FROM (
            SELECT {details}->>'scorer_version' AS v, count(*) AS n FROM {table}
            WHERE {details}->>'scorer_version' IS NOT NULL GROUP BY 1) AS vs)
    )
    FROM {table}
$$"""
    reopened = f"""CREATE OR REPLACE FUNCTION {reopened_fn}()
RETURNS SETOF {table}
LANGUAGE sql STABLE SECURITY INVOKER SET search_path = ''
AS $$
    SELECT * FROM {table}
    WHERE {source} IS NOT NULL AND {score} IS NULL AND {url} IS DISTINCT FROM {source}
$$"""
    grants = [
        f"REVOKE ALL ON FUNCTION {write_fn}(jsonb, boolean, text, boolean) FROM PUBLIC",
        f"REVOKE ALL ON FUNCTION {stats_fn}(integer, integer) FROM PUBLIC",
        f"REVOKE ALL ON FUNCTION {reopened_fn}() FROM PUBLIC",
        f"GRANT EXECUTE ON FUNCTION {write_fn}(jsonb, boolean, text, boolean) TO service_role",
        f"GRANT EXECUTE ON FUNCTION {stats_fn}(integer, integer) TO service_role",
        f"GRANT EXECUTE ON FUNCTION {reopened_fn}() TO service_role",
        "NOTIFY pgrst, 'reload schema'",
    ]
    # The version without url_checked would stay beside the new one (another signature).
    drop_old = f"DROP FUNCTION IF EXISTS {write_fn}(jsonb, boolean, text)"
    return [drop_old, write, stats, reopened, *grants]
