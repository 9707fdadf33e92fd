"""Events as the snapshot holds them, from any source: one set of rules for the load and the live engine.

``classify_sql`` takes rows in the staging shape (``ingest/staging.py``: text fields as read,
the ts parsed, properties as JSON text) and gives each its normalized fields (trimmed text,
naive UTC ts, compact JSON-object properties), the reason it is rejected (NULL when valid)
and its ``event_id``: the source's, or ``derived-<md5>`` of the content, with ``-N`` for the
N-th identical row. The nightly load and the live sensor both go through it, so one event
read by either has the same id and the same fate.
"""

from __future__ import annotations


def classify_sql(staged: str) -> str:
    """A SELECT over ``staged`` (a table name or a parenthesized query in the staging shape)."""
    return f"""
WITH typed AS (
    SELECT file_idx, row_no, source, raw_json,
           -- Blank (whitespace only, tabs included) counts as empty.
           CASE WHEN regexp_matches(event_id_raw, '[^[:space:]]') THEN trim(event_id_raw) END AS given_id,
           CASE WHEN regexp_matches(user_id_raw, '[^[:space:]]') THEN trim(user_id_raw) END AS user_id,
           CASE WHEN regexp_matches(event_name_raw, '[^[:space:]]') THEN trim(event_name_raw) END AS event_name,
           timezone('UTC', ts_value) AS ts,
           CASE WHEN props_text IS NULL THEN '{{}}'
                WHEN json_valid(props_text) THEN
                    CASE WHEN json_type(CAST(props_text AS JSON)) = 'OBJECT'
                         THEN CAST(json(props_text) AS VARCHAR) END
           END AS properties,
           ts_present, malformed
    FROM {staged}
), reasoned AS (
    SELECT *,
           CASE WHEN malformed IS NOT NULL THEN malformed
                WHEN user_id IS NULL THEN 'empty user_id'
                WHEN event_name IS NULL THEN 'empty event_name'
                WHEN NOT ts_present THEN 'missing ts'
                WHEN ts IS NULL THEN 'unparseable ts'
                WHEN properties IS NULL THEN 'properties is not a JSON object'
           END AS reason
    FROM typed
)
SELECT *,
       -- Rows without an event_id get one from their content; identical rows stay
       -- distinct by their order of appearance, so a re-read derives the same ids.
       coalesce(given_id, 'derived-' || md5(concat_ws(chr(31), user_id, event_name,
                strftime(ts, '%Y-%m-%dT%H:%M:%S.%f'), properties))
                || CASE WHEN occurrence > 1 THEN '-' || CAST(occurrence AS VARCHAR) ELSE '' END
       ) AS event_id
FROM (
    SELECT *, 1 AS occurrence FROM reasoned WHERE given_id IS NOT NULL
    UNION ALL
    SELECT *, row_number() OVER (
        PARTITION BY user_id, event_name, ts, properties ORDER BY file_idx, row_no) AS occurrence
    FROM reasoned WHERE given_id IS NULL
)
"""
