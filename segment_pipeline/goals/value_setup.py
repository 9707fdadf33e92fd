"""A value goal's one-time setup (with the goal's own, in ``goals/setup.py``): train and
judge the value kinds, keep the champion, forecast the window's value at creation.

The value model is trained once, at creation, and not retrained: the probability part of
the hurdle is the goal's champion, so a retrain (``goals/retrain.py``) still reaches it.
"""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass
from datetime import date
from typing import Any

import duckdb
import numpy as np
import polars as pl

from segment_pipeline.config.goals import GoalDefinition
from segment_pipeline.goals import value_model
from segment_pipeline.goals.feature_spec import TrainingSet


class ValuePropertyError(ValueError):
    """The goal's valueProperty is not a numeric property of its events (goal status ``invalid``)."""


@dataclass(frozen=True)
class ValueSetup:
    kind: str
    model: Any
    metrics: dict[str, float]
    spend_cv: float
    forecast: list[tuple[date, float, float, float]]
    message: str
    mlflow_metrics: dict[str, float]


def check_value_property(con: duckdb.DuckDBPyConnection, goal: GoalDefinition) -> str:
    """Raise ``ValuePropertyError`` when the history has no numeric value property; else a note ('' if clean)."""
    check = value_model.check_property(con, goal, goal.created_on)
    problem = check.problem(goal)
    if problem:
        raise ValuePropertyError(problem)
    return check.note()


def prepare_value(
    con: duckdb.DuckDBPyConnection,
    goal: GoalDefinition,
    training: TrainingSet,
    probability_model: Any,
    scored: pl.DataFrame,
    probabilities: np.ndarray,
    days: list[date],
) -> ValueSetup:
    """Train both kinds, pick the champion, forecast the target group's value over the window."""
    if goal.value_property is None:
        raise ValuePropertyError(f"goal '{goal.name}' has no valueProperty: there is no value to forecast")
    note = check_value_property(con, goal)
    values = value_model.window_values(con, goal, training.frame)
    candidates, notes = value_model.train_value_models(
        training.frame, values, training.feature_columns, probability_model, goal.value_property
    )
    if not candidates:
        raise ValuePropertyError(f"goal '{goal.name}': no value model could be trained ({'; '.join(notes)})")
    best, selection = value_model.choose_value_champion(candidates)
    predicted = best.model.predict_value(scored, probabilities)
    curve = value_model.value_timing_curve(con, goal, training.anchors)
    mean, low, high = value_model.value_forecast(
        predicted,
        probabilities,
        curve,
        rel_error=best.metrics.get("value_total_rel_error", float("nan")),
        spend_cv=best.spend_cv,
    )
    mlflow_metrics = {
        f"value_{c.model.kind}_{k.removeprefix('value_')}": v for c in candidates for k, v in c.metrics.items()
    }
    mlflow_metrics["value_creation_predicted_total"] = float(predicted.sum())
    message = "; ".join(part for part in (selection, note) if part)
    return ValueSetup(
        best.model.kind,
        best.model,
        best.metrics,
        best.spend_cv,
        list(zip(days, mean.tolist(), low.tolist(), high.tolist(), strict=True)),
        message,
        mlflow_metrics,
    )


def store_value(con: duckdb.DuckDBPyConnection, goal: GoalDefinition, trained_on: date, setup: ValueSetup) -> None:
    """Inside the caller's transaction: the value model and the creation value forecast."""
    metrics = {k: v for k, v in setup.metrics.items() if np.isfinite(v)}
    con.execute(
        "INSERT INTO pipeline_state.goal_value_models VALUES (?, ?, ?, ?, ?, ?)",
        [goal.name, trained_on, setup.kind, pickle.dumps(setup.model), json.dumps(metrics), setup.spend_cv],
    )
    con.executemany(
        "INSERT INTO pipeline_state.goal_creation_value_forecasts VALUES (?, ?, ?, ?, ?)",
        [(goal.name, day, m, lo, hi) for day, m, lo, hi in setup.forecast],
    )


def log_value_metrics(tracking_uri: str, run_id: str, setup: ValueSetup) -> None:
    """Both kinds' held-out errors on the goal's MLflow run, the champion as a tag."""
    from segment_pipeline.goals.tracking import log_realized_metrics

    log_realized_metrics(tracking_uri, [(run_id, 0, setup.mlflow_metrics)])
    from segment_pipeline.goals.tracking import _connect

    _, client, _ = _connect(tracking_uri)
    client.set_tag(run_id, "value_model_kind", setup.kind)
    client.set_tag(run_id, "value_selection", setup.message[:5000])


def load_value_model(con: duckdb.DuckDBPyConnection, goal_name: str) -> tuple[Any, str] | None:
    row = con.execute(
        "SELECT model, kind FROM pipeline_state.goal_value_models WHERE goal_name = ?", [goal_name]
    ).fetchone()
    if row is None:
        return None
    return pickle.loads(row[0]), row[1]
