"""Bring the live sensor's tables into the warehouse the nightly run is about to publish.

The sensor writes only its live store; readers of the warehouse still find
``analytics.live_segment_entries`` and the live segments' rows of
``analytics.segment_tags`` there, as of the last nightly publish, because the publish
step calls ``copy_live_tables`` on its private copy of the warehouse just before the
rename.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import duckdb

from segment_pipeline.live import store
from segment_pipeline.live.outbox import ENTRIES
from segment_pipeline.segments import history
from segment_pipeline.storage.warehouse import attached_tables, scalar, transaction

_ALIAS = "sp_live_store"
_PAST_SEGMENTS = "SELECT segment_name FROM pipeline_state.segment_evaluations"


@dataclass(frozen=True)
class LiveCopy:
    copied: bool
    entries: int = 0  # rows of live_segment_entries now in the warehouse
    tags: int = 0  # live segments' rows of segment_tags now in the warehouse
    reason: str | None = None  # why nothing was copied

    def summary(self) -> str:
        if not self.copied:
            return f"live tables not copied: {self.reason}"
        return f"live tables copied: {self.entries} live_segment_entries, {self.tags} live segment_tags"


def copy_live_tables(
    con: duckdb.DuckDBPyConnection, live_store_path: Path | str, *, attempts: int = 5, wait_s: float = 0.2
) -> LiveCopy:
    """Replace ``analytics.live_segment_entries`` and the live segments' rows of
    ``analytics.segment_tags`` in the warehouse open on ``con`` (outside any transaction of
    the caller's) with the live store's, in one transaction.

    Past segments' tags (segments the nightly run evaluates) are left untouched. The live
    store is attached read-only; while the sensor is writing it, this tries ``attempts``
    times, ``wait_s`` apart (doubling), then returns ``copied=False`` with the warehouse
    unchanged. A missing or never-written live store also changes nothing.
    """
    path = Path(live_store_path)
    if not path.exists():
        return LiveCopy(False, reason=f"no live store at {path} (the live_segments sensor has not run)")
    for attempt in range(attempts):
        try:
            con.execute(f"ATTACH {store.sql_string(str(path))} AS {_ALIAS} (READ_ONLY)")
            break
        except duckdb.IOException as exc:
            if attempt == attempts - 1:
                return LiveCopy(False, reason=f"live store {path} busy (the sensor is writing it): {exc}")
            time.sleep(wait_s * 2**attempt)
    try:
        present = attached_tables(con, _ALIAS)
        if not {ENTRIES, "analytics.segment_tags"} <= present:
            return LiveCopy(False, reason=f"live store {path} has no live tables yet")
        con.execute("CREATE SCHEMA IF NOT EXISTS analytics; CREATE SCHEMA IF NOT EXISTS pipeline_state")
        history.ensure_tables(con)
        con.execute(
            f"CREATE TABLE IF NOT EXISTS {ENTRIES} (segment_name VARCHAR, user_id VARCHAR, entered_at TIMESTAMP, "
            "delivered_at TIMESTAMP, attempts INTEGER)"
        )
        with transaction(con):
            con.execute(f"DELETE FROM {ENTRIES}")
            con.execute(
                f"""INSERT INTO {ENTRIES} SELECT segment_name, user_id, entered_at, delivered_at, attempts
                    FROM {_ALIAS}.{ENTRIES} ORDER BY entered_at, segment_name, user_id"""
            )
            con.execute(f"DELETE FROM analytics.segment_tags WHERE segment_name NOT IN ({_PAST_SEGMENTS})")
            con.execute(
                f"""INSERT INTO analytics.segment_tags
                    SELECT user_id, segment_name, created_at, removed_at FROM {_ALIAS}.analytics.segment_tags
                    WHERE segment_name NOT IN ({_PAST_SEGMENTS}) ORDER BY segment_name, user_id, created_at"""
            )
            entries = scalar(con, f"SELECT count(*) FROM {ENTRIES}")
            tags = scalar(
                con, f"SELECT count(*) FROM analytics.segment_tags WHERE segment_name NOT IN ({_PAST_SEGMENTS})"
            )
        return LiveCopy(True, entries, tags)
    finally:
        con.execute(f"DETACH {_ALIAS}")
