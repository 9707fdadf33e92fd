"""Readers never break the night; two runs at once never interleave; a killed run is marked failed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import dagster as dg
import pytest

from segment_pipeline.storage import publish
from segment_pipeline.storage.connections import open_duckdb
from segment_pipeline_tests.defs.conftest import small_demo_resources
from segment_pipeline_tests.defs.test_pipeline import ASSETS, CHECKS, run, table_dump

RUN_IN_SUBPROCESS = """
    import sys
    from pathlib import Path
    import dagster as dg
    from segment_pipeline_tests.defs.test_pipeline import ASSETS, CHECKS
    from segment_pipeline_tests.defs.conftest import small_demo_resources
    tmp, day, home = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    with dg.DagsterInstance.from_config(home) as instance:
        result = dg.materialize(ASSETS + CHECKS, resources=small_demo_resources(tmp), partition_key=day,
                                instance=instance, raise_on_error=False)
    print("SUCCESS" if result.success else "FAILURE", flush=True)
"""


def _launch(tmp: Path, day: str, home: Path) -> subprocess.Popen:
    home.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(RUN_IN_SUBPROCESS), str(tmp), day, str(home)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_a_reader_holding_the_warehouse_through_a_whole_run_sees_one_day_and_the_run_succeeds(tmp_path: Path) -> None:
    resources = small_demo_resources(tmp_path)
    assert run(resources, "2026-02-20").success
    path = tmp_path / "warehouse.duckdb"
    reader = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
            import duckdb, sys
            con = duckdb.connect({str(path)!r}, read_only=True)
            q = "SELECT max(snapshot_date)::VARCHAR, count(*) FROM analytics.event_snapshots"
            print(con.sql(q).fetchone(), flush=True)
            sys.stdin.readline()
            print(con.sql(q).fetchone(), flush=True)
        """),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        before = reader.stdout.readline().strip()
        assert before.startswith("('2026-02-20'")
        assert run(resources, "2026-02-21").success  # DuckDB's lock error here before the private build
        reader.stdin.write("again\n")
        reader.stdin.flush()
        assert reader.stdout.readline().strip() == before  # the same published day throughout
    finally:
        reader.kill()
        reader.wait()
    with open_duckdb(str(path), read_only=True) as con:
        assert (
            con.execute("SELECT max(snapshot_date)::VARCHAR FROM analytics.event_snapshots").fetchone()[0]
            == "2026-02-21"
        )


@pytest.mark.slow
def test_two_runs_at_once_take_turns_and_give_the_tables_of_one(tmp_path: Path) -> None:
    shared, alone = tmp_path / "shared", tmp_path / "alone"
    # Dagster's own SQLite run storage cannot be created by two processes at once: make it first.
    (tmp_path / "home").mkdir()
    dg.DagsterInstance.from_config(str(tmp_path / "home")).dispose()
    first = _launch(shared, "2026-02-20", tmp_path / "home")
    second = _launch(shared, "2026-02-20", tmp_path / "home")
    outputs = [p.communicate(timeout=600)[0] for p in (first, second)]
    assert [o.strip().splitlines()[-1] for o in outputs] == ["SUCCESS", "SUCCESS"], outputs
    assert any("waiting for the warehouse warehouse.duckdb: held by run-" in o for o in outputs)
    assert run(small_demo_resources(alone), "2026-02-20").success
    assert table_dump(shared / "warehouse.duckdb") == table_dump(alone / "warehouse.duckdb")


@pytest.mark.slow
def test_a_run_killed_while_it_holds_the_warehouse_is_marked_failed_by_the_next(tmp_path: Path) -> None:
    home = tmp_path / "home"
    victim = _launch(tmp_path, "2026-02-20", home)
    path = tmp_path / "warehouse.duckdb"
    deadline = time.monotonic() + 300
    while not list(tmp_path.glob(f".*{publish.BUILD_MARK}*")):  # it holds the lock and builds
        assert time.monotonic() < deadline and victim.poll() is None
        time.sleep(0.05)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    assert not path.exists()  # the first run never published: no half-done day

    with dg.DagsterInstance.from_config(str(home)) as instance:
        killed = instance.get_runs()[0]
        assert killed.status == dg.DagsterRunStatus.STARTED
        result = dg.materialize(
            ASSETS + CHECKS, resources=small_demo_resources(tmp_path), partition_key="2026-02-20", instance=instance
        )
        assert result.success
        marked = instance.get_run_by_id(killed.run_id)
        assert marked.status == dg.DagsterRunStatus.FAILURE
        failure = instance.get_records_for_run(killed.run_id, of_type=dg.DagsterEventType.RUN_FAILURE).records
        assert "died while it held the warehouse" in failure[0].event_log_entry.dagster_event.message
    assert table_dump(path)["event_snapshots"]


@pytest.mark.slow
def test_each_publish_brings_in_the_live_stores_entries(tmp_path: Path) -> None:
    from segment_pipeline.defs.resources import WarehouseResource
    from segment_pipeline_tests.live.test_publish import live_store_with_entries

    live = tmp_path / "warehouse.live.duckdb"
    live_store_with_entries(live)
    resources = small_demo_resources(tmp_path)
    resources["warehouse"] = WarehouseResource(path=str(tmp_path / "warehouse.duckdb"), live_store=str(live))
    assert run(resources, "2026-02-20").success
    with open_duckdb(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        entries = con.execute(
            "SELECT segment_name, user_id FROM analytics.live_segment_entries ORDER BY ALL"
        ).fetchall()
    with open_duckdb(str(live), read_only=True) as con:
        assert (
            entries
            == con.execute("SELECT segment_name, user_id FROM analytics.live_segment_entries ORDER BY ALL").fetchall()
        )
    assert entries
