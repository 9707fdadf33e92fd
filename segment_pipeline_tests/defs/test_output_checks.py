"""The checks people act on, run for real beside the assets: they pass on a clean night and name
the rows that break them on a tampered warehouse."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import dagster as dg
import duckdb

from segment_pipeline.defs.freshness import FRESHNESS_DEADLINE_CRON, nightly_freshness_checks
from segment_pipeline.defs.goals.checks import NO_CONTROL_IN_AUDIENCES_CHECK, NO_INVALID_GOAL_CHECK, SRM_CHECK
from segment_pipeline.defs.ingest.assets import PROFILES
from segment_pipeline.storage.tables import TABLES
from segment_pipeline_tests.defs.conftest import small_demo_resources
from segment_pipeline_tests.defs.test_goals_pipeline import goal_config  # noqa: F401 (pytest fixture)
from segment_pipeline_tests.defs.test_pipeline import ASSETS, CHECKS, run

DAY = "2026-02-20"
GOAL_CHECKS = dg.AssetSelection.checks(*(c for c in CHECKS if c.node_def.name == "goal_checks"))


def evaluations(result: dg.ExecuteInProcessResult) -> dict[tuple[str, str], dg.AssetCheckEvaluation]:
    return {(e.asset_key.path[-1], e.check_name): e for e in result.get_asset_check_evaluations()}


def test_goal_alarms_and_unique_keys_pass_on_a_clean_night_and_name_what_was_tampered(tmp_path, goal_config):  # noqa: F811
    resources = small_demo_resources(tmp_path, config_dir=goal_config)
    result = run(resources, DAY)
    assert result.success
    checks = evaluations(result)
    keyed = {table.name for table in TABLES} - {"event_snapshots"}  # event_ids_unique covers it
    assert {name for name, check in checks if check == "keys_unique"} == keyed
    for key in [*((name, "keys_unique") for name in keyed), ("goal_status", NO_INVALID_GOAL_CHECK)]:
        assert checks[key].passed, (key, checks[key].description)
    assert checks[("goal_uplift", SRM_CHECK)].passed
    assert checks[("engagement_audiences", NO_CONTROL_IN_AUDIENCES_CHECK)].passed

    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as con:
        control = con.execute(
            """SELECT goal_name, user_id FROM analytics.target_groups WHERE "group" = 'control'
               ORDER BY goal_name, user_id LIMIT 1"""
        ).fetchone()
        # The audiences are a view of intent_buckets' test users: a control user scored as test reaches one.
        con.execute(
            """UPDATE analytics.intent_buckets SET "group" = 'test', bucket = 'most_likely'
               WHERE goal_name = ? AND as_of_date = ? AND user_id = ?""",
            [control[0], DAY, control[1]],
        )
        con.execute(
            "UPDATE analytics.goal_status SET status = 'invalid', message = 'tampered' WHERE as_of_date = ?", [DAY]
        )
        con.execute(
            "UPDATE analytics.goal_uplift SET srm_p_value = 1e-9 WHERE as_of_date = ? AND bucket = 'all'", [DAY]
        )
        con.execute(
            "INSERT INTO analytics.goal_forecasts SELECT * FROM analytics.goal_forecasts WHERE as_of_date = ? LIMIT 1",
            [DAY],
        )

    # The goal checks again on the tampered warehouse, without recomputing the goals: the run takes
    # the cheap profiles asset along, since a run of checks alone has no partition to run for.
    selection = dg.AssetSelection.assets(PROFILES).without_checks() | GOAL_CHECKS
    tampered = dg.materialize(
        ASSETS + CHECKS, selection=selection, resources=resources, partition_key=DAY, raise_on_error=False
    )
    checks = evaluations(tampered)
    audience = checks[("engagement_audiences", NO_CONTROL_IN_AUDIENCES_CHECK)]
    assert not audience.passed and audience.metadata["offending"].value == 1
    assert control[1] in {r.data["user_id"] for r in audience.metadata["examples"].value.records}
    invalid = checks[("goal_status", NO_INVALID_GOAL_CHECK)]
    assert not invalid.passed and invalid.severity == dg.AssetCheckSeverity.WARN
    assert {r.data["message"] for r in invalid.metadata["examples"].value.records} == {"tampered"}
    assert not checks[("goal_uplift", SRM_CHECK)].passed
    forecasts = checks[("goal_forecasts", "keys_unique")]
    assert not forecasts.passed and forecasts.metadata["offending"].value == 1
    assert checks[("goal_status", "keys_unique")].passed


def expected_partition(now: datetime) -> str:
    """The day the freshness check expects: yesterday once today's 06:00 UTC deadline passed."""
    assert FRESHNESS_DEADLINE_CRON == "0 6 * * *"
    deadline_day = now.date() if now.time() >= time(6) else now.date() - timedelta(days=1)
    return (deadline_day - timedelta(days=1)).isoformat()


def test_freshness_fails_until_the_expected_day_is_materialized(tmp_path):
    instance = dg.DagsterInstance.ephemeral()
    profiles_asset = next(a for a in ASSETS if PROFILES in a.keys)
    freshness = nightly_freshness_checks()
    profiles_check = dg.AssetSelection.checks_for_assets(PROFILES) & dg.AssetSelection.checks(*freshness)
    resources = small_demo_resources(tmp_path)

    def freshness_of_profiles() -> dg.AssetCheckEvaluation:
        result = dg.materialize(
            [profiles_asset, *freshness], selection=profiles_check, instance=instance, resources=resources
        )
        (evaluation,) = result.get_asset_check_evaluations()
        return evaluation

    day = expected_partition(datetime.now(UTC))
    stale = freshness_of_profiles()
    assert not stale.passed and day in stale.description
    older = (date.fromisoformat(day) - timedelta(days=1)).isoformat()
    dg.materialize([profiles_asset], resources=resources, partition_key=older, instance=instance)
    assert not freshness_of_profiles().passed  # an older day does not make it fresh
    dg.materialize([profiles_asset], resources=resources, partition_key=day, instance=instance)
    assert freshness_of_profiles().passed
