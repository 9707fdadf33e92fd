"""Events as the snapshot holds them, from any source: one set of rules for the load and the live engine.

``classify_sql`` takes rows in the staging shape (``ingest/staging.py``: text fields as read,
the ts parsed, properties as JSON text) and gives each its normalized fields (trimmed text,
naive UTC ts, compact JSON-object properties), the reason it is rejected (NULL when valid)
and its ``event_id``: the source's, or ``derived-<md5>`` of the content, with ``-N`` for the
N-th identical row. The nightly load and the live sensor both go through it, so one event
read by either has the same id and the same fate.

It is two steps, which the nightly load runs apart: ``reasoned_sql`` works row by row (so a
file can go through it alone), ``with_event_ids_sql`` numbers identical rows, which needs
every row with the same content together (they share a ts, so one day's rows suffice).
"""

from __future__ import annotations


def reasoned_sql(staged: str, *, raw: str = "{}") -> str:
    """A SELECT over ``staged`` (staging shape): normalized fields, ``reason`` and ``given_id``.

    ``raw`` turns the staged ``raw_json`` (``{}`` in it) into the row's text; it is evaluated for
    rejected rows only (the valid ones get NULL): only rejects keep it, and building the text of
    every row would cost more than all the checks.
    """
    return f"""
WITH typed AS (
    SELECT file_idx, row_no, source, raw_json AS raw_value,
           -- Blank (whitespace only, tabs included) counts as empty.
           CASE WHEN regexp_matches(event_id_raw, '[^[:space:]]') THEN trim(event_id_raw) END AS given_id,
           CASE WHEN regexp_matches(user_id_raw, '[^[:space:]]') THEN trim(user_id_raw) END AS user_id,
           CASE WHEN regexp_matches(event_name_raw, '[^[:space:]]') THEN trim(event_name_raw) END AS event_name,
           ts_value AS ts,
           -- Compact JSON (NULL: not JSON), typed JSON so that no later cast parses it again;
           -- only an object's text starts with '{{'. One parse: TRY turns json()'s error into NULL.
           TRY(json(props_text)) AS props_json, props_text IS NULL AS no_props,
           ts_present, malformed
    FROM {staged}
), checked AS (
    SELECT * EXCLUDE (props_json, no_props),
           CASE WHEN no_props THEN JSON '{{}}' WHEN starts_with(props_json, '{{') THEN props_json END AS properties
    FROM typed
), reasoned AS (
    SELECT * EXCLUDE (raw_value),
           CASE WHEN malformed IS NOT NULL THEN malformed
                WHEN user_id IS NULL THEN 'empty user_id'
                WHEN event_name IS NULL THEN 'empty event_name'
                WHEN NOT ts_present THEN 'missing ts'
                WHEN ts IS NULL THEN 'unparseable ts'
                WHEN properties IS NULL THEN 'properties is not a JSON object'
           END AS reason,
           raw_value
    FROM checked
)
SELECT * EXCLUDE (raw_value), CASE WHEN reason IS NOT NULL THEN {raw.format("raw_value")} END AS raw_json FROM reasoned
"""


def with_event_ids_sql(reasoned: str) -> str:
    """A SELECT adding ``event_id`` to ``reasoned`` (rows of ``reasoned_sql``, a table name or a
    parenthesized query)."""
    return f"""
SELECT *,
       -- Rows without an event_id get one from their content; identical rows stay
       -- distinct by their order of appearance, so a re-read derives the same ids.
       coalesce(given_id, 'derived-' || md5(concat_ws(chr(31), user_id, event_name,
                strftime(ts, '%Y-%m-%dT%H:%M:%S.%f'), properties))
                || CASE WHEN occurrence > 1 THEN '-' || CAST(occurrence AS VARCHAR) ELSE '' END
       ) AS event_id
FROM (
    SELECT *, 1 AS occurrence FROM {reasoned} WHERE given_id IS NOT NULL
    UNION ALL
    SELECT *, row_number() OVER (
        PARTITION BY user_id, event_name, ts, properties ORDER BY file_idx, row_no) AS occurrence
    FROM {reasoned} WHERE given_id IS NULL
)
"""


def classify_sql(staged: str) -> str:
    """A SELECT over ``staged`` (a table name or a parenthesized query in the staging shape)."""
    return with_event_ids_sql(f"({reasoned_sql(staged)})")
