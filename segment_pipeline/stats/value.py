"""Value statistics: test-vs-control value per user (Welch), and how well a value ranking works.

Value uplift is the difference of mean value per user (every user of the arm, zeros
included: the goal's question is what a user of the arm is worth, not what a buyer spends),
with a Welch interval: t with Welch-Satterthwaite degrees of freedom on the two arms'
own variances. Why Welch and not a bootstrap: spend is heavy-tailed, but the interval
is about a *mean* of hundreds or thousands of users, where the central limit theorem
holds as long as the spend's variance is finite (Gamma-Gamma with q > 2); Welch is exact
to recompute from the table's columns by any campaign tool, needs no seed, and does not
assume equal variances (the campaign changes the test arm's spread). A percentile
bootstrap would not fix the real weakness either: with a small control arm and a few
very large spenders, both under-cover. The README says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

VALUE_COLUMNS = ("test_value_per_user", "control_value_per_user", "value_uplift", "value_ci_low", "value_ci_high")


@dataclass(frozen=True)
class ValueUplift:
    test_users: int
    control_users: int
    test_value_per_user: float | None
    control_value_per_user: float | None
    value_uplift: float | None
    value_ci_low: float | None
    value_ci_high: float | None

    def table_row(self) -> dict[str, float | None]:
        return {column: getattr(self, column) for column in VALUE_COLUMNS}


def welch_interval(test: np.ndarray, control: np.ndarray, alpha: float = 0.05) -> tuple[float, float, float]:
    """(mean(test) - mean(control), low, high) at 1 - alpha; NaN bounds with fewer than 2 per arm."""
    from scipy import stats as scipy_stats

    a, b = np.asarray(test, dtype=np.float64), np.asarray(control, dtype=np.float64)
    if len(a) == 0 or len(b) == 0:
        return math.nan, math.nan, math.nan
    diff = float(a.mean() - b.mean())
    if len(a) < 2 or len(b) < 2:
        return diff, math.nan, math.nan
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return diff, diff, diff
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    t = float(scipy_stats.t.ppf(1 - alpha / 2, df))
    return diff, diff - t * se, diff + t * se


def value_uplift(test: np.ndarray, control: np.ndarray, alpha: float = 0.05) -> ValueUplift:
    """Value per user of each arm, their difference and its Welch interval (None where undefined)."""
    a, b = np.asarray(test, dtype=np.float64), np.asarray(control, dtype=np.float64)
    diff, low, high = welch_interval(a, b, alpha)

    def number(v: float) -> float | None:
        return None if v is None or not math.isfinite(v) else float(v)

    return ValueUplift(
        len(a),
        len(b),
        number(float(a.mean())) if len(a) else None,
        number(float(b.mean())) if len(b) else None,
        number(diff),
        number(low),
        number(high),
    )


def spearman(predicted: np.ndarray, actual: np.ndarray) -> float:
    """Spearman rank correlation (average ranks for ties); NaN when either side is constant."""
    from scipy import stats as scipy_stats

    x, y = np.asarray(predicted, dtype=np.float64), np.asarray(actual, dtype=np.float64)
    if len(x) < 2 or np.all(x == x[0]) or np.all(y == y[0]):
        return math.nan
    # scipy's stubs type the result as a bare tuple; it is a SignificanceResult with .statistic.
    return float(scipy_stats.spearmanr(x, y).statistic)  # pyright: ignore[reportAttributeAccessIssue]


def value_gini(predicted: np.ndarray, actual: np.ndarray) -> float:
    """Normalised Gini of a value ranking: how much of the actual value the ranking by
    ``predicted`` concentrates at the top, relative to the perfect ranking (1 = perfect,
    0 = random). Ties in ``predicted`` are averaged, so a constant prediction scores 0."""
    from scipy import stats as scipy_stats

    p, a = np.asarray(predicted, dtype=np.float64), np.asarray(actual, dtype=np.float64)
    if len(a) < 2 or a.sum() <= 0:
        return math.nan

    def gini(order_key: np.ndarray) -> float:
        # Area between the cumulative-value curve (best first) and the diagonal, tie-averaged.
        ranks = scipy_stats.rankdata(-order_key, method="average")
        n, total = len(a), a.sum()
        # Cumulative share of value captured by the top k equals sum over users with rank <= k;
        # the average-rank form of the area: mean over users of (1 - (rank - 0.5) / n) weighted by value.
        return float(np.sum(a * (1 - (ranks - 0.5) / n)) / total - 0.5)

    best = gini(a)
    return gini(p) / best if best > 0 else math.nan


def value_errors(predicted: np.ndarray, actual: np.ndarray) -> dict[str, float]:
    """Total relative error, MAE and RMSE per user, Spearman and Gini of predicted vs actual value."""
    p, a = np.asarray(predicted, dtype=np.float64), np.asarray(actual, dtype=np.float64)
    total_actual = float(a.sum())
    return {
        "value_users": float(len(a)),
        "value_total_predicted": float(p.sum()),
        "value_total_actual": total_actual,
        "value_total_rel_error": float((p.sum() - total_actual) / total_actual) if total_actual else math.nan,
        "value_mae": float(np.mean(np.abs(p - a))) if len(a) else math.nan,
        "value_rmse": float(np.sqrt(np.mean(np.square(p - a)))) if len(a) else math.nan,
        "value_spearman": spearman(p, a),
        "value_gini": value_gini(p, a),
    }
