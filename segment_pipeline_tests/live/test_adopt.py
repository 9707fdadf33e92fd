"""Adopting the live state an earlier sensor kept in the warehouse: nothing pending is lost,
nothing already sent is sent again, and the warehouse is only read."""

from __future__ import annotations

import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest

from segment_pipeline.live import store
from segment_pipeline.live.adopt import AdoptError, adopt_warehouse_state
from segment_pipeline.live.engine import flush_deadlines, process_events
from segment_pipeline.live.outbox import deliver
from segment_pipeline.segments import history
from segment_pipeline.storage.warehouse import connect
from segment_pipeline_tests.live.receivers import Receiver
from segment_pipeline_tests.live.test_tags import LIVE, T, batch

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def old_warehouse(path: Path, url: str) -> None:
    """What the earlier sensor left: one entry delivered, one pending deadline, old outbox columns."""
    with connect(path) as con:
        process_events(
            con,
            LIVE,
            batch(("a", "u1", "app_launch", T), ("c", "u2", "checkout_viewed", T)),
            now=T + timedelta(minutes=1),
            late_tolerance_seconds=30,
        )
        deliver(con, url, now=T + timedelta(minutes=1))
        con.execute("ALTER TABLE pipeline_state.live_outbox DROP COLUMN retry_step")
        con.execute("ALTER TABLE pipeline_state.live_outbox DROP COLUMN last_attempt_at")
        history.ensure_tables(con)
        con.execute("CREATE OR REPLACE TEMP TABLE _m AS SELECT 'past one' AS segment_name, 'u9' AS user_id")
        history.replace_day(con, date(2026, 6, 1), "_m", ["past one"])
        history.update_tags(con, date(2026, 6, 1))


def test_adopted_state_carries_on_in_the_live_store(tmp_path):
    receiver = Receiver().start()
    try:
        warehouse, live = tmp_path / "warehouse.duckdb", tmp_path / "warehouse.live.duckdb"
        old_warehouse(warehouse, receiver.url)
        before = warehouse.read_bytes()
        copied = adopt_warehouse_state(warehouse, live, now=T + timedelta(minutes=2))
        assert copied["pipeline_state.live_outbox"] == 1 and copied["pipeline_state.live_pending"] == 1
        assert copied["analytics.segment_tags"] == 1  # the live tag; the past segment's stays in the warehouse
        assert warehouse.read_bytes() == before
        with store.connect(live) as con:
            # the pending deadline resolves in the live store and its entry is delivered once
            assert [
                e.user_id for e in flush_deadlines(con, LIVE, now=T + timedelta(minutes=6), late_tolerance_seconds=30)
            ] == ["u2"]
            deliver(con, receiver.url, now=T + timedelta(minutes=6))
            deliver(con, receiver.url, now=T + timedelta(minutes=7))
            statuses = con.execute("SELECT user_id, status FROM pipeline_state.live_outbox ORDER BY 1").fetchall()
        assert statuses == [("u1", "delivered"), ("u2", "delivered")]
        assert sorted(r.headers["Idempotency-Key"] for r in receiver.requests) == sorted(set(receiver.keys()))
        with pytest.raises(AdoptError, match="already in use"):
            adopt_warehouse_state(warehouse, live, now=T + timedelta(minutes=8))
    finally:
        receiver.stop()


@pytest.mark.slow
def test_adopt_command(tmp_path):
    warehouse, live = tmp_path / "warehouse.duckdb", tmp_path / "warehouse.live.duckdb"
    receiver = Receiver().start()
    try:
        old_warehouse(warehouse, receiver.url)
    finally:
        receiver.stop()
    done = subprocess.run(
        [sys.executable, "-m", "segment_pipeline.live.adopt", "--warehouse", str(warehouse), "--store", str(live)],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=120,
    )
    assert done.returncode == 0 and "pipeline_state.live_outbox 1" in done.stdout, done.stderr
    again = subprocess.run(
        [sys.executable, "-m", "segment_pipeline.live.adopt", "--warehouse", str(warehouse), "--store", str(live)],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=120,
    )
    assert again.returncode == 1 and "already in use" in again.stderr and "Traceback" not in again.stderr
