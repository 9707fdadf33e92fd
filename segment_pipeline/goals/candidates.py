"""Every training fits XGBoost and the baselines on one time split; the best becomes champion.

The rule (``choose_best``): the highest held-out AUC, unless that candidate's Brier score
is clearly worse (more than ``MAX_BRIER_INCREASE`` above the lowest); then the next by
AUC. So a goal never ships a model that the simplest references beat on its own held-out
rows, and the winner's kind is reported (``goal_status.message``, MLflow).

A model kind is a picklable object with ``kind``, ``feature_columns`` and
``predict_proba(frame)`` (probabilities from a frame holding at least those columns);
storage (MLflow pyfunc), champion comparison and nightly scoring rely on nothing else.
Another model family (e.g. a value model predicting a sum) fits the same way: its own
kinds, trainer and ``choose_best``-like rule, stored beside this one.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import polars as pl

from segment_pipeline.goals import baselines
from segment_pipeline.goals.training import (
    InsufficientTrainingData,
    TimeSplit,
    TrainedGoalModel,
    bootstrap_rel_error_sd,
    calibration_curve,
    evaluation_metrics,
    feature_matrix,
    time_split,
    train_goal_model,
    validate_frame,
)

KINDS = ("xgboost", "logistic", "bgnbd")
MAX_BRIER_INCREASE = 0.10  # relative to the best Brier among the candidates


def train_candidates(
    frame: pl.DataFrame,
    feature_columns: list[str],
    *,
    seed: int = 0,
    xgb_params: dict[str, Any] | None = None,
    kinds: tuple[str, ...] = KINDS,
) -> list[TrainedGoalModel]:
    """One trained model per kind, all judged on the same evaluation half. A baseline that
    cannot be fitted (e.g. a spec without lifetime features) is left out with a note on the
    others; XGBoost's own failure (too little data) is raised."""
    validate_frame(frame, feature_columns)
    split = time_split(frame)  # once: it hashes every hold-out user
    found: list[TrainedGoalModel] = []
    skipped: list[str] = []
    for kind in kinds:
        try:
            if kind == "xgboost":
                found.append(train_goal_model(frame, feature_columns, seed=seed, params=xgb_params, split=split))
            else:
                found.append(train_baseline(frame, feature_columns, kind, seed=seed, split=split))
        except InsufficientTrainingData:
            raise
        except (ValueError, np.linalg.LinAlgError) as exc:
            skipped.append(f"{kind} left out: {exc}")
    for trained in found:
        trained.notes.extend(skipped)
    return found


def train_baseline(
    frame: pl.DataFrame, feature_columns: list[str], kind: str, *, seed: int = 0, split: TimeSplit | None = None
) -> TrainedGoalModel:
    holdout_anchor, train, tuning, evaluation, notes = split or time_split(frame)
    notes = list(notes)
    if kind == "logistic":
        model, reason = baselines.fit_logistic(train, tuning, feature_columns)
    elif kind == "bgnbd":
        holdout = pl.concat([tuning, evaluation])
        model, reason = baselines.fit_bgnbd(holdout, tuning, feature_columns)
    else:
        raise ValueError(f"unknown model kind {kind!r}; known: {', '.join(KINDS)}")
    eval_y = evaluation["label"].to_numpy()
    scores = model.predict_proba(evaluation)
    metrics = evaluation_metrics(eval_y, scores)
    metrics["forecast_rel_error_sd"] = bootstrap_rel_error_sd(eval_y, scores, seed=seed)
    metrics.update(
        n_train=float(train.height),
        n_holdout=float(tuning.height + evaluation.height),
        n_tuning=float(tuning.height),
        n_evaluation=float(evaluation.height),
        train_positives=float(train["label"].sum()),
        best_iteration=0.0,
    )
    params = {
        "kind": kind,
        **(
            model.params
            if isinstance(model, baselines.BgNbdGoalModel)
            else {"features": ",".join(model.feature_columns)}
        ),
    }
    return TrainedGoalModel(
        model=model,
        metrics=metrics,
        feature_importance=baselines.importance(model),
        calibration_curve=calibration_curve(eval_y, scores),
        calibration_reason=reason,
        holdout_anchor=holdout_anchor,
        train_anchors=sorted(train["anchor"].unique().to_list()),
        params=params,
        best_iteration=0,
        evaluation_frame=evaluation,
        evaluation_scores=scores,
        notes=notes,
    )


def model_kind(model: Any) -> str:
    return getattr(model, "kind", "xgboost")


def choose_best(candidates: list[TrainedGoalModel]) -> tuple[TrainedGoalModel, str]:
    """(the winner, why), by the rule of the module docstring."""
    if not candidates:
        raise ValueError("no candidate model to choose from")
    briers = [c.metrics["brier"] for c in candidates]
    ceiling = min(briers) * (1 + MAX_BRIER_INCREASE)

    def auc(c: TrainedGoalModel) -> float:
        value = c.metrics.get("auc", math.nan)
        return value if math.isfinite(value) else -1.0

    ranked = sorted(candidates, key=lambda c: (-auc(c), c.metrics["brier"], KINDS.index(model_kind(c.model))))
    winner = next((c for c in ranked if c.metrics["brier"] <= ceiling), ranked[0])
    summary = ", ".join(
        f"{model_kind(c.model)} AUC {c.metrics.get('auc', math.nan):.3f} Brier {c.metrics['brier']:.4f}" for c in ranked
    )
    skipped = "" if winner is ranked[0] else f" ({model_kind(ranked[0].model)} had the best AUC but a Brier >10% worse)"
    return winner, f"{model_kind(winner.model)} won on the held-out rows{skipped}: {summary}"


def score_frame(model: Any, frame: pl.DataFrame) -> np.ndarray:
    """Calibrated probabilities from any kind (a convenience for callers holding a frame)."""
    return np.asarray(model.predict_proba(frame.select(model.feature_columns)), dtype=np.float64)


__all__ = ["KINDS", "choose_best", "feature_matrix", "model_kind", "score_frame", "train_baseline", "train_candidates"]
