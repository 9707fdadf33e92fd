"""copy_live_tables: the nightly publish step brings the live store's tables into its
warehouse copy, leaves past segments' tags alone, and changes nothing while the store is busy."""

from __future__ import annotations

import subprocess
import sys
from datetime import date, datetime, timedelta
from pathlib import Path

import polars as pl

from segment_pipeline.live import store
from segment_pipeline.live.engine import process_events
from segment_pipeline.live.publish import copy_live_tables
from segment_pipeline.segments import history
from segment_pipeline.storage.warehouse import connect
from segment_pipeline_tests.live.test_tags import LIVE, batch

T = datetime(2026, 6, 1, 12, 0)


def warehouse_with_past_tags(path: Path) -> list[tuple]:
    """A warehouse with a past segment's tags and stale live rows from an earlier publish."""
    with connect(path) as con:
        history.ensure_tables(con)
        con.execute("CREATE OR REPLACE TEMP TABLE _m (segment_name VARCHAR, user_id VARCHAR)")
        con.execute("INSERT INTO _m VALUES ('past one', 'u9'), ('past one', 'u8')")
        history.replace_day(con, date(2026, 6, 1), "_m", ["past one"])
        history.update_tags(con, date(2026, 6, 1))
        con.execute("INSERT INTO analytics.segment_tags VALUES ('u1', 'launched', '2026-01-01', NULL)")  # stale live
        con.execute(
            "CREATE TABLE analytics.live_segment_entries (segment_name VARCHAR, user_id VARCHAR, entered_at TIMESTAMP, "
            "delivered_at TIMESTAMP, attempts INTEGER)"
        )
        con.execute("INSERT INTO analytics.live_segment_entries VALUES ('launched', 'u1', '2026-01-01', NULL, 0)")
        return con.execute(
            "SELECT * FROM analytics.segment_tags WHERE segment_name = 'past one' ORDER BY user_id"
        ).fetchall()


def live_store_with_entries(path: Path) -> None:
    with store.connect(path) as con:
        process_events(
            con,
            LIVE,
            batch(("a", "u1", "app_launch", T), ("c", "u2", "checkout_viewed", T)),
            now=T + timedelta(minutes=20),
            late_tolerance_seconds=30,
        )
        process_events(
            con,
            LIVE,
            batch(("p", "u2", "charged", T + timedelta(minutes=30))),
            now=T + timedelta(minutes=31),
            late_tolerance_seconds=30,
        )


def dump(path: Path) -> dict[str, list]:
    with connect(path, read_only=True) as con:
        return {
            table: con.execute(f"SELECT * FROM analytics.{table} ORDER BY ALL").fetchall()
            for table in ("segment_tags", "live_segment_entries")
        }


def test_live_tables_replace_the_warehouse_rows_and_past_tags_stay(tmp_path):
    warehouse, live = tmp_path / "warehouse.duckdb", tmp_path / "warehouse.live.duckdb"
    past_tags = warehouse_with_past_tags(warehouse)
    live_store_with_entries(live)
    with connect(warehouse) as con:
        copied = copy_live_tables(con, live)
    assert (copied.copied, copied.entries, copied.tags) == (True, 2, 2), copied
    tables = dump(warehouse)
    assert [row for row in tables["segment_tags"] if row[1] == "past one"] == past_tags
    assert sorted(row for row in tables["segment_tags"] if row[1] != "past one") == [
        ("u1", "launched", T, None),
        ("u2", "abandoned", T + timedelta(minutes=5), T + timedelta(minutes=30)),
    ]
    assert [(s, u, e) for s, u, e, *_ in tables["live_segment_entries"]] == [
        ("abandoned", "u2", T + timedelta(minutes=5)),
        ("launched", "u1", T),
    ]
    with connect(warehouse) as con:  # idempotent, and the store was only read
        assert copy_live_tables(con, live).copied
        assert (
            con.execute("SELECT count(*) FROM duckdb_databases() WHERE database_name = 'sp_live_store'").fetchone()[0]
            == 0
        )
    assert dump(warehouse) == tables


def test_a_missing_live_store_changes_nothing(tmp_path):
    warehouse = tmp_path / "warehouse.duckdb"
    warehouse_with_past_tags(warehouse)
    before = dump(warehouse)
    with connect(warehouse) as con:
        copied = copy_live_tables(con, tmp_path / "nowhere.live.duckdb")
    assert not copied.copied and "no live store" in copied.reason
    assert dump(warehouse) == before


_HOLDER = """
import sys, time
from segment_pipeline.live import store
with store.connect(sys.argv[1]) as con:
    print("holding", flush=True)
    time.sleep(60)
"""


def test_a_busy_live_store_is_retried_then_left_alone(tmp_path):
    warehouse, live = tmp_path / "warehouse.duckdb", tmp_path / "warehouse.live.duckdb"
    warehouse_with_past_tags(warehouse)
    live_store_with_entries(live)
    before = dump(warehouse)
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(live)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"  # the sensor is mid-tick
        with connect(warehouse) as con:
            copied = copy_live_tables(con, live, attempts=3, wait_s=0.05)
    finally:
        holder.kill()
        holder.wait(timeout=30)
    assert not copied.copied and "busy" in copied.reason
    assert dump(warehouse) == before
    with connect(warehouse) as con:  # once the tick is over, the copy goes through
        assert copy_live_tables(con, live).copied


def test_nightly_tags_after_a_copy_still_leave_live_tags_alone(tmp_path):
    warehouse, live = tmp_path / "warehouse.duckdb", tmp_path / "warehouse.live.duckdb"
    warehouse_with_past_tags(warehouse)
    live_store_with_entries(live)
    with connect(warehouse) as con:
        copy_live_tables(con, live)
        con.register("_members", pl.DataFrame({"segment_name": ["past one"], "user_id": ["u9"]}))
        con.execute("CREATE OR REPLACE TEMP TABLE _m AS SELECT * FROM _members")
        history.replace_day(con, date(2026, 5, 31), "_m", ["past one"])  # an older day: a rebuild
        history.update_tags(con, date(2026, 5, 31))
        live_tags = con.execute(
            "SELECT count(*) FROM analytics.segment_tags WHERE segment_name <> 'past one'"
        ).fetchone()[0]
    assert live_tags == 2
