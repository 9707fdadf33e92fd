"""The code location loads, and every asset joins the nightly job with the metadata people rely on."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg

from segment_pipeline.definitions import defs


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
