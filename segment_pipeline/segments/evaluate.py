"""Evaluating every past segment (and All Users) for a day and recording the results."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import duckdb

from segment_pipeline.config.segments import ALL_USERS, SegmentConfig
from segment_pipeline.engines.base import Engine
from segment_pipeline.engines.duckdb_engine import DUCKDB_ENGINE
from segment_pipeline.ingest import state
from segment_pipeline.rules.compiler import read_profile_columns, window_end
from segment_pipeline.segments import history
from segment_pipeline.storage.warehouse import transaction


@dataclass(frozen=True)
class DayResult:
    as_of: date
    sizes: dict[str, int]
    tags_update: str  # incremental | rebuilt


def evaluate_day(
    con: duckdb.DuckDBPyConnection, segments: SegmentConfig, as_of: date, engine: Engine = DUCKDB_ENGINE
) -> DayResult:
    """Memberships, tags and overlaps as of ``as_of``, written in one transaction; the
    memberships computed by ``engine`` (``engines/``), the rest in DuckDB."""
    history.ensure_tables(con)
    names = [s.name for s in segments.past] + [ALL_USERS]
    with transaction(con):
        profile_columns = read_profile_columns(con)
        from_summary = state.is_current(con)
        con.execute("CREATE OR REPLACE TEMP TABLE _members (segment_name VARCHAR, user_id VARCHAR)")
        engine.insert_segment_members(
            con,
            "_members",
            segments.past,
            as_of,
            profile_columns=profile_columns,
            include_all_users=not from_summary,
        )
        if from_summary:
            _insert_all_users(con, as_of, with_profiles=profile_columns is not None)
        history.replace_day(con, as_of, "_members", names)
        history.record_definitions(con, as_of, segments.past)
        mode = history.update_tags(con, as_of)
        history.replace_overlaps(con, as_of)
        counted = dict(con.execute("SELECT segment_name, count(*) FROM _members GROUP BY 1").fetchall())
        con.execute("DROP TABLE _members")
    return DayResult(as_of, {name: counted.get(name, 0) for name in names}, mode)


def _insert_all_users(con: duckdb.DuckDBPyConnection, as_of: date, *, with_profiles: bool) -> None:
    """All Users as the compiler defines it (an event before the day's end, or a profile),
    from ``pipeline_state.users`` instead of a scan of every event."""
    users = "SELECT user_id FROM pipeline_state.users WHERE first_ts < ?"
    if with_profiles:
        users += " UNION SELECT user_id FROM analytics.profiles"
    con.execute(f"INSERT INTO _members SELECT ?, user_id FROM ({users})", [ALL_USERS, window_end(as_of)])


def size_history(con: duckdb.DuckDBPyConnection, last_day: date, days: int = 30) -> list[tuple]:
    """Segment sizes over the last evaluated days, for a chart or table in the UI."""
    return con.execute(
        """SELECT e.as_of_date, e.segment_name, count(m.user_id) AS members
           FROM pipeline_state.segment_evaluations e
           LEFT JOIN analytics.segment_memberships m USING (as_of_date, segment_name)
           WHERE e.as_of_date > ? - CAST(? AS INTEGER) AND e.as_of_date <= ?
           GROUP BY 1, 2 ORDER BY 1, 2""",
        [last_day, days, last_day],
    ).fetchall()
