"""Small summaries of the snapshot kept up to date by each load, so a night reads them, not the history.

``pipeline_state.users``: one row per user with their first and last event time.
``pipeline_state.vocabulary``: per event type, how many events (``property_key`` '' and
``value_type`` '*') and, per property key and JSON value type, how many events carry it.

Each load adds its new rows. ``pipeline_state.snapshot_marks`` records how many snapshot
rows the summaries cover: a snapshot written some other way (an older version, a manual
fix) no longer matches, readers fall back to the snapshot itself, and the next load
rebuilds the summaries once.
"""

from __future__ import annotations

import duckdb

from segment_pipeline.storage.warehouse import scalar, table_exists

USERS = "pipeline_state.users"
VOCABULARY = "pipeline_state.vocabulary"
MARKS = "pipeline_state.snapshot_marks"
EVENT_ROW_KEY, EVENT_ROW_TYPE = "", "*"  # json_type never returns '*'

_DDL = f"""
CREATE TABLE IF NOT EXISTS {USERS} (user_id VARCHAR PRIMARY KEY, first_ts TIMESTAMP NOT NULL, last_ts TIMESTAMP NOT NULL);
CREATE TABLE IF NOT EXISTS {VOCABULARY} (
    event_name VARCHAR, property_key VARCHAR, value_type VARCHAR, events BIGINT NOT NULL,
    PRIMARY KEY (event_name, property_key, value_type));
CREATE TABLE IF NOT EXISTS {MARKS} (summary VARCHAR PRIMARY KEY, snapshot_rows BIGINT NOT NULL);
"""


def _add_sql(rows: str) -> list[str]:
    """Statements folding ``rows`` (user_id, event_name, ts, properties) into the summaries."""
    return [
        f"""INSERT INTO {USERS} SELECT user_id, min(ts), max(ts) FROM ({rows}) GROUP BY user_id
            ON CONFLICT (user_id) DO UPDATE SET first_ts = least(first_ts, excluded.first_ts),
                                                 last_ts = greatest(last_ts, excluded.last_ts)""",
        f"""INSERT INTO {VOCABULARY}
            SELECT event_name, '{EVENT_ROW_KEY}', '{EVENT_ROW_TYPE}', count(*) FROM ({rows}) GROUP BY event_name
            UNION ALL
            SELECT r.event_name, j.key, coalesce(j.type, 'NULL'), count(*)
            FROM ({rows}) r, json_each(CAST(r.properties AS JSON)) j GROUP BY ALL
            ON CONFLICT (event_name, property_key, value_type) DO UPDATE SET events = events + excluded.events""",
    ]


def _snapshot_rows(con: duckdb.DuckDBPyConnection) -> int:
    return scalar(con, "SELECT count(*) FROM analytics.event_snapshots")


def is_current(con: duckdb.DuckDBPyConnection) -> bool:
    """The summaries cover exactly the snapshot as it is now (a count, no scan)."""
    if not table_exists(con, "pipeline_state", "snapshot_marks"):
        return False
    marked = con.execute(f"SELECT snapshot_rows FROM {MARKS} WHERE summary = 'users_vocabulary'").fetchone()
    return marked is not None and marked[0] == _snapshot_rows(con)


def prepare(con: duckdb.DuckDBPyConnection) -> None:
    """Before a load adds rows: the summaries exist and cover the snapshot (rebuilt once if not)."""
    con.execute(_DDL)
    if is_current(con):
        return
    con.execute(f"DELETE FROM {USERS}; DELETE FROM {VOCABULARY}")
    for statement in _add_sql("SELECT user_id, event_name, ts, properties FROM analytics.event_snapshots"):
        con.execute(statement)
    _mark(con)


def add(con: duckdb.DuckDBPyConnection, rows: str) -> None:
    """Fold a load's new rows (a query without parameters) in, after they are in the snapshot."""
    for statement in _add_sql(rows):
        con.execute(statement)
    _mark(con)


def _mark(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"INSERT OR REPLACE INTO {MARKS} VALUES ('users_vocabulary', ?)", [_snapshot_rows(con)])


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
    rows = con.execute(f"SELECT event_name, property_key, value_type FROM {VOCABULARY}").fetchall()
    types = frozenset(name for name, _, kind in rows if kind == EVENT_ROW_TYPE)
    keys = {t: frozenset(k for name, k, kind in rows if name == t and kind != EVENT_ROW_TYPE) for t in types_with_keys}
    return types, keys
