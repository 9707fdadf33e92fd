"""Retraining on a cadence: every ``retrainEveryDays`` a challenger learns from the newest anchors.

On night D the challenger's anchors are those whose label windows end by D's end
(``A + length <= D + 1``): point-in-time as of that night, as if the goal had been created
on D + 1. It is built with the champion's feature spec, so the champion scores the very
same held-out rows, and it becomes champion only when it is not clearly worse on them
(``tracking.compare_with_champion``). The target group and the creation forecast never
change; the decision is logged in MLflow, in ``pipeline_state.goal_model_decisions`` and in
the night's ``goal_status.message``.
"""

from __future__ import annotations

import json
from datetime import date, timedelta

import duckdb

from segment_pipeline.config.goals import GoalDefinition
from segment_pipeline.config.segments import SegmentConfig
from segment_pipeline.goals import features
from segment_pipeline.goals.buckets import bucket_report, choose_thresholds
from segment_pipeline.goals.setup import _decision_row, _finite, train
from segment_pipeline.goals.store import GoalState, record_decision
from segment_pipeline.storage.warehouse import transaction


def retrain_due(goal: GoalDefinition, as_of: date, state: GoalState) -> bool:
    """True on the nights ``retrainEveryDays`` after the last training, while the window is open."""
    stored = state.model
    if stored is None or as_of >= goal.end_date:
        return False
    decision = state.decision
    last = decision["as_of_date"] if decision else stored["trained_as_of"]
    return (as_of - last).days >= goal.retrain_every_days


def retrain(
    con: duckdb.DuckDBPyConnection,
    goal: GoalDefinition,
    segments: SegmentConfig,
    as_of: date,
    state: GoalState,
    *,
    tracking_uri: str,
    xgb_params: dict | None = None,
) -> str:
    """Train a challenger as of ``as_of``, promote it if not worse; the decision, as a sentence."""
    from segment_pipeline.goals import tracking

    stored = state.model
    if stored is None:
        raise LookupError(f"goal '{goal.name}' has no trained model in pipeline_state.goal_models yet")
    spec = stored["spec"]
    length = goal.length_days
    as_if_created = goal.model_copy(
        update={
            "created_on": as_of + timedelta(days=1),
            "end_date": as_of + timedelta(days=length),
            "lookback_days": spec.lookback_days,
        }
    )
    first = features.first_event_day(con)
    anchors = features.choose_anchors(first, as_if_created.created_on, length, spec.lookback_days) if first else []
    result = train(con, as_if_created, segments, anchors, spec=spec, xgb_params=xgb_params)
    if isinstance(result, str):
        reason = f"retrain as of {as_of} skipped, the champion stays: {result}"
        record_decision(
            con,
            [
                goal.name,
                as_of,
                "none",
                False,
                reason,
                None,
                stored["run_id"],
                (state.decision or {}).get("champion_kind", "xgboost"),
            ],
        )
        return reason
    best = result.best
    user_ids = best.evaluation_frame["user_id"]
    thresholds = choose_thresholds(
        best.evaluation_scores, best.evaluation_labels, precision_level=goal.precision_level, user_ids=user_ids
    )
    report = bucket_report(best.evaluation_scores, best.evaluation_labels, thresholds, user_ids)
    record = tracking.log_goal_model(
        tracking_uri,
        goal.name,
        best,
        thresholds,
        report,
        extra_params={
            "anchors": ",".join(a.isoformat() for a in result.set.anchors),
            "segment": goal.segment,
            "retrain": "true",
        },
        as_of=as_of,
        candidates=result.candidates,
        selection=result.selection,
        champion_uri=stored["model_uri"],
    )
    champion = None if record.promoted else tracking.require_champion(tracking_uri, goal.name, stored["model_uri"])
    decision = _decision_row(goal.name, as_of, best, record, champion, result.selection)
    with transaction(con):
        if record.promoted:
            con.execute(
                """UPDATE pipeline_state.goal_models SET trained_as_of = ?, run_id = ?, model_uri = ?, version = ?,
                   thresholds_json = ?, metrics_json = ? WHERE goal_name = ?""",
                [
                    as_of,
                    record.run_id,
                    record.model_uri,
                    record.version,
                    json.dumps(thresholds.to_dict()),
                    json.dumps(_finite(best.metrics)),
                    goal.name,
                ],
            )
        record_decision(con, decision)
    verb = "became champion" if record.promoted else "was rejected"
    return f"retrained as of {as_of}: challenger {decision[2]} {verb} ({record.reason}); candidates: {result.selection}"
