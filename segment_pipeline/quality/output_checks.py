"""What people acting on the outputs rely on, checked on the warehouse after each night.

Each function reads the tables and returns a ``Finding``: passed or not, how many rows
break the rule, and a few of them as examples. Dagster-free: ``defs/`` turns findings
into asset checks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import duckdb

from segment_pipeline.stats.uplift import SRM_ALARM
from segment_pipeline.storage.tables import Table
from segment_pipeline.storage.warehouse import ANALYTICS, quote_ident, table_exists, table_ref

EXAMPLES = 10
# A table keyed by the night's day is checked on the run's days only: older days were
# checked by their own runs, and a whole-history scan would grow night after night.
DAY_KEY = "as_of_date"


@dataclass(frozen=True)
class Finding:
    passed: bool
    summary: str
    count: int = 0
    columns: tuple[str, ...] = ()
    examples: list[tuple] = field(default_factory=list)


def _finding(con: duckdb.DuckDBPyConnection, sql: str, params: list, *, ok: str, broken: str) -> Finding:
    """Rows of ``sql`` break the rule: none passes with ``ok``; else ``broken`` formatted with the count."""
    cursor = con.execute(sql, params)
    columns = tuple(d[0] for d in cursor.description)
    rows = cursor.fetchall()
    if not rows:
        return Finding(True, ok, 0, columns)
    return Finding(False, broken.format(count=len(rows)), len(rows), columns, rows[:EXAMPLES])


def _absent(table: str) -> Finding:
    return Finding(True, f"analytics.{table} is not written yet")


def invalid_goals(con: duckdb.DuckDBPyConnection, days: list[date]) -> Finding:
    """Goals whose night ended ``invalid``: their buckets, audiences and uplift were not refreshed."""
    if not table_exists(con, ANALYTICS, "goal_status"):
        return _absent("goal_status")
    return _finding(
        con,
        """SELECT goal_name, as_of_date, message FROM analytics.goal_status
           WHERE status = 'invalid' AND as_of_date IN (SELECT unnest(?)) ORDER BY as_of_date, goal_name""",
        [days],
        ok="no goal is invalid",
        broken="{count} goal night(s) invalid: their outputs were not refreshed",
    )


def sample_ratio_mismatches(con: duckdb.DuckDBPyConnection, days: list[date], alarm: float = SRM_ALARM) -> Finding:
    """Goals whose test/control sizes do not fit the declared split (SRM p below ``alarm``):
    the split is broken, and no uplift of the goal can be trusted."""
    if not table_exists(con, ANALYTICS, "goal_uplift"):
        return _absent("goal_uplift")
    return _finding(
        con,
        """SELECT goal_name, as_of_date, test_users, control_users, srm_p_value FROM analytics.goal_uplift
           WHERE bucket = 'all' AND srm_p_value < ? AND as_of_date IN (SELECT unnest(?))
           ORDER BY as_of_date, goal_name""",
        [alarm, days],
        ok=f"every goal's split fits its declared control share (SRM p >= {alarm:g})",
        broken=f"{{count}} goal night(s) with a sample ratio mismatch (SRM p < {alarm:g}): the split is broken",
    )


def control_users_in_audiences(con: duckdb.DuckDBPyConnection, days: list[date]) -> Finding:
    """Control-group users in an engagement audience: a campaign would reach them and spoil the control."""
    for table in ("engagement_audiences", "target_groups"):
        if not table_exists(con, ANALYTICS, table):
            return _absent(table)
    return _finding(
        con,
        """SELECT a.goal_name, a.as_of_date, a.bucket, a.user_id FROM analytics.engagement_audiences a
           JOIN analytics.target_groups t ON t.goal_name = a.goal_name AND t.user_id = a.user_id
           WHERE t."group" = 'control' AND a.as_of_date IN (SELECT unnest(?))
           ORDER BY a.as_of_date, a.goal_name, a.user_id""",
        [days],
        ok="no control-group user is in any audience",
        broken="{count} control-group user(s) in engagement audiences",
    )


def duplicate_keys(con: duckdb.DuckDBPyConnection, table: Table, days: list[date]) -> Finding:
    """Key values held by more than one row of ``table`` (its registry key), on ``days`` when
    the key holds the night's day, else over the whole table."""
    if not table_exists(con, ANALYTICS, table.name):
        return _absent(table.name)
    keys = ", ".join(quote_ident(k) for k in table.keys)
    on_days = DAY_KEY in table.keys
    where = f"WHERE {DAY_KEY} IN (SELECT unnest(?))" if on_days else ""
    return _finding(
        con,
        f"""SELECT {keys}, count(*) AS rows FROM {table_ref(ANALYTICS, table.name)} {where}
            GROUP BY ALL HAVING count(*) > 1 ORDER BY rows DESC""",
        [days] if on_days else [],
        ok=f"every ({', '.join(table.keys)}) is one row" + (" on the run's days" if on_days else ""),
        broken=f"{{count}} ({', '.join(table.keys)}) value(s) held by several rows",
    )
