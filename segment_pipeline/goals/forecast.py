"""Goal forecast: expected achievers by each day of the goal window, with a 90% band.

The expected count by day k is ``sum(p) * c[k]``: ``p`` are the calibrated scores of the
target group at creation and ``c[k]`` the share of eventual achievers who, in history,
had achieved by day k. The band adds two independent variances:

- chance: a user achieves by day k with probability ``p * c[k]``, independently of the
  others, so the count is Poisson-binomial with variance ``c[k] sum p - c[k]^2 sum p^2``;
- model: the relative error of the total measured on the held-out anchor, ``e``, and its
  bootstrap standard deviation, ``b``, give ``sd = mean * sqrt(e^2 + b^2)``. The one
  measured error is treated as a spread, not a correction: the forecast stays ``sum(p)``
  and the band widens when the model has been off. An unknown error (no held-out
  achievers) counts as 100%.

The band is mean +- z sd (normal approximation), clipped to [0, n] and kept
non-decreasing over the days, as cumulative counts are.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np

DEFAULT_LEVEL = 0.90
_CURVE_TOLERANCE = 1e-6


@dataclass(frozen=True)
class ForecastPoint:
    day: Any  # a date of the goal window, or its 1-based index
    predicted_cumulative: float
    predicted_low: float
    predicted_high: float


def forecast_curve(
    probabilities: np.ndarray,
    timing_curve: Sequence[float] | np.ndarray,
    *,
    holdout_relative_error: float,
    days: int | Sequence[Any],
    holdout_relative_error_sd: float = 0.0,
    level: float = DEFAULT_LEVEL,
) -> list[ForecastPoint]:
    """One point per day of the window; ``days`` is the window's dates or its length."""
    curve = validate_timing_curve(timing_curve)
    labels = list(range(1, days + 1)) if isinstance(days, int) else list(days)
    if len(labels) != len(curve):
        raise ValueError(f"{len(labels)} days but a timing curve of {len(curve)} points")
    p = np.asarray(probabilities, dtype=np.float64)
    mean, low, high = _band(p, curve, holdout_relative_error, holdout_relative_error_sd, level)
    return [
        ForecastPoint(day, float(m), float(lo), float(hi))
        for day, m, lo, hi in zip(labels, mean, low, high, strict=True)
    ]


def validate_timing_curve(timing_curve: Sequence[float] | np.ndarray) -> np.ndarray:
    curve = np.asarray(timing_curve, dtype=np.float64)
    if curve.ndim != 1 or len(curve) == 0:
        raise ValueError("the timing curve must be a non-empty list of shares")
    if np.any(np.diff(curve) < -_CURVE_TOLERANCE):
        raise ValueError("the timing curve must be non-decreasing (a cumulative share of achievers)")
    if curve[0] < -_CURVE_TOLERANCE or abs(curve[-1] - 1.0) > _CURVE_TOLERANCE:
        raise ValueError(f"the timing curve must run within [0, 1] and end at 1.0, it ends at {curve[-1]}")
    return np.clip(np.maximum.accumulate(curve), 0.0, 1.0)


def _band(
    p: np.ndarray, shares: np.ndarray, rel_error: float, rel_error_sd: float, level: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if np.any((p < 0) | (p > 1)) or np.any(np.isnan(p)):
        raise ValueError("probabilities must lie in [0, 1]")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    total, total_sq = float(p.sum()), float(np.square(p).sum())
    mean = shares * total
    chance_var = np.maximum(shares * total - shares**2 * total_sq, 0.0)
    spread = rel_error_sd if math.isfinite(rel_error_sd) else 0.0
    model_rel = math.hypot(rel_error, spread) if math.isfinite(rel_error) else 1.0
    sd = np.sqrt(chance_var + (model_rel * mean) ** 2)
    z = NormalDist().inv_cdf(0.5 + level / 2)
    low = np.maximum.accumulate(np.clip(mean - z * sd, 0.0, len(p)))
    high = np.maximum.accumulate(np.clip(mean + z * sd, 0.0, len(p)))
    return mean, low, high
