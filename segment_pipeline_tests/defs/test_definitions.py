"""The code location loads, and every asset joins the nightly job with the metadata people rely on."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg
import pytest

from segment_pipeline.definitions import defs as load_definitions

defs = load_definitions()


def test_definitions_load_and_the_nightly_job_covers_every_asset():
    job = defs.resolve_job_def("nightly_refresh")
    repo = defs.get_repository_def()
    all_keys = set(repo.asset_graph.materializable_asset_keys)
    assert all_keys, "no assets loaded"
    assert set(job.asset_layer.selected_asset_keys) == all_keys
    assert job.partitions_def is not None


def test_nightly_schedule_runs_after_midnight_utc_for_the_day_that_ended():
    schedule = defs.resolve_schedule_def("nightly_refresh_schedule")
    assert (schedule.execution_timezone or "UTC") == "UTC"
    with dg.instance_for_test() as instance:
        tick = dg.build_schedule_context(instance, scheduled_execution_time=datetime(2026, 6, 21, 0, 30, tzinfo=UTC))
        requests = schedule.evaluate_tick(tick).run_requests or []
    assert [(r.job_name, r.partition_key) for r in requests] == [("nightly_refresh", "2026-06-20")]


def test_every_asset_has_a_group_a_kind_and_a_business_description():
    graph = defs.get_repository_def().asset_graph
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.group_name and node.group_name != "default", key
        assert node.kinds, key
        assert node.description and len(node.description) > 40, key


def test_every_asset_is_partitioned_daily_with_single_run_backfills():
    repo = defs.get_repository_def()
    for key in repo.asset_graph.materializable_asset_keys:
        node = repo.asset_graph.get(key)
        assert isinstance(node.partitions_def, dg.DailyPartitionsDefinition), key
        assert node.backfill_policy == dg.BackfillPolicy.single_run(), key


def test_the_webhook_url_and_secret_reach_the_ui_by_variable_name_only(monkeypatch):
    from segment_pipeline.defs.resources import default_resources

    url, secret = "https://hooks.example.com/in?token=t0ps3cret", "whsec_c2VjcmV0LWtleQ=="
    monkeypatch.setenv("SEGMENT_PIPELINE_WEBHOOK_URL", url)
    monkeypatch.setenv("SEGMENT_PIPELINE_WEBHOOK_SECRET", secret)
    live = default_resources()["live_config"]
    shown = str(live._get_non_default_public_field_values())  # what the UI's resource page lists
    assert "SEGMENT_PIPELINE_WEBHOOK_URL" in shown and "SEGMENT_PIPELINE_WEBHOOK_SECRET" in shown
    assert url not in shown and secret not in shown
    with dg.build_resources({"live_config": live}) as resolved:
        assert (resolved.live_config.webhook_url, resolved.live_config.webhook_secret) == (url, secret)


def test_importing_the_package_reads_no_setting(monkeypatch):
    """A broken variable fails when the definitions load, not when a module is imported."""
    import importlib
    import sys

    monkeypatch.setenv("SEGMENT_PIPELINE_START_DATE", "not a day")
    for name in [m for m in sys.modules if m.startswith("segment_pipeline.def")]:
        monkeypatch.delitem(sys.modules, name)
    module = importlib.import_module("segment_pipeline.definitions")
    for name in ("ingest.assets", "goals.assets", "jobs", "live.sensors", "partitions"):
        importlib.import_module(f"segment_pipeline.defs.{name}")
    from segment_pipeline.defs.failures import _chain
    from segment_pipeline.settings import SettingsError

    with pytest.raises(Exception) as raised:  # noqa: PT011  # Dagster wraps it in its load error; the cause is checked below
        module.defs()
    causes = [e for e in _chain(raised.value) if isinstance(e, SettingsError)]
    assert causes and "SEGMENT_PIPELINE_START_DATE='not a day'" in str(causes[0])


def test_the_nightly_job_runs_every_check_but_freshness_which_its_sensor_runs():
    job = defs.resolve_job_def("nightly_refresh")
    steps = {node.name for node in job.graph.node_defs}
    assert {"event_snapshot_quality", "goal_checks", "segment_unique_keys", "user_scores_unique_keys"} <= steps
    assert not any(step.startswith("freshness_check") for step in steps)
    sensor = defs.resolve_sensor_def("nightly_freshness")
    assert sensor.asset_selection is not None
