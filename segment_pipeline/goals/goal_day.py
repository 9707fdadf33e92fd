"""One goal, one night: set up once, then forecast vs actual, scores and audiences; never stop the others."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date

import duckdb

from segment_pipeline.config.goals import GoalDefinition
from segment_pipeline.config.segments import SegmentConfig
from segment_pipeline.goals import store
from segment_pipeline.goals.forecast_rows import replace_forecast_rows
from segment_pipeline.goals.mlflow_store import TrackingStoreError
from segment_pipeline.goals.model_quality import log_to_mlflow, record_realized_quality
from segment_pipeline.goals.outcomes import load_night
from segment_pipeline.goals.retrain import retrain, retrain_due
from segment_pipeline.goals.scoring import score_night
from segment_pipeline.goals.setup import set_up_goal
from segment_pipeline.goals.status import ACTIVE, ENDED, INSUFFICIENT, INVALID, write_status
from segment_pipeline.goals.target_groups import frozen_goal, open_goal
from segment_pipeline.goals.uplift_report import BucketUplift, replace_uplift

__all__ = ["ACTIVE", "ENDED", "INSUFFICIENT", "INVALID", "GoalDayResult", "run_goal_day", "run_goal_nights"]


def is_infrastructure_failure(exc: BaseException) -> bool:
    """The warehouse, the tracking store, the disk or memory failed: not something a goal caused."""
    if isinstance(exc, TrackingStoreError | OSError | MemoryError):
        return True
    if isinstance(
        exc,
        duckdb.IOException
        | duckdb.InternalException
        | duckdb.FatalException
        | duckdb.TransactionException
        | duckdb.OutOfMemoryException,
    ):
        return True
    module = type(exc).__module__
    # MLflow and its SQL store: every error from them is the store's, whatever the goal.
    return module.startswith(("mlflow.", "sqlalchemy.", "alembic."))


@dataclass
class GoalDayResult:
    goal_name: str
    as_of: date
    status: str
    message: str
    run_id: str | None = None
    members: int = 0
    control: int = 0
    frozen_on: date | None = None
    buckets: dict[str, int] = field(default_factory=dict)
    audience: int = 0
    uplift: list[BucketUplift] = field(default_factory=list)
    quality: list[dict] = field(default_factory=list)  # goal_model_quality rows added tonight
    retrain: str = ""
    model_auc: float | None = None  # the held-out AUC of the model the goal scores with


def _forecast_standing(latest: tuple | None) -> str:
    """Tonight's achievers against the creation forecast, in words ('' before the window opens)."""
    if latest is None:
        return ""
    p, lo, hi, a = latest
    position = (
        "above the forecast" if a > hi else "below the forecast" if a < lo else "within the forecast's 90% interval"
    )
    return f"{a:,} achieved so far vs {p:,.1f} predicted: {position}"


def _held_out_auc(state: store.GoalState) -> float | None:
    metrics = state.model["metrics"] if state.model else {}
    return float(metrics["auc"]) if "auc" in metrics else None


def run_goal_nights(
    con: duckdb.DuckDBPyConnection,
    goals: Sequence[GoalDefinition],
    segments: SegmentConfig,
    days: Sequence[date],
    *,
    tracking_uri: str,
    report: Callable[[GoalDayResult], None] = lambda _result: None,
) -> list[GoalDayResult]:
    """Every goal on every day, in order; ``report`` hears each goal's night as it ends."""
    store.ensure_tables(con)  # the goal tables exist from the first night, also before any goal's freeze
    results = []
    for day in days:
        for goal in goals:
            result = run_goal_day(con, goal, segments, day, tracking_uri=tracking_uri)
            if result is not None:
                report(result)
                results.append(result)
    return results


def run_goal_day(
    con: duckdb.DuckDBPyConnection,
    goal: GoalDefinition,
    segments: SegmentConfig,
    as_of: date,
    *,
    tracking_uri: str,
    xgb_params: dict | None = None,
) -> GoalDayResult | None:
    """Everything for ``goal`` as of ``as_of``; None before the goal's freeze day.

    ``xgb_params`` override XGBoost's training parameters (tests and benchmarks)."""
    # Read once, then handed down: what was kept of the goal, and its frozen group.
    state = store.load_state(con, goal.name)
    opened = open_goal(con, goal, segments, as_of=as_of)
    if opened is None:  # before the goal's freeze day
        return None
    result = GoalDayResult(goal.name, as_of, INVALID, "")
    try:
        setup = set_up_goal(
            con,
            goal,
            segments,
            as_of=as_of,
            tracking_uri=tracking_uri,
            xgb_params=xgb_params,
            state=state,
            opened=opened,
        )
        freeze = setup.freeze
        result.members, result.control, result.frozen_on = freeze.members, freeze.control, freeze.frozen_on
        result.run_id, result.status, result.message = setup.run_id, setup.status, setup.message
        if setup.trained_now:  # the first training stored a model and may have written model keys
            state, goal = store.load_state(con, goal.name), frozen_goal(con, goal.name) or goal
        else:
            goal = opened.frozen or goal  # the definition the goal was frozen with
        result.model_auc = _held_out_auc(state)
        if setup.status == ACTIVE:
            night = load_night(con, goal, opened.group, state.model, as_of, days_left=opened.days_left)
            standing = _forecast_standing(replace_forecast_rows(con, night))
            result.uplift = replace_uplift(con, night)
            overall = next((u.result.verdict for u in result.uplift if u.bucket == "all"), "")
            standing = "; ".join(part for part in (standing, f"uplift: {overall}" if overall else "") if part)
            if as_of >= goal.end_date:  # the window closes at the end of endDate
                result.status = ENDED
                result.message = f"ended {goal.end_date}: {standing or 'no achievers'}; {setup.message}"
            else:
                if retrain_due(goal, as_of, state):
                    result.retrain = retrain(
                        con, goal, segments, as_of, state, tracking_uri=tracking_uri, xgb_params=xgb_params
                    )
                    # Re-read (no training): the message then tells tonight's decision, the same on a re-run.
                    state = store.load_state(con, goal.name)
                    setup = set_up_goal(
                        con, goal, segments, as_of=as_of, tracking_uri=tracking_uri, state=state, opened=opened
                    )
                    result.message = setup.message
                    night = replace(night, stored=state.model)
                    result.model_auc = _held_out_auc(state)
                from segment_pipeline.goals.tracking import load_champion  # MLflow: imported when a goal scores

                stored = night.stored
                champion = load_champion(tracking_uri, goal.name, stored["model_uri"] if stored else None)
                if champion is None:
                    raise TrackingStoreError(
                        f"goal {goal.name!r} was set up with MLflow run {setup.run_id} but the store "
                        f"{tracking_uri} has no champion model for it; restore the store or set MLFLOW_TRACKING_URI"
                    )
                outcome = score_night(con, night, champion.model)
                result.buckets, result.audience = outcome.buckets, outcome.audience
                result.run_id = champion.run_id
                if standing:
                    result.message = f"{standing}; {result.message}"
            result.quality = record_realized_quality(con, goal, as_of)
            if result.quality:
                log_to_mlflow(tracking_uri, goal, result.quality)
    except Exception as exc:
        if is_infrastructure_failure(exc):
            raise  # the run goes red; marking every goal invalid would hide it behind a green run
        # One goal's own problem is reported in its status and never stops the others.
        result.status, result.message = INVALID, f"{type(exc).__name__}: {exc}"
    write_status(con, result.goal_name, result.as_of, result.status, result.message, result.run_id)
    return result
