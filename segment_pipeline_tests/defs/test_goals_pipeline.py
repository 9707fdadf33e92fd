"""Goals through the real graph: freeze once, model in a real MLflow store, buckets, audiences."""

from __future__ import annotations

import shutil
from datetime import date

import dagster as dg
import pytest

from segment_pipeline.defs.goals.assets import TARGET_GROUPS
from segment_pipeline.goals.control_group import assign_group
from segment_pipeline.settings import BUNDLED_CONFIG_DIR
from segment_pipeline.storage.connections import open_duckdb
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
    with open_duckdb(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


@pytest.mark.slow
def test_goal_lifecycle_on_the_demo(tmp_path, goal_config):
    resources = small_demo_resources(tmp_path, config_dir=goal_config)
    result = run(resources, "2026-02-20")
    assert result.success
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert checks["control_share_matches_declared_percent"].passed

    # The warehouse holds exactly the documented tables and columns; the export copies them.
    from segment_pipeline.storage.tables import TABLES

    for table in TABLES:
        columns = query(
            tmp_path,
            """SELECT column_name, data_type FROM information_schema.columns
            WHERE table_schema = 'analytics' AND table_name = ? ORDER BY ordinal_position""",
            [table.name],
        )
        expected = [(name, kind) for name, kind, _ in table.columns]
        assert (columns[: len(expected)] if table.dynamic_columns else columns) == expected, table.name
        exported = tmp_path / "exports" / f"{table.name}.parquet"
        assert exported.exists(), table.name
    uplift = query(
        tmp_path,
        "SELECT bucket, test_users + control_users FROM analytics.goal_uplift WHERE goal_name = 'carts in late february' AND as_of_date = '2026-02-20'",
    )
    assert dict(uplift)["all"] == len(
        query(tmp_path, "SELECT * FROM analytics.target_groups WHERE goal_name = 'carts in late february'")
    )

    status = dict(
        query(tmp_path, "SELECT goal_name, status FROM analytics.goal_status WHERE as_of_date = '2026-02-20'")
    )
    assert status["carts in late february"] == "active", query(tmp_path, "SELECT * FROM analytics.goal_status")
    # A goal without history is reported, and does not stop the other one.
    assert status["opera lovers"] == "insufficient_history"
    message = query(tmp_path, "SELECT message FROM analytics.goal_status WHERE goal_name = 'opera lovers'")[0][0]
    assert "opera" in message

    group = query(
        tmp_path, """SELECT user_id, "group" FROM analytics.target_groups WHERE goal_name = 'carts in late february'"""
    )
    assert len(group) > 300
    assert all(g == assign_group("carts in late february", u, 10) for u, g in group)
    # Members as of the day before createdOn: users whose first event is later are not in it.
    late = query(
        tmp_path,
        """SELECT count(*) FROM analytics.target_groups t
        WHERE goal_name = 'carts in late february' AND user_id NOT IN (
            SELECT user_id FROM analytics.event_snapshots WHERE ts < '2026-02-16'
            UNION SELECT user_id FROM analytics.profiles)""",
    )[0][0]
    assert late == 0

    buckets = query(
        tmp_path,
        """SELECT bucket, count(*) FROM analytics.intent_buckets
        WHERE goal_name = 'carts in late february' AND as_of_date = '2026-02-20' GROUP BY 1""",
    )
    assert sum(n for _, n in buckets) == len(group)
    assert {b for b, _ in buckets} <= {"most_likely", "moderately_likely", "least_likely", "achieved"}
    assert (
        query(
            tmp_path,
            """SELECT count(*) FROM analytics.engagement_audiences a JOIN analytics.target_groups t
        USING (goal_name, user_id) WHERE t."group" = 'control'""",
        )[0][0]
        == 0
    )

    run_id = query(
        tmp_path, "SELECT model_run_id FROM analytics.goal_status WHERE goal_name = 'carts in late february'"
    )[0][0]
    from segment_pipeline.goals.tracking import load_champion

    champion = load_champion(resources["mlflow"].tracking_uri, "carts in late february")
    assert champion is not None and champion.run_id == run_id

    forecasts = query(
        tmp_path,
        """SELECT day, predicted_low, predicted_cumulative, predicted_high, actual_cumulative
        FROM analytics.goal_forecasts WHERE goal_name = 'carts in late february' AND as_of_date = '2026-02-20' ORDER BY day""",
    )
    assert len(forecasts) == 11
    assert all(lo <= p <= hi for _, lo, p, hi, _ in forecasts)
    assert [a is not None for d, *_, a in forecasts] == [d.isoformat() <= "2026-02-20" for d, *_ in forecasts]

    # A later night with an edited definition: the frozen group stays, the change is reported.
    edited = GOALS_YAML.format(segment="launched app").replace("endDate: 2026-02-26", "endDate: 2026-02-28", 1)
    (goal_config / "goals.yaml").write_text(edited)
    assert run(resources, "2026-02-21").success
    window = query(
        tmp_path,
        """SELECT count(*) FROM analytics.goal_forecasts
        WHERE goal_name = 'carts in late february' AND as_of_date = '2026-02-21'""",
    )[0][0]
    assert window == 11  # the frozen window, not the edited one
    assert query(
        tmp_path,
        """SELECT user_id, "group" FROM analytics.target_groups
        WHERE goal_name = 'carts in late february' ORDER BY user_id""",
    ) == sorted(group)
    message = query(
        tmp_path,
        """SELECT message FROM analytics.goal_status
        WHERE goal_name = 'carts in late february' AND as_of_date = '2026-02-21'""",
    )[0][0]
    assert "NOT APPLIED" in message


def test_scoring_in_small_batches_writes_the_same_buckets(tmp_path, goal_config):
    from segment_pipeline.goals.outcomes import load_night
    from segment_pipeline.goals.scoring import score_night
    from segment_pipeline.goals.store import require_stored_model
    from segment_pipeline.goals.target_groups import frozen_goal, target_group
    from segment_pipeline.goals.tracking import load_champion
    from segment_pipeline.storage import warehouse

    resources = small_demo_resources(tmp_path, config_dir=goal_config)
    assert run(resources, "2026-02-20").success
    night = "SELECT * FROM analytics.intent_buckets WHERE goal_name = ? AND as_of_date = '2026-02-20' ORDER BY user_id"
    with warehouse.connect(tmp_path / "warehouse.duckdb") as con:
        scored = [r[0] for r in con.execute("SELECT DISTINCT goal_name FROM analytics.intent_buckets").fetchall()]
        assert scored
        for name in scored:
            whole = con.execute(night, [name]).fetchall()
            goal = frozen_goal(con, name)
            stored = require_stored_model(con, name)
            champion = load_champion(resources["mlflow"].tracking_uri, name, stored["model_uri"])
            night_inputs = load_night(con, goal, target_group(con, name), stored, date(2026, 2, 20))
            outcome = score_night(con, night_inputs, champion.model, batch_users=37)
            assert outcome.users == len(whole) > 37
            assert con.execute(night, [name]).fetchall() == whole


def test_goal_ends_after_its_end_date(tmp_path, goal_config):
    resources = small_demo_resources(tmp_path, config_dir=goal_config)
    assert run(resources, "2026-02-27").success
    status = query(
        tmp_path,
        """SELECT status FROM analytics.goal_status
        WHERE goal_name = 'carts in late february' AND as_of_date = '2026-02-27'""",
    )
    assert status == [("ended",)]
    assert query(tmp_path, "SELECT count(*) FROM analytics.intent_buckets WHERE as_of_date = '2026-02-27'")[0][0] == 0
    actual = query(
        tmp_path,
        """SELECT max(actual_cumulative) FROM analytics.goal_forecasts
        WHERE goal_name = 'carts in late february' AND as_of_date = '2026-02-27'""",
    )[0][0]
    assert actual > 0


def test_target_groups_key_is_exported():
    assert dg.AssetKey(["analytics", "target_groups"]) == TARGET_GROUPS


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


def _goal_yaml(**keys) -> str:
    base = {
        "goalName": "carts in late february",
        "segment": "All Users",
        "createdOn": "2026-02-16",
        "endDate": "2026-02-26",
        "objective": "maximize",
        "events": "[{eventType: add_to_cart}]",
        "controlGroupPercent": 10,
        "lookbackDays": 14,
    } | keys
    return "kind: goals\ngoals:\n  - " + "\n    ".join(f"{k}: {v}" for k, v in base.items()) + "\n"


@pytest.mark.slow
def test_retraining_on_schedule_and_realized_quality_of_every_scored_night(tmp_path, goal_config):
    (goal_config / "goals.yaml").write_text(_goal_yaml(retrainEveryDays=2))
    resources = small_demo_resources(tmp_path, config_dir=goal_config)
    for day in ("2026-02-17", "2026-02-18", "2026-02-19"):
        assert run(resources, day).success

    decisions = query(
        tmp_path,
        """SELECT as_of_date, model_kind, promoted, reason, champion_kind
        FROM pipeline_state.goal_model_decisions ORDER BY as_of_date""",
    )
    # Trained at creation (as of the freeze day), then every 2 days: not on the 18th.
    assert [str(d[0]) for d in decisions] == ["2026-02-15", "2026-02-17", "2026-02-19"]
    assert all(kind in ("xgboost", "logistic", "bgnbd") for _, kind, *_ in decisions)
    assert "won on the held-out rows" in decisions[0][3] and "first model for this goal" in decisions[0][3]
    assert all("champion v1" in reason for *_, reason, _ in decisions[1:2])  # judged against the champion
    messages = dict(query(tmp_path, "SELECT as_of_date, message FROM analytics.goal_status"))
    assert f"retrained as of 2026-02-17: champion {decisions[1][4]}" in messages[date(2026, 2, 17)]
    assert "retrained" not in messages[date(2026, 2, 18)].split("champion:")[0]
    assert f"retrained as of 2026-02-19: champion {decisions[-1][4]}" in messages[date(2026, 2, 19)]
    assert f"champion: {decisions[1][4]} (last trained as of 2026-02-17)" in messages[date(2026, 2, 18)]
    assert run(resources, "2026-02-19").success  # a re-run of a retrain night tells the same
    assert dict(query(tmp_path, "SELECT as_of_date, message FROM analytics.goal_status")) == messages

    import mlflow

    from segment_pipeline.goals.tracking import EXPERIMENT_NAME, resolve_store

    mlflow.set_tracking_uri(resolve_store(resources["mlflow"].tracking_uri)[0])
    runs = mlflow.search_runs(experiment_names=[EXPERIMENT_NAME], output_format="list")
    retrains = [r for r in runs if r.data.tags.get("as_of") == "2026-02-17" and "promotion" in r.data.tags]
    assert len(retrains) == 1 and retrains[0].data.tags["promotion_reason"]
    candidates = [r for r in runs if r.data.tags.get("as_of") == "2026-02-17" and "selected" in r.data.tags]
    assert sorted(r.data.tags["model_kind"] for r in candidates) == ["bgnbd", "logistic", "xgboost"]

    assert query(tmp_path, "SELECT count(*) FROM analytics.goal_model_quality")[0][0] == 0  # horizon not passed
    result = run(resources, "2026-02-26")
    assert result.success
    rows = query(
        tmp_path,
        """SELECT prediction_date, model_run_id, horizon_end, users, achievers, predicted_achievers,
        auc, auc_ci_low, auc_ci_high, brier, top_bucket_lift FROM analytics.goal_model_quality ORDER BY 1""",
    )
    assert [str(r[0]) for r in rows] == ["2026-02-17", "2026-02-18", "2026-02-19"]
    for night, run_id, horizon, users, achievers, predicted, auc, low, high, brier, lift in rows:
        assert horizon == date(2026, 2, 26)
        assert (
            run_id
            == query(tmp_path, "SELECT model_run_id FROM analytics.goal_status WHERE as_of_date = ?", [night])[0][0]
        )
        assert (
            users
            == query(
                tmp_path,
                """SELECT count(*) FROM analytics.intent_buckets
            WHERE as_of_date = ? AND bucket <> 'achieved'""",
                [night],
            )[0][0]
        )
        assert 0 < achievers < users and predicted > 0 and 0 <= brier <= 1
        assert 0 <= low <= auc <= high <= 1 and lift > 0
    metadata = next(
        m.event_specific_data.materialization.metadata
        for m in result.get_asset_materialization_events()
        if m.event_specific_data.materialization.asset_key.path[-1] == "goal_model_quality"
    )
    assert metadata["carts in late february: realized auc"].value == pytest.approx(rows[-1][6])
    history = mlflow.MlflowClient().get_metric_history(rows[-1][1], "realized_auc")  # on the run that scored it
    assert [(m.step, m.value) for m in history if m.step == 3] == [(3, pytest.approx(rows[-1][6]))]
    assert run(resources, "2026-02-27").success  # written once per prediction date
    assert query(tmp_path, "SELECT count(*) FROM analytics.goal_model_quality")[0][0] == 3


def test_a_goal_stuck_on_short_history_takes_a_shorter_lookback_until_its_first_model(tmp_path, goal_config):
    (goal_config / "goals.yaml").write_text(_goal_yaml(lookbackDays=40))
    resources = small_demo_resources(tmp_path, config_dir=goal_config)
    assert run(resources, "2026-02-16").success
    status, message = query(tmp_path, "SELECT status, message FROM analytics.goal_status")[0]
    assert status == "insufficient_history"
    assert "it has 0 anchors (needs 2)" in message and "46 days of events before createdOn 2026-02-16" in message
    assert "needs 58 = lookbackDays 40 + the 11-day window + 7 days between 2 anchors" in message
    assert "What would help: lookbackDays 28 or less (applied now: the goal has no model yet)" in message

    # The fix is applied (no model exists yet); an edit of the frozen group's split is not.
    (goal_config / "goals.yaml").write_text(_goal_yaml(lookbackDays=14, controlGroupPercent=20))
    assert run(resources, "2026-02-17").success
    status, message = query(
        tmp_path, "SELECT status, message FROM analytics.goal_status WHERE as_of_date = '2026-02-17'"
    )[0]
    assert status == "active"
    assert "applied before the first model: lookbackDays 40 -> 14" in message
    assert "NOT APPLIED" in message and "controlGroupPercent: 10.0 -> 20.0" in message
    assert "lookbackDays" not in message.split("NOT APPLIED")[1].split("; applied before the first model")[0]
    assert run(resources, "2026-02-18").success
    message = query(tmp_path, "SELECT message FROM analytics.goal_status WHERE as_of_date = '2026-02-18'")[0][0]
    assert "controlGroupPercent: 10.0 -> 20.0" in message and "lookbackDays" not in message


VALUE_GOALS_YAML = """
kind: goals
maxActiveGoals: 3
goals:
  - goalName: carts in late february
    segment: All Users
    createdOn: 2026-02-16
    endDate: 2026-02-26
    objective: maximize
    events:
      - eventType: add_to_cart
    controlGroupPercent: 10
    lookbackDays: 14
  - goalName: cart value
    segment: All Users
    createdOn: 2026-02-16
    endDate: 2026-02-26
    objective: maximize
    events:
      - eventType: add_to_cart
    controlGroupPercent: 20
    lookbackDays: 14
    valueProperty: price
  - goalName: cart colour value
    segment: All Users
    createdOn: 2026-02-16
    endDate: 2026-02-26
    objective: maximize
    events:
      - eventType: add_to_cart
    lookbackDays: 14
    valueProperty: colour
"""


@pytest.mark.slow
def test_value_goal_end_to_end(tmp_path, goal_config):
    (goal_config / "goals.yaml").write_text(VALUE_GOALS_YAML)
    resources = small_demo_resources(tmp_path, config_dir=goal_config)
    result = run(resources, "2026-02-20")
    assert result.success
    metadata = {
        m.event_specific_data.materialization.asset_key.path[-1]: m.event_specific_data.materialization.metadata
        for m in result.get_asset_materialization_events()
    }
    assert (
        "cart value/value_forecast" in metadata["goal_forecasts"]
        and "cart value/value_uplift" in metadata["goal_uplift"]
    )
    assert "carts in late february/value_forecast" not in metadata["goal_forecasts"]
    status = dict(
        query(tmp_path, "SELECT goal_name, status FROM analytics.goal_status WHERE as_of_date = '2026-02-20'")
    )
    messages = dict(query(tmp_path, "SELECT goal_name, message FROM analytics.goal_status"))
    assert status["cart value"] == "active", messages["cart value"]
    assert "value champion" in messages["cart value"]
    # A property the goal events do not have: the goal says which ones they have.
    assert status["cart colour value"] == "invalid"
    assert "valueProperty 'colour'" in messages["cart colour value"] and "price" in messages["cart colour value"]

    rows = query(
        tmp_path,
        """SELECT goal_name, bucket, predicted_value, value_tier FROM analytics.intent_buckets
        WHERE as_of_date = '2026-02-20'""",
    )
    value_rows = [r for r in rows if r[0] == "cart value"]
    assert value_rows and all(r[2] is not None and r[2] >= 0 for r in value_rows)
    open_rows = [r for r in value_rows if r[1] != "achieved"]
    tiers = [r[3] for r in open_rows]
    assert {"high", "medium", "low"} == set(tiers)
    assert tiers.count("high") == -(-len(open_rows) * 20 // 100)
    assert all(r[3] is None for r in value_rows if r[1] == "achieved")
    # Higher tiers expect more.
    by_tier = {t: [r[2] for r in open_rows if r[3] == t] for t in ("high", "medium", "low")}
    assert min(by_tier["high"]) >= max(by_tier["medium"]) >= 0 and min(by_tier["medium"]) >= max(by_tier["low"])
    assert all(r[2] is None and r[3] is None for r in rows if r[0] == "carts in late february")

    forecasts = query(
        tmp_path,
        """SELECT goal_name, day, predicted_value_low, predicted_value_cumulative,
            predicted_value_high, actual_value_cumulative FROM analytics.goal_forecasts
        WHERE as_of_date = '2026-02-20' ORDER BY goal_name, day""",
    )
    value_days = [f for f in forecasts if f[0] == "cart value"]
    assert len(value_days) == 11
    assert all(lo <= p <= hi for _, _, lo, p, hi, _ in value_days)
    assert [a is not None for _, d, *_, a in value_days] == [d.isoformat() <= "2026-02-20" for _, d, *_ in value_days]
    realized = query(
        tmp_path,
        """SELECT sum(CAST(json_extract_string(e.properties, '$.price') AS DOUBLE))
        FROM analytics.event_snapshots e JOIN analytics.target_groups t USING (user_id)
        WHERE t.goal_name = 'cart value' AND e.event_name = 'add_to_cart'
          AND e.ts >= '2026-02-16' AND e.ts < '2026-02-21'""",
    )[0][0]
    assert value_days[4][5] == pytest.approx(realized)
    assert all(f[3] is None and f[5] is None for f in forecasts if f[0] == "carts in late february")

    uplift = query(
        tmp_path,
        """SELECT goal_name, bucket, test_value_per_user, control_value_per_user, value_uplift,
            value_ci_low, value_ci_high FROM analytics.goal_uplift WHERE as_of_date = '2026-02-20'""",
    )
    overall = next(u for u in uplift if u[0] == "cart value" and u[1] == "all")
    assert overall[4] == pytest.approx(overall[2] - overall[3])
    assert overall[5] <= overall[4] <= overall[6]
    assert all(u[2] is None and u[4] is None for u in uplift if u[0] == "carts in late february")
    assert len([u for u in uplift if u[0] == "cart value"]) > 1  # per creation bucket too

    # The goal's report shows the value forecast against the actual value and the value uplift.
    page = (tmp_path / "reports" / "2026-02-20" / "goal-cart-value.html").read_text()
    assert "Value: forecast at creation (90% band) vs actual" in page and "95% Welch CI" in page
    assert (
        "Value per user" not in (tmp_path / "reports" / "2026-02-20" / "goal-carts-in-late-february.html").read_text()
    )
