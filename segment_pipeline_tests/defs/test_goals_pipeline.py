"""Goals through the real graph: freeze once, model in a real MLflow store, buckets, audiences."""

from __future__ import annotations

import shutil

import dagster as dg
import duckdb
import pytest

from segment_pipeline.defs.goals.assets import TARGET_GROUPS
from segment_pipeline.goals.control_group import assign_group
from segment_pipeline.settings import BUNDLED_CONFIG_DIR
from segment_pipeline_tests.defs.conftest import small_demo_resources
from segment_pipeline_tests.defs.test_pipeline import run

GOALS_YAML = """
kind: goals
maxActiveGoals: 3
goals:
  - goalName: carts in late february
    segment: {segment}
    createdOn: 2026-02-16
    endDate: 2026-02-26
    objective: maximize
    events:
      - eventType: add_to_cart
    controlGroupPercent: 10
    lookbackDays: 14
  - goalName: opera lovers
    segment: All Users
    createdOn: 2026-02-16
    endDate: 2026-02-26
    objective: maximize
    events:
      - eventType: charged
        eventProperties: {{category: opera}}
    lookbackDays: 14
"""


@pytest.fixture
def goal_config(tmp_path):
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    for name in ("segments.yaml", "scores.yaml"):
        shutil.copy(BUNDLED_CONFIG_DIR / name, config_dir / name)
    (config_dir / "goals.yaml").write_text(GOALS_YAML.format(segment="All Users"))
    return config_dir


def query(tmp_path, sql: str, params=None) -> list[tuple]:
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def test_goal_lifecycle_on_the_demo(tmp_path, goal_config):
    resources = small_demo_resources(tmp_path, config_dir=goal_config)
    result = run(resources, "2026-02-20")
    assert result.success
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert checks["control_share_matches_declared_percent"].passed

    # The warehouse holds exactly the documented tables and columns; the export copies them.
    from segment_pipeline.storage.tables import TABLES

    for table in TABLES:
        columns = query(tmp_path, """SELECT column_name, data_type FROM information_schema.columns
            WHERE table_schema = 'analytics' AND table_name = ? ORDER BY ordinal_position""", [table.name])
        expected = [(name, kind) for name, kind, _ in table.columns]
        assert (columns[: len(expected)] if table.dynamic_columns else columns) == expected, table.name
        exported = tmp_path / "exports" / f"{table.name}.parquet"
        assert exported.exists(), table.name
    uplift = query(tmp_path, "SELECT bucket, test_users + control_users FROM analytics.goal_uplift WHERE goal_name = 'carts in late february' AND as_of_date = '2026-02-20'")
    assert dict(uplift)["all"] == len(query(tmp_path, "SELECT * FROM analytics.target_groups WHERE goal_name = 'carts in late february'"))

    status = dict(query(tmp_path, "SELECT goal_name, status FROM analytics.goal_status WHERE as_of_date = '2026-02-20'"))
    assert status["carts in late february"] == "active", query(tmp_path, "SELECT * FROM analytics.goal_status")
    # A goal without history is reported, and does not stop the other one.
    assert status["opera lovers"] == "insufficient_history"
    message = query(tmp_path, "SELECT message FROM analytics.goal_status WHERE goal_name = 'opera lovers'")[0][0]
    assert "opera" in message

    group = query(tmp_path, """SELECT user_id, "group" FROM analytics.target_groups WHERE goal_name = 'carts in late february'""")
    assert len(group) > 300
    assert all(g == assign_group("carts in late february", u, 10) for u, g in group)
    # Members as of the day before createdOn: users whose first event is later are not in it.
    late = query(tmp_path, """SELECT count(*) FROM analytics.target_groups t
        WHERE goal_name = 'carts in late february' AND user_id NOT IN (
            SELECT user_id FROM analytics.event_snapshots WHERE ts < '2026-02-16'
            UNION SELECT user_id FROM analytics.profiles)""")[0][0]
    assert late == 0

    buckets = query(tmp_path, """SELECT bucket, count(*) FROM analytics.intent_buckets
        WHERE goal_name = 'carts in late february' AND as_of_date = '2026-02-20' GROUP BY 1""")
    assert sum(n for _, n in buckets) == len(group)
    assert {b for b, _ in buckets} <= {"most_likely", "moderately_likely", "least_likely", "achieved"}
    assert query(tmp_path, """SELECT count(*) FROM analytics.engagement_audiences a JOIN analytics.target_groups t
        USING (goal_name, user_id) WHERE t."group" = 'control'""")[0][0] == 0

    run_id = query(tmp_path, "SELECT model_run_id FROM analytics.goal_status WHERE goal_name = 'carts in late february'")[0][0]
    from segment_pipeline.goals.tracking import load_champion

    champion = load_champion(resources["mlflow"].tracking_uri, "carts in late february")
    assert champion is not None and champion.run_id == run_id

    forecasts = query(tmp_path, """SELECT day, predicted_low, predicted_cumulative, predicted_high, actual_cumulative
        FROM analytics.goal_forecasts WHERE goal_name = 'carts in late february' AND as_of_date = '2026-02-20' ORDER BY day""")
    assert len(forecasts) == 11
    assert all(lo <= p <= hi for _, lo, p, hi, _ in forecasts)
    assert [a is not None for d, *_, a in forecasts] == [d.isoformat() <= "2026-02-20" for d, *_ in forecasts]

    # A later night with an edited definition: the frozen group stays, the change is reported.
    edited = GOALS_YAML.format(segment="launched app").replace("endDate: 2026-02-26", "endDate: 2026-02-28", 1)
    (goal_config / "goals.yaml").write_text(edited)
    assert run(resources, "2026-02-21").success
    window = query(tmp_path, """SELECT count(*) FROM analytics.goal_forecasts
        WHERE goal_name = 'carts in late february' AND as_of_date = '2026-02-21'""")[0][0]
    assert window == 11  # the frozen window, not the edited one
    assert query(tmp_path, """SELECT user_id, "group" FROM analytics.target_groups
        WHERE goal_name = 'carts in late february' ORDER BY user_id""") == sorted(group)
    message = query(tmp_path, """SELECT message FROM analytics.goal_status
        WHERE goal_name = 'carts in late february' AND as_of_date = '2026-02-21'""")[0][0]
    assert "NOT APPLIED" in message


def test_goal_ends_after_its_end_date(tmp_path, goal_config):
    resources = small_demo_resources(tmp_path, config_dir=goal_config)
    assert run(resources, "2026-02-27").success
    status = query(tmp_path, """SELECT status FROM analytics.goal_status
        WHERE goal_name = 'carts in late february' AND as_of_date = '2026-02-27'""")
    assert status == [("ended",)]
    assert query(tmp_path, "SELECT count(*) FROM analytics.intent_buckets WHERE as_of_date = '2026-02-27'")[0][0] == 0
    actual = query(tmp_path, """SELECT max(actual_cumulative) FROM analytics.goal_forecasts
        WHERE goal_name = 'carts in late february' AND as_of_date = '2026-02-27'""")[0][0]
    assert actual > 0


def test_target_groups_key_is_exported():
    assert TARGET_GROUPS == dg.AssetKey(["analytics", "target_groups"])


def test_a_broken_tracking_store_fails_the_run_red_and_publishes_no_invalid_goal(tmp_path, goal_config):
    import sqlite3

    resources = small_demo_resources(tmp_path, config_dir=goal_config)
    assert run(resources, "2026-02-20").success
    published = query(tmp_path, "SELECT status, count(*) FROM analytics.goal_status GROUP BY 1 ORDER BY 1")
    assert ("invalid", 0) not in published and published

    store = tmp_path / "mlruns" / "mlflow.db"
    with sqlite3.connect(store) as con:  # a store with runs whose schema no MLflow knows
        con.execute("UPDATE alembic_version SET version_num = 'broken'")
    result = run(resources, "2026-02-21", raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert failure.step_key == "goals"
    assert "MLflow store" in failure.event_specific_data.user_failure_data.description
    assert query(tmp_path, "SELECT max(as_of_date)::VARCHAR FROM analytics.goal_status") == [("2026-02-20",)]
    assert query(tmp_path, "SELECT count(*) FROM analytics.goal_status WHERE status = 'invalid'") == [(0,)]
