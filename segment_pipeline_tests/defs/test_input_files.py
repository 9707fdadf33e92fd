"""Input problems through the real Dagster job: a clear line naming the fix, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest

from segment_pipeline.definitions import defs as load_definitions
from segment_pipeline.settings import load_settings
from segment_pipeline.storage.connections import open_duckdb
from segment_pipeline_tests.conftest import make_events, write_events
from segment_pipeline_tests.defs.conftest import small_demo_resources

defs = load_definitions()

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DG = Path(sys.executable).parent / "dg"
INGEST = [
    a
    for a in defs.assets or []
    if isinstance(a, dg.AssetsDefinition) and set(a.group_names_by_key.values()) == {"ingest"}
]
INGEST_KEYS = {key for a in INGEST for key in a.keys}
INGEST_CHECKS = [c for c in defs.asset_checks or [] if {k.asset_key for k in c.check_keys} <= INGEST_KEYS]


def run_ingest(resources: dict, day: str) -> dg.ExecuteInProcessResult:
    return dg.materialize(INGEST + INGEST_CHECKS, resources=resources, partition_key=day, raise_on_error=False)


def failure_messages(result: dg.ExecuteInProcessResult) -> list[str]:
    return [e.step_failure_data.user_failure_data.description for e in result.all_events if e.is_step_failure]


def test_a_broken_file_is_reported_and_the_run_loads_the_others(tmp_path):
    src = tmp_path / "events"
    write_events(src / "good.ndjson", make_events(300))
    (src / "cut.parquet").write_bytes(b"PAR1" + b"\0" * 100)
    resources = small_demo_resources(tmp_path, events=str(src / "*"))
    result = run_ingest(resources, "2026-01-05")
    assert result.success, failure_messages(result)
    rejected_meta = result.asset_materializations_for_node("event_snapshots")[1].metadata
    assert rejected_meta["unreadable_files"].value == {
        str((src / "cut.parquet").resolve()): "unreadable file: not a Parquet file (empty or truncated?)"
    }
    with open_duckdb(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM analytics.event_snapshots").fetchone()[0] == 300

    write_events(src / "cut.parquet", make_events(20, prefix="fixed"))
    assert run_ingest(resources, "2026-01-06").success
    with open_duckdb(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM analytics.event_snapshots").fetchone()[0] == 320


def _file_in_the_way(tmp: Path) -> Path:
    (tmp / "data").write_text("not a folder")
    return tmp / "data" / "warehouse.duckdb"


def _a_folder(tmp: Path) -> Path:
    (tmp / "wh").mkdir()
    return tmp / "wh"


def _read_only_folder(tmp: Path) -> Path:
    (tmp / "ro").mkdir()
    (tmp / "ro").chmod(0o555)
    return tmp / "ro" / "warehouse.duckdb"


@pytest.mark.parametrize(
    ("make_path", "says"),
    [
        (_file_in_the_way, "is a file where a folder should be"),
        (_a_folder, "is a folder, not a file"),
        pytest.param(
            _read_only_folder,
            "permission denied",
            marks=pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders"),
        ),
    ],
)
def test_an_unusable_warehouse_path_fails_with_one_line_naming_it(tmp_path, make_path, says):
    write_events(tmp_path / "e.ndjson", make_events(10))
    path = make_path(tmp_path)
    resources = {**small_demo_resources(tmp_path, events=str(tmp_path / "e.ndjson"))}
    resources["warehouse"] = type(resources["warehouse"])(path=str(path))
    result = run_ingest(resources, "2026-01-05")
    assert not result.success
    messages = failure_messages(result)
    assert messages and all("\n" not in m for m in messages)
    assert f"SEGMENT_PIPELINE_WAREHOUSE={path}" in messages[0] and says in messages[0]


def dg_launch(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("SEGMENT_PIPELINE_", "DAGSTER_", "MLFLOW_"))}
    (tmp_path / "dagster_home").mkdir(exist_ok=True)  # run history of its own, not the project's
    environ.update(
        VIRTUAL_ENV=str(Path(sys.executable).parents[1]),
        MLFLOW_TRACKING_URI=(tmp_path / "mlruns").as_uri(),
        DAGSTER_HOME=str(tmp_path / "dagster_home"),
        SEGMENT_PIPELINE_WAREHOUSE=str(tmp_path / "warehouse.duckdb"),
        **env,
    )
    return subprocess.run(
        [str(DG), "launch", "--job", "nightly_refresh", *args],
        cwd=PROJECT_ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow
def test_dg_launch_of_a_day_outside_the_partitions_prints_one_line(tmp_path):
    write_events(tmp_path / "e.ndjson", make_events(10))
    today = datetime.now(UTC).date()
    # With SEGMENT_PIPELINE_EVENTS set (your own data), partitions start at the non-demo default.
    START_DATE = load_settings({"SEGMENT_PIPELINE_EVENTS": str(tmp_path / "e.ndjson")}).start_date
    cases = {
        "1990-01-01": "is before the first partition",
        today.isoformat(): "has not ended yet",
        f"{(START_DATE - timedelta(days=3)).isoformat()}...{(START_DATE + timedelta(days=1)).isoformat()}": "is before the first partition",
    }
    for key, says in cases.items():
        option = "--partition-range" if "..." in key else "--partition"
        done = dg_launch(tmp_path, option, key, SEGMENT_PIPELINE_EVENTS=str(tmp_path / "e.ndjson"))
        output = done.stdout + done.stderr
        assert done.returncode != 0 and "Traceback" not in output, output[-3000:]
        [line] = [x for x in done.stderr.splitlines() if x.startswith("Error:")]
        assert says in line and f"SEGMENT_PIPELINE_START_DATE={START_DATE}" in line
        assert f"to {today - timedelta(days=1)} (yesterday, UTC)" in line
    assert not (tmp_path / "warehouse.duckdb").exists()


@pytest.mark.slow
def test_dg_launch_with_a_start_date_before_1970_prints_one_line(tmp_path):
    done = dg_launch(tmp_path, "--partition", "1995-03-01", SEGMENT_PIPELINE_START_DATE="1969-12-31")
    assert done.returncode != 0 and "Traceback" not in done.stdout + done.stderr
    assert "Error: SEGMENT_PIPELINE_START_DATE='1969-12-31' is before 1970-01-01" in done.stderr


@pytest.mark.slow
def test_dg_launch_of_a_1995_day_on_history_from_1970_runs_the_whole_graph(tmp_path):
    rows = make_events(500, start=datetime(1970, 1, 1), users=40) + [
        {**row, "ts": (datetime(1995, 2, 20, i % 24, i % 60) + timedelta(days=i % 10)).isoformat()}
        for i, row in enumerate(make_events(3000, prefix="n", users=40))
    ]
    write_events(tmp_path / "history.parquet", rows)
    done = dg_launch(
        tmp_path,
        "--partition",
        "1995-03-01",
        SEGMENT_PIPELINE_START_DATE="1995-03-01",
        SEGMENT_PIPELINE_EVENTS=str(tmp_path / "history.parquet"),
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    with dg.DagsterInstance.from_config(str(tmp_path / "dagster_home")) as instance:
        evaluations = [
            r.event_log_entry.dagster_event.event_specific_data
            for r in instance.get_records_for_run(
                instance.get_runs()[0].run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
            ).records
        ]
    passed = {e.check_name for e in evaluations if e.passed}
    assert {"required_columns_present", "timestamps_inside_loaded_range", "event_ids_unique"} <= passed, evaluations
    with open_duckdb(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        first, count = con.execute("SELECT min(ts), count(*) FROM analytics.event_snapshots").fetchone()
        members = con.execute(
            "SELECT count(*) FROM analytics.segment_memberships WHERE as_of_date = ?", [date(1995, 3, 1)]
        ).fetchone()[0]
    assert first == datetime(1970, 1, 1) and count == 3500
    assert members > 0
