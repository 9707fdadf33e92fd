"""The classic references a goal model must beat, as goal models of their own kind.

- ``logistic``: logistic regression on log1p of recency, frequency and tenure (of all
  events and of the goal's events) and the horizon.
- ``bgnbd``: a BG/NBD fit (``stats/bgnbd.py``) on the hold-out anchor's lifetime summaries
  (``bgnbd_x``, ``bgnbd_t_x``, ``bgnbd_T``; no labels are used), scoring
  P(at least one goal event in the next ``horizon_days``).

Each is trained on the same time split as XGBoost and calibrated the same way on the
tuning half, so the three are compared on identical evaluation rows. Every kind is a
picklable dataclass with ``kind``, ``feature_columns``, ``raw_margin``, ``calibrate`` and
``predict_proba``: whichever wins is stored and scored the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from segment_pipeline.goals.feature_spec import BGNBD_T, BGNBD_T_X, BGNBD_X, HORIZON
from segment_pipeline.goals.training import feature_matrix
from segment_pipeline.stats import bgnbd
from segment_pipeline.stats.calibration import apply_calibration, fit_calibration

LOGISTIC_FEATURES = (
    HORIZON,
    "life_days_since_last_event",
    "life_active_days",
    "tenure_days",
    "goal_life_days",
    "goal_days_since_last_life",
    "goal_days_since_first",
)
# Specs stored before lifetime features existed still have these (lookback-only).
LOGISTIC_FALLBACK = (HORIZON, "days_since_last_event", "tenure_days", "days_since_goal_event")
BGNBD_FEATURES = (BGNBD_X, BGNBD_T_X, BGNBD_T, HORIZON)
BGNBD_UNIT_DAYS = 7.0  # fit in weeks: the parameters stay of order 1, as in the literature
_EPS = 1e-9


@dataclass
class LogisticGoalModel:
    feature_columns: list[str]
    mean: np.ndarray
    scale: np.ndarray
    coefficients: np.ndarray
    intercept: float
    calibration: str
    calibration_x: np.ndarray
    calibration_y: np.ndarray

    kind = "logistic"

    def _inputs(self, frame: Any) -> np.ndarray:
        x = np.nan_to_num(feature_matrix(frame, self.feature_columns).astype(np.float64), nan=0.0)
        return (np.log1p(np.maximum(x, 0.0)) - self.mean) / self.scale

    def raw_margin(self, frame: Any) -> np.ndarray:
        return self._inputs(frame) @ self.coefficients + self.intercept

    def calibrate(self, margin: np.ndarray) -> np.ndarray:
        return apply_calibration(self.calibration, self.calibration_x, self.calibration_y, margin)

    def predict_proba(self, frame: Any) -> np.ndarray:
        return self.calibrate(self.raw_margin(frame))


@dataclass
class BgNbdGoalModel:
    feature_columns: list[str]  # x, t_x, T (days), horizon_days
    params: dict[str, float]  # r, alpha (weeks), a, b
    calibration: str
    calibration_x: np.ndarray
    calibration_y: np.ndarray

    kind = "bgnbd"

    def probability(self, frame: Any) -> np.ndarray:
        x, t_x, T, horizon = feature_matrix(frame, self.feature_columns).astype(np.float64).T
        weeks = BGNBD_UNIT_DAYS
        T = np.maximum(T, t_x) / weeks
        p = bgnbd.p_purchase(bgnbd.BgNbdParams(**self.params), horizon / weeks, x, t_x / weeks, T)
        return np.clip(p, _EPS, 1 - _EPS)

    def raw_margin(self, frame: Any) -> np.ndarray:
        p = self.probability(frame)
        return np.log(p) - np.log1p(-p)

    def calibrate(self, margin: np.ndarray) -> np.ndarray:
        return apply_calibration(self.calibration, self.calibration_x, self.calibration_y, margin)

    def predict_proba(self, frame: Any) -> np.ndarray:
        return self.calibrate(self.raw_margin(frame))


def logistic_columns(feature_columns: list[str]) -> list[str]:
    chosen = [c for c in LOGISTIC_FEATURES if c in feature_columns]
    return chosen if len(chosen) > 3 else [c for c in LOGISTIC_FALLBACK if c in feature_columns]


def fit_logistic(
    train: pl.DataFrame, tuning: pl.DataFrame, feature_columns: list[str]
) -> tuple[LogisticGoalModel, str]:
    from sklearn.linear_model import LogisticRegression

    columns = logistic_columns(feature_columns)
    x = np.log1p(np.maximum(np.nan_to_num(feature_matrix(train, columns).astype(np.float64), nan=0.0), 0.0))
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale == 0] = 1.0
    fitted = LogisticRegression(C=1.0, max_iter=2000).fit((x - mean) / scale, train["label"].to_numpy())
    model = LogisticGoalModel(
        columns,
        mean,
        scale,
        fitted.coef_[0].astype(np.float64),
        float(fitted.intercept_[0]),
        "platt",
        np.array([1.0, 0.0]),
        np.zeros(0),
    )
    return _calibrated(model, tuning)


def fit_bgnbd(holdout: pl.DataFrame, tuning: pl.DataFrame, feature_columns: list[str]) -> tuple[BgNbdGoalModel, str]:
    """Fit on the hold-out anchor's summaries (one row per user: the horizons repeat them)."""
    missing = [c for c in BGNBD_FEATURES if c not in feature_columns]
    if missing:
        raise ValueError(f"the BG/NBD baseline needs the lifetime features {missing}")
    users = holdout.unique(subset=["user_id"], keep="first", maintain_order=True)
    counts = users.group_by([BGNBD_X, BGNBD_T_X, BGNBD_T]).len()
    x, t_x, T = (counts[c].to_numpy().astype(np.float64) for c in (BGNBD_X, BGNBD_T_X, BGNBD_T))
    params = bgnbd.fit(x, t_x / BGNBD_UNIT_DAYS, np.maximum(T, t_x) / BGNBD_UNIT_DAYS, weights=counts["len"].to_numpy())
    model = BgNbdGoalModel(list(BGNBD_FEATURES), params.to_dict(), "platt", np.array([1.0, 0.0]), np.zeros(0))
    return _calibrated(model, tuning)


def _calibrated(model: Any, tuning: pl.DataFrame) -> tuple[Any, str]:
    method, cx, cy, reason = fit_calibration(model.raw_margin(tuning), tuning["label"].to_numpy())
    model.calibration, model.calibration_x, model.calibration_y = method, cx, cy
    return model, reason


def importance(model: Any) -> pl.DataFrame:
    """The feature importance frame's schema for a baseline: |coefficient| (logistic) or the
    fitted parameters (BG/NBD) as ``gain``."""
    if isinstance(model, LogisticGoalModel):
        names, gains = list(model.feature_columns), [abs(float(c)) for c in model.coefficients]
    else:
        names, gains = [f"bgnbd_{k}" for k in model.params], [float(v) for v in model.params.values()]
    return pl.DataFrame(
        {"feature": names, "gain": gains, "total_gain": gains, "splits": [0] * len(names)},
        schema={"feature": pl.String, "gain": pl.Float64, "total_gain": pl.Float64, "splits": pl.Int64},
    )
