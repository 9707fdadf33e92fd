"""Small summaries of the snapshot kept up to date by each load, so a night reads them, not the history.

``pipeline_state.users``: one row per user with their first and last event time.
``pipeline_state.event_types``: per event type, how many events.
``pipeline_state.vocabulary``: per event type and property key, how many events carry it.
``pipeline_state.daily_rollups``: per user, day and event type, how many events and the
first and last time; what goal features count instead of the events themselves.

Each load adds its new rows. ``pipeline_state.snapshot_marks`` records how many snapshot
rows the summaries cover: a snapshot written some other way (an older version, a manual
fix) no longer matches, readers fall back to the snapshot itself, and the next load
rebuilds the summaries once.
"""

from __future__ import annotations

import duckdb

from segment_pipeline.storage.tables import TEXT_COMPRESSION
from segment_pipeline.storage.warehouse import one_row, scalar, table_exists

USERS = "pipeline_state.users"
EVENT_TYPES = "pipeline_state.event_types"
VOCABULARY = "pipeline_state.vocabulary"
MARKS = "pipeline_state.snapshot_marks"
ROLLUPS = "pipeline_state.daily_rollups"
# The summaries a mark vouches for; a new name when the set or a table's shape changes, so
# older warehouses rebuild them once (v2: event types apart, the vocabulary without value types).
_MARK = "users_vocabulary_rollups_v2"

_TEXT = dict(TEXT_COMPRESSION)  # the rollups' text columns are compressed as the snapshot's
_DDL = f"""
CREATE TABLE IF NOT EXISTS {USERS} (user_id VARCHAR PRIMARY KEY, first_ts TIMESTAMP NOT NULL, last_ts TIMESTAMP NOT NULL);
CREATE TABLE IF NOT EXISTS {EVENT_TYPES} (event_name VARCHAR PRIMARY KEY, events BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS {VOCABULARY} (
    event_name VARCHAR, property_key VARCHAR, events BIGINT NOT NULL, PRIMARY KEY (event_name, property_key));
CREATE TABLE IF NOT EXISTS {MARKS} (summary VARCHAR PRIMARY KEY, snapshot_rows BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS {ROLLUPS} (
    user_id VARCHAR USING COMPRESSION {_TEXT["user_id"]} NOT NULL, day DATE NOT NULL,
    event_name VARCHAR USING COMPRESSION {_TEXT["event_name"]} NOT NULL, events BIGINT NOT NULL,
    first_ts TIMESTAMP NOT NULL, last_ts TIMESTAMP NOT NULL);
"""

# A load's rows mostly fall on days not rolled up yet: their (user, day, type) rows are simply
# appended. Rows of days already rolled up (late events) are merged with the stored row of their
# (user, day, type): no index, one join on those days only.
_ROLLUP = """SELECT user_id, CAST(ts AS DATE) AS day, event_name, count(*) AS events, min(ts) AS first_ts,
       max(ts) AS last_ts
FROM ({rows}) GROUP BY ALL"""
_MERGE_ROLLUPS = (
    "CREATE OR REPLACE TEMP TABLE _rollup_new AS " + _ROLLUP,
    f"""CREATE OR REPLACE TEMP TABLE _rollup_old AS
        SELECT r.* FROM {ROLLUPS} r
        SEMI JOIN _rollup_new n ON r.user_id = n.user_id AND r.day = n.day AND r.event_name = n.event_name
        WHERE r.day BETWEEN $first AND $last""",
    f"""DELETE FROM {ROLLUPS} r USING _rollup_old o
        WHERE r.day BETWEEN $first AND $last AND r.user_id = o.user_id AND r.day = o.day
          AND r.event_name = o.event_name""",
    f"""INSERT INTO {ROLLUPS}
        SELECT user_id, day, event_name, sum(events), min(first_ts), max(last_ts)
        FROM (SELECT * FROM _rollup_new UNION ALL SELECT * FROM _rollup_old)
        GROUP BY ALL ORDER BY day""",
    "DROP TABLE _rollup_new; DROP TABLE _rollup_old",
)


def _fold_rollups(con: duckdb.DuckDBPyConnection, rows: str) -> None:
    first, last = one_row(con, f"SELECT CAST(min(ts) AS DATE), CAST(max(ts) AS DATE) FROM ({rows})")
    if first is None:
        return
    # The days' bounds as values, so the stored rollups' zone maps on day skip the other days.
    stored = scalar(con, f"SELECT count(*) FROM {ROLLUPS} WHERE day BETWEEN ? AND ?", [first, last])
    if not stored:
        # Ordered by day (not by user): readers take ranges of days.
        con.execute(f"INSERT INTO {ROLLUPS} {_ROLLUP.format(rows=rows)} ORDER BY day")
        return
    for statement in _MERGE_ROLLUPS:
        if "$first" in statement:
            con.execute(statement, {"first": first, "last": last})
        else:
            con.execute(statement.replace("{rows}", rows))


def _shapes(rows: str) -> str:
    """Per event type, each list of property keys and how many events have it. Most events of a
    type share a few lists, so the keys are counted per list, not per event (``json_each`` per
    event cost 13 CPU-s per million events; the value types too, half of this pass, were read
    by nothing)."""
    return f"""SELECT event_name, json_keys(CAST(properties AS JSON)) AS keys, count(*) AS n
               FROM ({rows}) GROUP BY ALL"""


def _add_sql(rows: str) -> list[str]:
    """Statements folding ``rows`` (user_id, event_name, ts, properties) into the summaries."""
    return [
        f"""INSERT INTO {USERS} SELECT user_id, min(ts), max(ts) FROM ({rows}) GROUP BY user_id
            ON CONFLICT (user_id) DO UPDATE SET first_ts = least(first_ts, excluded.first_ts),
                                                 last_ts = greatest(last_ts, excluded.last_ts)""",
        f"""INSERT INTO {EVENT_TYPES} SELECT event_name, count(*) FROM ({rows}) GROUP BY event_name
            ON CONFLICT (event_name) DO UPDATE SET events = events + excluded.events""",
        f"""INSERT INTO {VOCABULARY}
            SELECT event_name, key, sum(n) FROM (SELECT event_name, unnest(keys) AS key, n FROM ({_shapes(rows)}))
            GROUP BY ALL
            ON CONFLICT (event_name, property_key) DO UPDATE SET events = events + excluded.events""",
    ]


def _snapshot_rows(con: duckdb.DuckDBPyConnection) -> int:
    return scalar(con, "SELECT count(*) FROM analytics.event_snapshots")


def is_current(con: duckdb.DuckDBPyConnection) -> bool:
    """The summaries cover exactly the snapshot as it is now (a count, no scan)."""
    if not table_exists(con, "pipeline_state", "snapshot_marks"):
        return False
    marked = con.execute(f"SELECT snapshot_rows FROM {MARKS} WHERE summary = ?", [_MARK]).fetchone()
    return marked is not None and marked[0] == _snapshot_rows(con)


def prepare(con: duckdb.DuckDBPyConnection) -> None:
    """Before a load adds rows: the summaries exist and cover the snapshot (rebuilt once if not)."""
    if is_current(con):
        return
    # Dropped, not emptied: a summary whose shape changed since it was written is recreated.
    con.execute("".join(f"DROP TABLE IF EXISTS {table};" for table in (USERS, EVENT_TYPES, VOCABULARY, ROLLUPS)))
    con.execute(_DDL)
    _add(con, "SELECT user_id, event_name, ts, properties FROM analytics.event_snapshots")
    _mark(con)


def add(con: duckdb.DuckDBPyConnection, rows: str) -> None:
    """Fold a load's new rows (a query without parameters) in, after they are in the snapshot."""
    _add(con, rows)
    _mark(con)


def _add(con: duckdb.DuckDBPyConnection, rows: str) -> None:
    for statement in _add_sql(rows):
        con.execute(statement)
    _fold_rollups(con, rows)


def _mark(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"INSERT OR REPLACE INTO {MARKS} VALUES (?, ?)", [_MARK, _snapshot_rows(con)])


def first_event_day(con: duckdb.DuckDBPyConnection):
    """The day of the snapshot's first event (None when empty), from the users when current."""
    source = USERS if is_current(con) else "(SELECT min(ts) AS first_ts FROM analytics.event_snapshots)"
    return scalar(con, f"SELECT CAST(min(first_ts) AS DATE) FROM {source}")


def user_count(con: duckdb.DuckDBPyConnection) -> int:
    """Distinct users in the snapshot."""
    if is_current(con):
        return scalar(con, f"SELECT count(*) FROM {USERS}")
    return scalar(con, "SELECT count(DISTINCT user_id) FROM analytics.event_snapshots")


def event_types_and_keys(
    con: duckdb.DuckDBPyConnection, types_with_keys: list[str]
) -> tuple[frozenset[str], dict[str, frozenset[str]]] | None:
    """Event types of the snapshot, and the property keys of ``types_with_keys``; None when not current."""
    if not is_current(con):
        return None
    types = frozenset(name for (name,) in con.execute(f"SELECT event_name FROM {EVENT_TYPES}").fetchall())
    rows = con.execute(f"SELECT event_name, property_key FROM {VOCABULARY}").fetchall()
    keys = {t: frozenset(k for name, k in rows if name == t) for t in types_with_keys}
    return types, keys
