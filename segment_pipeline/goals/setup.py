"""A goal's one-time setup: freeze its target group, train its model, forecast its outcome.

Everything here happens as of the day before ``createdOn`` (point-in-time), whichever
day the run covers, and only once: later runs reuse what was stored (retraining is
``goals/retrain.py``; it never changes the target group or the creation forecast).

Edits after the freeze: the target group, segment, events and window stay as frozen and
an edit of them is reported as NOT APPLIED. The model-only keys (``lookbackDays``,
``precisionLevel``, ``retrainEveryDays``) are different while the goal has no model yet
(every night so far was ``insufficient_history``): nothing was trained or forecast with
them, so the current config's values are applied at the next training. That is how
"lower lookbackDays" un-sticks a goal. Once a model exists, they are frozen too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, timedelta

import duckdb
import numpy as np
import polars as pl

from segment_pipeline.config.goals import GoalDefinition
from segment_pipeline.config.segments import SegmentConfig
from segment_pipeline.goals import features, store
from segment_pipeline.goals.buckets import assign_buckets, bucket_report, choose_thresholds
from segment_pipeline.goals.candidates import choose_best, model_kind, train_candidates
from segment_pipeline.goals.feature_spec import FeatureSpec, TrainingSet
from segment_pipeline.goals.forecast import forecast_curve
from segment_pipeline.goals.target_groups import (
    FreezeResult,
    OpenGoal,
    definition_changed,
    open_goal,
    record_model_keys,
)
from segment_pipeline.goals.training import InsufficientTrainingData, TrainedGoalModel
from segment_pipeline.storage.warehouse import release_cached_memory, transaction

MODEL_KEYS = {
    "lookbackDays": "lookback_days",
    "precisionLevel": "precision_level",
    "retrainEveryDays": "retrain_every_days",
}


@dataclass(frozen=True)
class SetupOutcome:
    freeze: FreezeResult
    status: str  # active | insufficient_history
    message: str
    run_id: str | None
    trained_now: bool
    metrics: dict


@dataclass(frozen=True)
class Training:
    """One training of a goal: its set, every candidate, the best of them and why."""

    set: TrainingSet
    candidates: list[TrainedGoalModel]
    best: TrainedGoalModel
    selection: str


def effective_goal(
    con: duckdb.DuckDBPyConnection, goal: GoalDefinition, segments: SegmentConfig, opened: OpenGoal, *, has_model: bool
) -> tuple[GoalDefinition, list[str], str | None]:
    """(the definition to train and score with, model-key edits applied now, the edit NOT APPLIED)."""
    frozen = opened.frozen
    if frozen is None:
        return goal, [], None
    if has_model:
        return frozen, [], opened.freeze.definition_change
    updates = {
        field: getattr(goal, field) for field in MODEL_KEYS.values() if getattr(goal, field) != getattr(frozen, field)
    }
    applied = [f"{key} {getattr(frozen, f)} -> {getattr(goal, f)}" for key, f in MODEL_KEYS.items() if f in updates]
    refused = definition_changed(con, goal, segments, ignore_keys=tuple(MODEL_KEYS))
    return frozen.model_copy(update=updates), applied, refused


def train(
    con: duckdb.DuckDBPyConnection,
    goal: GoalDefinition,
    segments: SegmentConfig,
    anchors: list[date],
    *,
    spec: FeatureSpec | None = None,
    xgb_params: dict | None = None,
) -> Training | str:
    """Every candidate on one training set, or the ``insufficient_history`` message."""
    training = features.build_training_set(con, goal, segments, anchors, spec=spec) if anchors else None
    problem = features.history_problem(con, goal, training)
    if problem:
        return problem
    assert training is not None  # without a training set history_problem always names the problem
    release_cached_memory(con)  # the fits' matrices need the room more than DuckDB's cache does
    try:
        candidates = train_candidates(training.frame, training.feature_columns, xgb_params=xgb_params)
    except InsufficientTrainingData as exc:
        return features.history_problem(con, goal, training, detail=str(exc)) or str(exc)
    best, selection = choose_best(candidates)
    return Training(training, candidates, best, selection)


def set_up_goal(
    con: duckdb.DuckDBPyConnection,
    goal: GoalDefinition,
    segments: SegmentConfig,
    *,
    as_of,
    tracking_uri: str,
    xgb_params: dict | None = None,
    state: store.GoalState | None = None,
    opened: OpenGoal | None = None,
) -> SetupOutcome:
    """Freeze, train and forecast once; afterwards, report what was stored.

    ``state`` and ``opened`` are what the night has read already (read here when not given)."""
    state = state or store.load_state(con, goal.name)
    opened = opened or open_goal(con, goal, segments, as_of=as_of)
    if opened is None:
        raise ValueError(
            f"goal '{goal.name}' is set up from {goal.frozen_as_of} (the day before createdOn), not {as_of}"
        )
    freeze, existing = opened.freeze, state.model
    configured = goal
    goal, applied, refused = effective_goal(con, goal, segments, opened, has_model=existing is not None)
    if existing is not None:
        message = _active_message(freeze, existing["metrics"], state.decision, freeze.definition_change, as_of)
        return SetupOutcome(freeze, "active", message, existing["run_id"], False, existing["metrics"])

    trained_on = goal.frozen_as_of
    if goal.value_property:  # before training: a wrong property wastes no model
        from segment_pipeline.goals.value_setup import check_value_property

        check_value_property(con, goal)
    first = features.first_event_day(con)
    anchors = features.choose_anchors(first, goal.created_on, goal.length_days, goal.lookback_days) if first else []
    result = train(con, goal, segments, anchors, xgb_params=xgb_params)
    if isinstance(result, str):
        notes = [result]
        if applied:
            notes.append("applied (no model yet): " + ", ".join(applied))
        if refused:
            notes.append(f"NOT APPLIED: {refused}")
        return SetupOutcome(freeze, "insufficient_history", "; ".join(notes), None, False, {})

    from segment_pipeline.goals import tracking

    best, training = result.best, result.set
    thresholds = choose_thresholds(
        best.evaluation_scores,
        best.evaluation_labels,
        precision_level=goal.precision_level,
        user_ids=best.evaluation_frame["user_id"],
    )
    report = bucket_report(best.evaluation_scores, best.evaluation_labels, thresholds, best.evaluation_frame["user_id"])
    record = tracking.log_goal_model(
        tracking_uri,
        goal.name,
        best,
        thresholds,
        report,
        extra_params={"anchors": ",".join(a.isoformat() for a in training.anchors), "segment": goal.segment},
        as_of=trained_on,
        candidates=result.candidates,
        selection=result.selection,
        champion_uri=None,
    )
    model, metrics = best.model, dict(best.metrics)
    run_id, model_uri, version = record.run_id, record.model_uri, record.version
    champion = None
    if not record.promoted:  # the registered champion stays: score and judge with it
        champion = tracking.require_champion(tracking_uri, goal.name)
        run_id, model_uri, version = champion.run_id, champion.model_uri, champion.version
        model = champion.model
        scores = champion.predict_proba(best.evaluation_frame)
        thresholds = choose_thresholds(
            scores,
            best.evaluation_labels,
            precision_level=goal.precision_level,
            user_ids=best.evaluation_frame["user_id"],
        )
        metrics = {**metrics, **record.champion_metrics}

    group = opened.group
    scoring = features.build_scoring_set(con, goal, group.get_column("user_id"), trained_on, spec=training.spec)
    scored = group.join(scoring.select("user_id", *training.feature_columns), on="user_id", how="left")
    probabilities = np.asarray(model.predict_proba(scored.select(training.feature_columns)), dtype=float)
    timing = features.historical_timing_curve(con, goal, training.anchors, segments)
    curve = timing.sort("day").get_column("share").to_numpy()
    days = [goal.created_on + timedelta(days=k) for k in range(goal.length_days)]
    points = forecast_curve(
        probabilities,
        curve,
        holdout_relative_error=metrics.get("forecast_rel_error", float("nan")),
        holdout_relative_error_sd=metrics.get("forecast_rel_error_sd", 0.0),
        days=days,
    )
    buckets = assign_buckets(probabilities, thresholds, scored.get_column("user_id"))
    value = None
    if goal.value_property:
        from segment_pipeline.goals.value_setup import prepare_value

        value = prepare_value(con, goal, training, model, scored, probabilities, days)
    decision = _decision_row(goal.name, trained_on, best, record, champion, result.selection)
    with transaction(con):
        con.execute(
            "INSERT INTO pipeline_state.goal_models VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                goal.name,
                trained_on,
                run_id,
                model_uri,
                version,
                json.dumps(thresholds.to_dict()),
                training.spec.to_json(),
                json.dumps(_finite(metrics)),
            ],
        )
        store.record_decision(con, decision)
        if applied:  # the model was trained with them: from now on they are part of the frozen definition
            record_model_keys(con, goal.name, {k: getattr(goal, f) for k, f in MODEL_KEYS.items()})
        con.executemany(
            "INSERT INTO pipeline_state.goal_creation_forecasts VALUES (?, ?, ?, ?, ?)",
            [(goal.name, p.day, p.predicted_cumulative, p.predicted_low, p.predicted_high) for p in points],
        )
        creation = (
            scored.select("user_id", "group")
            .with_columns(
                pl.lit(goal.name).alias("goal_name"), pl.Series("score", probabilities), pl.Series("bucket", buckets)
            )
            .select("goal_name", "user_id", "group", "score", "bucket")
        )
        con.register("_creation_scores", creation)
        con.execute("INSERT INTO pipeline_state.goal_creation_scores SELECT * FROM _creation_scores")
        con.unregister("_creation_scores")
        if value is not None:
            from segment_pipeline.goals.value_setup import store_value

            store_value(con, goal, trained_on, value)
    if value is not None:
        from segment_pipeline.goals.value_setup import log_value_metrics

        log_value_metrics(tracking_uri, run_id, value)
    change = definition_changed(con, configured, segments)
    message = _active_message(freeze, metrics, store.last_decision(con, goal.name), change, as_of)
    if applied:
        message += "; applied before the first model: " + ", ".join(applied)
    if value is not None:
        message += f"; {value.message}"
    return SetupOutcome(freeze, "active", message, run_id, True, _finite(metrics))


def _decision_row(goal_name: str, as_of: date, best: TrainedGoalModel, record, champion, selection: str) -> list:
    """A ``goal_model_decisions`` row: the challenger's kind, whether it became champion, why."""
    kind = model_kind(best.model)
    champion_kind = kind if record.promoted else champion.kind
    champion_run = record.run_id if record.promoted else champion.run_id
    return [
        goal_name,
        as_of,
        kind,
        record.promoted,
        f"{selection}; {record.reason}",
        record.run_id,
        champion_run,
        champion_kind,
    ]


def _finite(metrics: dict) -> dict:
    return {k: float(v) for k, v in metrics.items() if isinstance(v, int | float) and np.isfinite(v)}


def _active_message(freeze: FreezeResult, metrics: dict, decision: dict | None, change: str | None, as_of: date) -> str:
    parts = [f"target group {freeze.members:,} users ({freeze.control:,} control) frozen on {freeze.frozen_on}"]
    if decision is not None:
        # Told in full the night it was decided, from the stored decision: a re-run of any night
        # gives the same message. Later nights name the champion only.
        trained = decision["as_of_date"]
        if trained == as_of and decision["model_kind"] == "none":  # a retrain that could not train
            parts.append(decision["reason"])
        elif trained == as_of and trained > freeze.frozen_on:
            parts.append(f"retrained as of {trained}: champion {decision['champion_kind']} ({decision['reason']})")
        elif trained == as_of:
            parts.append(f"trained as of {trained}: champion {decision['champion_kind']} ({decision['reason']})")
        else:
            parts.append(f"champion: {decision['champion_kind']} (last trained as of {trained})")
    if "auc" in metrics:
        parts.append(f"held-out AUC {metrics['auc']:.3f}")
    if change:
        parts.append(f"NOT APPLIED: {change}")
    return "; ".join(parts)
