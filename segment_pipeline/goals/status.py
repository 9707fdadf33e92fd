"""Each goal's night in one row (``analytics.goal_status``): the status words and the write."""

from __future__ import annotations

from datetime import date

import duckdb

from segment_pipeline.storage.tables import column_ddl
from segment_pipeline.storage.warehouse import ANALYTICS, table_ref

ACTIVE, INSUFFICIENT, ENDED, INVALID = "active", "insufficient_history", "ended", "invalid"

GOAL_STATUS = (ANALYTICS, "goal_status")
DDL = {GOAL_STATUS: column_ddl(GOAL_STATUS[1])}


def write_status(
    con: duckdb.DuckDBPyConnection, goal_name: str, as_of: date, status: str, message: str, run_id: str | None
) -> None:
    """The goal's ``goal_status`` row of ``as_of``, replacing an earlier run's."""
    table = table_ref(*GOAL_STATUS)
    con.execute(f"DELETE FROM {table} WHERE goal_name = ? AND as_of_date = ?", [goal_name, as_of])
    con.execute(f"INSERT INTO {table} VALUES (?, ?, ?, ?, ?)", [goal_name, as_of, status, message, run_id])
