"""The whole graph, materialized for real on a small demo (and on bad files) in a temp folder."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest

from segment_pipeline.config.project import validation_count
from segment_pipeline.definitions import defs as load_definitions
from segment_pipeline.storage.connections import open_duckdb
from segment_pipeline_tests.conftest import make_events, write_events
from segment_pipeline_tests.defs.conftest import SMALL_DEMO_DAY, small_demo_resources

defs = load_definitions()

ASSETS = list(defs.assets or [])
# As the nightly job runs them: freshness is judged by its sensor, against the clock.
CHECKS = [c for c in defs.asset_checks or [] if all(k.name != "freshness_check" for k in c.check_keys)]


def table_dump(path) -> dict[str, list]:
    with open_duckdb(str(path), read_only=True) as con:
        tables = [
            r[0]
            for r in con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'analytics' ORDER BY 1"
            ).fetchall()
        ]
        return {t: sorted(map(repr, con.execute(f'SELECT * FROM analytics."{t}"').fetchall())) for t in tables}


def run(resources: dict, day: str = SMALL_DEMO_DAY, raise_on_error: bool = True) -> dg.ExecuteInProcessResult:
    return dg.materialize(ASSETS + CHECKS, resources=resources, partition_key=day, raise_on_error=raise_on_error)


@pytest.mark.slow
def test_full_graph_on_the_demo_is_complete_and_rerunning_the_day_changes_nothing(tmp_path):
    resources = small_demo_resources(tmp_path)
    result = run(resources)
    assert result.success
    warehouse = tmp_path / "warehouse.duckdb"
    first = table_dump(warehouse)
    assert {"event_snapshots", "rejected_events", "profiles"} <= set(first)
    assert len(first["event_snapshots"]) > 5_000 and len(first["profiles"]) > 300
    with open_duckdb(str(warehouse), read_only=True) as con:
        max_ts = con.execute("SELECT max(ts) FROM analytics.event_snapshots").fetchone()[0]
    assert max_ts.isoformat() < "2026-02-28"  # nothing after the partition's day

    meta = result.asset_materializations_for_node("event_snapshots")[0].metadata
    assert meta["loaded_rows"].value == len(first["event_snapshots"])
    assert "| event_id |" in meta["preview"].value

    assert run(resources).success
    assert table_dump(warehouse) == first


@pytest.mark.slow
def test_the_next_day_loads_only_that_day(tmp_path):
    resources = small_demo_resources(tmp_path)
    run(resources, "2026-02-20")
    result = run(resources, "2026-02-21")
    loaded = result.asset_materializations_for_node("event_snapshots")[0].metadata["loaded_rows"].value
    with open_duckdb(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        per_day = con.execute(
            "SELECT count(*) FROM analytics.event_snapshots WHERE snapshot_date = '2026-02-21'"
        ).fetchone()[0]
        outside = con.execute(
            "SELECT count(*) FROM analytics.event_snapshots WHERE snapshot_date = '2026-02-21' "
            "AND ts::DATE <> '2026-02-21'"
        ).fetchone()[0]
    assert loaded == per_day > 0 and outside == 0


def test_a_bad_file_fails_the_run_by_name_and_writes_nothing(tmp_path):
    src = tmp_path / "events"
    write_events(src / "good.ndjson", make_events(500, prefix="g"))
    resources = small_demo_resources(tmp_path, events=str(src / "*"))
    assert run(resources, "2026-01-05").success
    before = table_dump(tmp_path / "warehouse.duckdb")

    bad = make_events(90, prefix="x") + [
        {"user_id": "", "event_name": "login", "ts": "2026-01-02T00:00:00", "properties": json.dumps({})}
        for _ in range(10)
    ]
    write_events(src / "export_0106.ndjson", bad)
    result = run(resources, "2026-01-06", raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    message = failure.step_failure_data.user_failure_data.description
    assert "export_0106.ndjson" in message and "empty user_id" in message
    assert table_dump(tmp_path / "warehouse.duckdb") == before


@pytest.mark.parametrize("variable", ["SEGMENT_PIPELINE_MAX_REJECT_RATE"])
def test_bad_settings_fail_with_the_variable_named(monkeypatch, variable):
    from segment_pipeline.settings import SettingsError, load_settings

    with pytest.raises(SettingsError, match=variable):
        load_settings({variable: "lots"})


def check_results(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def test_quality_checks_run_with_the_load_and_pass_on_the_demo(tmp_path):
    result = run(small_demo_resources(tmp_path))
    checks = check_results(result)
    assert {
        "required_columns_present",
        "timestamps_inside_loaded_range",
        "event_ids_unique",
        "daily_volume_normal",
    } <= set(checks)
    blocking = {
        k: v
        for k, v in checks.items()
        if k in ("required_columns_present", "timestamps_inside_loaded_range", "event_ids_unique")
    }
    assert all(c.passed for c in blocking.values()), {k: c.description for k, c in blocking.items()}
    # GX's Data Docs of the run's validations are next to the warehouse, linked from each check.
    docs = Path(blocking["event_ids_unique"].metadata["data_docs"].value)
    assert docs == tmp_path / "data_docs" / "index.html" and docs.is_file()
    pages = "".join(p.read_text() for p in (tmp_path / "data_docs" / "validations").rglob("*.html"))
    assert "snapshot_unique_event_ids" in pages and "snapshot_required_columns" in pages
    assert blocking["required_columns_present"].metadata["expect_column_values_to_not_be_null(user_id)"].value == (
        "passed"
    )


def test_a_corrupted_snapshot_fails_the_blocking_checks_with_examples(tmp_path):
    resources = small_demo_resources(tmp_path)
    run(resources)
    with open_duckdb(str(tmp_path / "warehouse.duckdb")) as con:
        con.execute(
            """INSERT INTO analytics.event_snapshots
               SELECT event_id, user_id, event_name, TIMESTAMP '2026-03-05 00:00:00', properties, snapshot_date
               FROM analytics.event_snapshots WHERE snapshot_date = ? ORDER BY event_id LIMIT 1""",
            [SMALL_DEMO_DAY],
        )
        dup_id = con.execute("SELECT event_id FROM analytics.event_snapshots WHERE ts = '2026-03-05'").fetchone()[0]
    result = run(resources, raise_on_error=False)  # loads nothing new; the checks see the corruption
    checks = check_results(result)
    assert not checks["event_ids_unique"].passed
    assert dup_id in checks["event_ids_unique"].description
    rules = {r.data["rule"]: r.data for r in checks["event_ids_unique"].metadata["rules"].value.records}
    assert rules["expect_column_values_to_be_unique(event_id)"]["unexpected_rows"] == 2
    assert dup_id in rules["expect_column_values_to_be_unique(event_id)"]["finding"]
    assert not checks["timestamps_inside_loaded_range"].passed
    assert "2026-03-05" in checks["timestamps_inside_loaded_range"].description
    assert checks["required_columns_present"].passed


def test_a_broken_segment_definition_stops_the_run_before_anything_is_written(tmp_path):
    from segment_pipeline.settings import BUNDLED_CONFIG_DIR

    config_dir = tmp_path / "config"
    config_dir.mkdir()
    for name in ("goals.yaml", "scores.yaml"):
        (config_dir / name).write_text((BUNDLED_CONFIG_DIR / name).read_text())
    text = (BUNDLED_CONFIG_DIR / "segments.yaml").read_text()
    # Break rule 2 of "charged 3 times": a past segment needs a time frame of at least one day.
    block = text.index("segmentName: charged 3 times")
    frame = text.index("segmentTimeframe: 90", block)
    broken = text[:frame] + "segmentTimeframe: 0" + text[frame + len("segmentTimeframe: 90") :]
    assert broken != text
    (config_dir / "segments.yaml").write_text(broken)

    validations = validation_count()
    result = run(small_demo_resources(tmp_path, config_dir=config_dir), raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    message = failure.step_failure_data.user_failure_data.description
    assert "segments.yaml" in message and "charged 3 times" in message and "rule 2" in message
    # Both first steps refuse the broken config, from one validation of the folder.
    failed_steps = [e for e in result.all_events if e.is_step_failure]
    assert len(failed_steps) == 2 and validation_count() == validations + 1
    assert not (tmp_path / "warehouse.duckdb").exists() or table_dump(tmp_path / "warehouse.duckdb") == {}
