"""Segment tags as the history of memberships, and ``segment_memberships`` answered from them.

``segment_tags`` holds intervals: a tag opens (``created_at``) on the first evaluated day a
user is in a segment and closes (``removed_at``) on the first evaluated day the user is out
again; re-entry opens a new row. Times are the as-of days (00:00 UTC).

``segment_memberships`` (who was in each segment as of each evaluated day) is a view over
the tags and ``pipeline_state.segment_evaluations``: a user is a member on an evaluated day
when one of their tags covers it. Storage grows with changes of membership, not with days
times members (1M users x 20 segments x 365 days would be 7 billion rows a year).

A night's update is incremental: the newest day's members close and open tags. Re-running
an older day rebuilds the past segments' tags from every day's memberships (the view's,
with that day replaced), since it can split or join intervals after it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import date

import duckdb

from segment_pipeline.config.segments import SegmentDefinition
from segment_pipeline.storage.tables import column_ddl
from segment_pipeline.storage.warehouse import ANALYTICS, scalar

MEMBERSHIPS = (ANALYTICS, "segment_memberships")
TAGS = (ANALYTICS, "segment_tags")
OVERLAPS = (ANALYTICS, "segment_overlaps")

DDL = {key: column_ddl(key[1]) for key in (TAGS, OVERLAPS)}
_EVALUATIONS_DDL = """CREATE TABLE IF NOT EXISTS pipeline_state.segment_evaluations
    (as_of_date DATE NOT NULL, segment_name VARCHAR NOT NULL)"""
# The contract's columns, one row per (day, segment, member): tags that cover an evaluated day.
_MEMBERSHIPS_VIEW = """CREATE OR REPLACE VIEW analytics.segment_memberships AS
SELECT e.as_of_date, t.segment_name, t.user_id
FROM pipeline_state.segment_evaluations e
JOIN analytics.segment_tags t
  ON t.segment_name = e.segment_name
 AND t.created_at <= CAST(e.as_of_date AS TIMESTAMP)
 AND (t.removed_at IS NULL OR t.removed_at > CAST(e.as_of_date AS TIMESTAMP))"""

_PAST_SEGMENTS = "SELECT DISTINCT segment_name FROM pipeline_state.segment_evaluations"

# Tags rebuilt from every day's memberships (``_all_members``): islands of consecutive evaluated days.
_REBUILD_TAGS = """
CREATE OR REPLACE TEMP TABLE _rebuilt_tags AS
WITH days AS (
    SELECT segment_name, as_of_date, row_number() OVER (PARTITION BY segment_name ORDER BY as_of_date) AS day_idx
    FROM (SELECT DISTINCT segment_name, as_of_date FROM _all_members
          UNION SELECT DISTINCT segment_name, as_of_date FROM pipeline_state.segment_evaluations)
), member_days AS (
    SELECT m.segment_name, m.user_id, d.day_idx,
           d.day_idx - row_number() OVER (PARTITION BY m.segment_name, m.user_id ORDER BY d.day_idx) AS island
    FROM _all_members m JOIN days d USING (segment_name, as_of_date)
), islands AS (
    SELECT segment_name, user_id, min(day_idx) AS first_idx, max(day_idx) AS last_idx
    FROM member_days GROUP BY segment_name, user_id, island
)
SELECT i.user_id, i.segment_name,
       CAST(f.as_of_date AS TIMESTAMP) AS created_at,
       CAST(n.as_of_date AS TIMESTAMP) AS removed_at
FROM islands i
JOIN days f ON f.segment_name = i.segment_name AND f.day_idx = i.first_idx
LEFT JOIN days n ON n.segment_name = i.segment_name AND n.day_idx = i.last_idx + 1
"""


def ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    for (schema, name), columns in DDL.items():
        con.execute(f'CREATE TABLE IF NOT EXISTS "{schema}"."{name}" ({columns})')
    # Which segments were evaluated on which day, even when a segment had no members.
    con.execute(_EVALUATIONS_DDL)
    # The definition each day's memberships were computed with, so a reader (a goal's segment
    # flags) can take them instead of evaluating the segment again.
    con.execute(f"CREATE TABLE IF NOT EXISTS {DEFINITIONS} ({_DEFINITIONS_DDL})")
    kind = con.execute(
        """SELECT table_type FROM information_schema.tables
           WHERE table_schema = 'analytics' AND table_name = 'segment_memberships'"""
    ).fetchone()
    if kind and kind[0] == "BASE TABLE":
        # A warehouse from before the view: its tags are rebuilt from the stored days once.
        con.execute("CREATE OR REPLACE TEMP TABLE _all_members AS SELECT * FROM analytics.segment_memberships")
        _replace_past_tags(con)
        con.execute("DROP TABLE analytics.segment_memberships")
        kind = None
    if not kind:
        con.execute(_MEMBERSHIPS_VIEW)


def _replace_past_tags(con: duckdb.DuckDBPyConnection) -> None:
    """The past segments' tags from ``_all_members`` (every day's memberships), which it drops."""
    con.execute(_REBUILD_TAGS)
    # Only past segments' tags come from memberships; live-segment tags are the sensor's.
    con.execute(f"DELETE FROM analytics.segment_tags WHERE segment_name IN ({_PAST_SEGMENTS})")
    con.execute(
        "INSERT INTO analytics.segment_tags SELECT * FROM _rebuilt_tags ORDER BY segment_name, user_id, created_at"
    )
    con.execute("DROP TABLE _rebuilt_tags; DROP TABLE _all_members")


DEFINITIONS = "pipeline_state.segment_definitions"
_DEFINITIONS_DDL = "as_of_date DATE NOT NULL, segment_name VARCHAR NOT NULL, definition_hash VARCHAR NOT NULL"


def definition_hash(segment: SegmentDefinition) -> str:
    """Equal for definitions that select the same members from the same data."""
    text = json.dumps(segment.model_dump(mode="json", by_alias=True), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def record_definitions(con: duckdb.DuckDBPyConnection, as_of: date, segments: Sequence[SegmentDefinition]) -> None:
    """Which definitions the day's memberships of ``segments`` come from (replacing an earlier run of the day)."""
    con.execute(f"DELETE FROM {DEFINITIONS} WHERE as_of_date = ?", [as_of])
    if segments:
        con.execute(
            f"INSERT INTO {DEFINITIONS} SELECT ?, unnest(?), unnest(?)",
            [as_of, [s.name for s in segments], [definition_hash(s) for s in segments]],
        )


def stored_memberships(
    con: duckdb.DuckDBPyConnection, days: Sequence[date], segments: Sequence[SegmentDefinition]
) -> dict[date, list[str]]:
    """Per day, the names of ``segments`` whose memberships of that day are stored and were
    computed with the same definition (so reading them equals evaluating the segment again
    with the profiles of that day's run)."""
    if not days or not segments or not _definitions_exist(con):
        return {}
    rows = con.execute(
        f"""SELECT d.as_of_date, d.segment_name FROM {DEFINITIONS} d
            JOIN (SELECT unnest(CAST(? AS VARCHAR[])) AS segment_name, unnest(CAST(? AS VARCHAR[])) AS definition_hash) s
              USING (segment_name, definition_hash)
            JOIN pipeline_state.segment_evaluations e USING (as_of_date, segment_name)
            WHERE d.as_of_date IN (SELECT unnest(CAST(? AS DATE[])))""",
        [[s.name for s in segments], [definition_hash(s) for s in segments], list(days)],
    ).fetchall()
    found: dict[date, list[str]] = {}
    for day, name in rows:
        found.setdefault(day, []).append(name)
    return {day: sorted(names) for day, names in found.items()}


def _definitions_exist(con: duckdb.DuckDBPyConnection) -> bool:
    return bool(
        scalar(
            con,
            """SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database()
               AND schema_name = 'pipeline_state' AND table_name IN ('segment_definitions', 'segment_evaluations')""",
        )
        == 2
    )


def replace_day(con: duckdb.DuckDBPyConnection, as_of: date, members_table: str, segment_names: list[str]) -> str:
    """Store the day's memberships (from a ``(segment_name, user_id)`` table), replacing a previous
    run of that day: the tags take them in (``update_tags``), so the view answers for the day.
    Returns ``incremental`` or ``rebuilt``."""
    ensure_tables(con)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _day_members AS SELECT DISTINCT segment_name, user_id FROM {members_table}"
    )
    con.execute("DELETE FROM pipeline_state.segment_evaluations WHERE as_of_date = ?", [as_of])
    # Until ``record_definitions`` says otherwise, the day's memberships match no stored definition.
    con.execute(f"DELETE FROM {DEFINITIONS} WHERE as_of_date = ?", [as_of])
    newer = scalar(con, "SELECT count(*) FROM pipeline_state.segment_evaluations WHERE as_of_date > ?", [as_of])
    if newer:
        # Every other day as the view has it now, before the day's evaluations change.
        con.execute(
            """CREATE OR REPLACE TEMP TABLE _all_members AS
               SELECT * FROM analytics.segment_memberships WHERE as_of_date <> ?
               UNION ALL SELECT ?, segment_name, user_id FROM _day_members""",
            [as_of, as_of],
        )
    con.execute("INSERT INTO pipeline_state.segment_evaluations SELECT ?, unnest(?)", [as_of, segment_names])
    if newer:
        _replace_past_tags(con)
        mode = "rebuilt"
    else:
        _update_newest_day(con, as_of)
        mode = "incremental"
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _day_tags_update AS SELECT CAST(? AS DATE) AS as_of_date, ? AS mode",
        [as_of, mode],
    )
    con.execute("DROP TABLE _day_members")
    return mode


def update_tags(con: duckdb.DuckDBPyConnection, as_of: date) -> str:
    """How ``replace_day`` brought ``segment_tags`` in line with day ``as_of``: ``incremental``
    (the newest day) or ``rebuilt`` (an older day, which can split or join intervals after it).
    The tags are the memberships' storage, so ``replace_day`` updates them itself."""
    done = None
    if _has_temp(con, "_day_tags_update"):
        done = con.execute("SELECT mode FROM temp._day_tags_update WHERE as_of_date = ?", [as_of]).fetchone()
    if done is None:
        raise ValueError(f"day {as_of} was not replaced on this connection: call replace_day first")
    return done[0]


def _has_temp(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    return bool(
        scalar(con, "SELECT count(*) FROM duckdb_tables() WHERE database_name = 'temp' AND table_name = ?", [name])
    )


def _update_newest_day(con: duckdb.DuckDBPyConnection, as_of: date) -> None:
    """Close and open tags for the newest day from ``_day_members``."""
    at = [as_of]
    # Undo what an earlier run of this same day did, then apply today's changes.
    con.execute(
        f"DELETE FROM analytics.segment_tags WHERE created_at = CAST(? AS TIMESTAMP) AND segment_name IN ({_PAST_SEGMENTS})",
        at,
    )
    con.execute(
        f"""UPDATE analytics.segment_tags SET removed_at = NULL
            WHERE removed_at = CAST(? AS TIMESTAMP) AND segment_name IN ({_PAST_SEGMENTS})""",
        at,
    )
    con.execute(
        """UPDATE analytics.segment_tags t SET removed_at = CAST(? AS TIMESTAMP)
           WHERE removed_at IS NULL
             AND segment_name IN (SELECT segment_name FROM pipeline_state.segment_evaluations WHERE as_of_date = ?)
             AND NOT EXISTS (SELECT 1 FROM _day_members m
                             WHERE m.segment_name = t.segment_name AND m.user_id = t.user_id)""",
        [as_of, as_of],
    )
    con.execute(
        """INSERT INTO analytics.segment_tags
           SELECT m.user_id, m.segment_name, CAST(? AS TIMESTAMP), NULL
           FROM _day_members m
           WHERE NOT EXISTS (SELECT 1 FROM analytics.segment_tags t
                             WHERE t.removed_at IS NULL AND t.segment_name = m.segment_name AND t.user_id = m.user_id)
           ORDER BY m.segment_name, m.user_id""",
        [as_of],
    )


def replace_overlaps(con: duckdb.DuckDBPyConnection, as_of: date) -> None:
    """Users in both segments, for every ordered pair of the day's segments that share a user,
    and the diagonal (a = b: the size, 0 kept for an empty segment). Pairs without a shared
    user have no row: 2,000 segments would otherwise write 4M rows a day, mostly zeros."""
    con.execute("DELETE FROM analytics.segment_overlaps WHERE as_of_date = ?", [as_of])
    con.execute(
        """INSERT INTO analytics.segment_overlaps
           WITH segs AS (SELECT segment_name FROM pipeline_state.segment_evaluations WHERE as_of_date = ?),
                day AS (SELECT segment_name, user_id FROM analytics.segment_memberships WHERE as_of_date = ?),
                pairs AS (SELECT a.segment_name AS segment_a, b.segment_name AS segment_b, count(*) AS users
                          FROM day a JOIN day b USING (user_id) GROUP BY 1, 2)
           SELECT ?, segment_a, segment_b, users FROM pairs WHERE segment_a <> segment_b
           UNION ALL
           SELECT ?, s.segment_name, s.segment_name, coalesce(p.users, 0)
           FROM segs s LEFT JOIN pairs p ON p.segment_a = s.segment_name AND p.segment_b = s.segment_name
           ORDER BY 2, 3""",
        [as_of, as_of, as_of, as_of],
    )
