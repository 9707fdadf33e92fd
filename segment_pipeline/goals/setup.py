"""A goal's one-time setup: freeze its target group, train its model, forecast its outcome.

Everything here happens as of the day before ``createdOn`` (point-in-time), whichever
day the run covers, and only once: later runs reuse what was stored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta

import duckdb
import numpy as np
import polars as pl

from segment_pipeline.config.goals import GoalDefinition
from segment_pipeline.config.segments import SegmentConfig
from segment_pipeline.goals import features, store
from segment_pipeline.goals.buckets import assign_buckets, bucket_report, choose_thresholds
from segment_pipeline.goals.feature_spec import FeatureSpec
from segment_pipeline.goals.forecast import forecast_curve
from segment_pipeline.goals.target_groups import FreezeResult, freeze_target_group, frozen_goal
from segment_pipeline.goals.training import InsufficientTrainingData, train_goal_model
from segment_pipeline.storage.warehouse import transaction


@dataclass(frozen=True)
class SetupOutcome:
    freeze: FreezeResult
    status: str  # active | insufficient_history
    message: str
    run_id: str | None
    trained_now: bool
    metrics: dict


def target_group(con: duckdb.DuckDBPyConnection, goal: GoalDefinition) -> pl.DataFrame:
    return con.execute(
        'SELECT user_id, "group" FROM analytics.target_groups WHERE goal_name = ? ORDER BY user_id', [goal.name]
    ).pl()


def stored_model(con: duckdb.DuckDBPyConnection, goal_name: str) -> dict | None:
    row = con.execute(
        """SELECT run_id, model_uri, version, thresholds_json, spec_json, metrics_json
           FROM pipeline_state.goal_models WHERE goal_name = ?""",
        [goal_name],
    ).fetchone()
    if row is None:
        return None
    run_id, model_uri, version, thresholds, spec, metrics = row
    return {
        "run_id": run_id, "model_uri": model_uri, "version": version,
        "thresholds": json.loads(thresholds), "spec": FeatureSpec.from_json(spec), "metrics": json.loads(metrics),
    }


def set_up_goal(
    con: duckdb.DuckDBPyConnection, goal: GoalDefinition, segments: SegmentConfig, *, as_of, tracking_uri: str
) -> SetupOutcome:
    """Freeze, train and forecast once; afterwards, report what was stored."""
    store.ensure_tables(con)
    freeze = freeze_target_group(con, goal, segments, as_of=as_of)
    goal = frozen_goal(con, goal.name) or goal  # an edit after the freeze is reported, never applied
    existing = stored_model(con, goal.name)
    if existing is not None:
        return SetupOutcome(freeze, "active", _active_message(freeze, existing["metrics"]), existing["run_id"], False,
                            existing["metrics"])

    trained_on = goal.frozen_as_of
    first = features.first_event_day(con)
    anchors = features.choose_anchors(first, goal.created_on, goal.length_days, goal.lookback_days) if first else []
    training = features.build_training_set(con, goal, segments, anchors) if anchors else None
    problem = features.history_problem(con, goal, training) if training is not None else (
        f"goal '{goal.name}': the events start {first}, fewer than lookbackDays ({goal.lookback_days}) + the goal's "
        f"{goal.length_days} days before createdOn {goal.created_on}; shorten lookbackDays or load older events"
    )
    if problem:
        return SetupOutcome(freeze, "insufficient_history", problem, None, False, {})
    try:
        trained = train_goal_model(training.frame, training.feature_columns)
    except InsufficientTrainingData as exc:
        return SetupOutcome(freeze, "insufficient_history", f"goal '{goal.name}': {exc}", None, False, {})

    from segment_pipeline.goals import tracking

    thresholds = choose_thresholds(
        trained.evaluation_scores, trained.evaluation_labels, precision_level=goal.precision_level
    )
    report = bucket_report(trained.evaluation_scores, trained.evaluation_labels, thresholds)
    record = tracking.log_goal_model(
        tracking_uri, goal.name, trained, thresholds, report,
        extra_params={"anchors": ",".join(a.isoformat() for a in training.anchors), "segment": goal.segment},
        as_of=trained_on,
    )
    model, metrics = trained.model, dict(trained.metrics)
    if not record.promoted:  # the registered champion stays: score and judge with it
        champion = tracking.load_champion(tracking_uri, goal.name)
        model = champion.model
        thresholds = choose_thresholds(
            champion.predict_proba(trained.evaluation_frame), trained.evaluation_labels,
            precision_level=goal.precision_level,
        )
        metrics = {**metrics, **record.champion_metrics}
    run_id = record.run_id if record.promoted else champion.run_id

    group = target_group(con, goal)
    scoring = features.build_scoring_set(con, goal, group.get_column("user_id"), trained_on, spec=training.spec)
    scored = group.join(scoring.select("user_id", *training.feature_columns), on="user_id", how="left")
    probabilities = np.asarray(model.predict_proba(scored.select(training.feature_columns)), dtype=float)
    timing = features.historical_timing_curve(con, goal, training.anchors, segments)
    curve = timing.sort("day").get_column("share").to_numpy()
    days = [goal.created_on + timedelta(days=k) for k in range(goal.length_days)]
    points = forecast_curve(
        probabilities, curve,
        holdout_relative_error=metrics.get("forecast_rel_error", float("nan")),
        holdout_relative_error_sd=metrics.get("forecast_rel_error_sd", 0.0),
        days=days,
    )
    buckets = assign_buckets(probabilities, thresholds)
    with transaction(con):
        con.execute(
            "INSERT INTO pipeline_state.goal_models VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [goal.name, trained_on, run_id, record.model_uri if record.promoted else champion.model_uri,
             record.version if record.promoted else champion.version,
             json.dumps(thresholds.to_dict()), training.spec.to_json(), json.dumps(_finite(metrics))],
        )
        con.executemany(
            "INSERT INTO pipeline_state.goal_creation_forecasts VALUES (?, ?, ?, ?, ?)",
            [(goal.name, p.day, p.predicted_cumulative, p.predicted_low, p.predicted_high) for p in points],
        )
        creation = scored.select("user_id", "group").with_columns(
            pl.lit(goal.name).alias("goal_name"), pl.Series("score", probabilities), pl.Series("bucket", buckets)
        ).select("goal_name", "user_id", "group", "score", "bucket")
        con.register("_creation_scores", creation)
        con.execute("INSERT INTO pipeline_state.goal_creation_scores SELECT * FROM _creation_scores")
        con.unregister("_creation_scores")
    return SetupOutcome(freeze, "active", _active_message(freeze, metrics), run_id, True, _finite(metrics))


def _finite(metrics: dict) -> dict:
    return {k: float(v) for k, v in metrics.items() if isinstance(v, int | float) and np.isfinite(v)}


def _active_message(freeze: FreezeResult, metrics: dict) -> str:
    parts = [f"target group {freeze.members:,} users ({freeze.control:,} control) frozen on {freeze.frozen_on}"]
    if "auc" in metrics:
        parts.append(f"held-out AUC {metrics['auc']:.3f}")
    if freeze.definition_change:
        parts.append(f"NOT APPLIED: {freeze.definition_change}")
    return "; ".join(parts)
