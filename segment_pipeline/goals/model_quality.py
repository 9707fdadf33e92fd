"""Realized model quality (``analytics.goal_model_quality``): each scored night, judged by what happened.

A night D's scores (``intent_buckets`` of D) predict, for every user still open (not
achieved by D's end), achieving in ``(D, endDate]``. Once that horizon has passed (a run
as of endDate or later), the night gets one row, on those open users: users, achievers,
the sum of their scores (predicted achievers), AUC with a 95% Hanley-McNeil interval,
Brier score, and the most-likely bucket's conversion over all open users' conversion
(its lift). Rows are written once per prediction date and never change.
"""

from __future__ import annotations

import math
from datetime import date, timedelta

import duckdb
import numpy as np
import polars as pl

from segment_pipeline.config.goals import GoalDefinition
from segment_pipeline.goals.buckets import ACHIEVED, MOST_LIKELY
from segment_pipeline.goals.outcomes import achievers_by_day

COLUMNS = (
    "goal_name",
    "prediction_date",
    "model_run_id",
    "horizon_end",
    "users",
    "achievers",
    "predicted_achievers",
    "auc",
    "auc_ci_low",
    "auc_ci_high",
    "brier",
    "top_bucket_lift",
)
Z_95 = 1.959963984540054

# The numbers of a goal_model_quality row that plot over prediction dates (UI, MLflow).
QUALITY_NUMBERS = (
    "auc",
    "auc_ci_low",
    "auc_ci_high",
    "brier",
    "top_bucket_lift",
    "users",
    "achievers",
    "predicted_achievers",
)


def hanley_mcneil_interval(auc: float, positives: int, negatives: int, z: float = Z_95) -> tuple[float, float]:
    """AUC +- z SE, SE from Hanley and McNeil (1982), clipped to [0, 1]."""
    if not math.isfinite(auc) or positives < 1 or negatives < 1:
        return math.nan, math.nan
    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
    variance = (auc * (1 - auc) + (positives - 1) * (q1 - auc**2) + (negatives - 1) * (q2 - auc**2)) / (
        positives * negatives
    )
    se = math.sqrt(max(variance, 0.0))
    return max(0.0, auc - z * se), min(1.0, auc + z * se)


def night_quality(scores: np.ndarray, labels: np.ndarray, buckets: list[str]) -> dict[str, float]:
    """The metric columns for one night's open users."""
    from sklearn.metrics import roc_auc_score

    y, p = np.asarray(labels, dtype=np.float64), np.asarray(scores, dtype=np.float64)
    positives = int(y.sum())
    negatives = len(y) - positives
    auc = float(roc_auc_score(y, p)) if positives and negatives else math.nan
    low, high = hanley_mcneil_interval(auc, positives, negatives)
    top = np.asarray(buckets) == MOST_LIKELY
    base = y.mean() if len(y) else math.nan
    lift = float(y[top].mean() / base) if top.any() and base > 0 else math.nan
    return {
        "users": len(y),
        "achievers": positives,
        "predicted_achievers": float(p.sum()),
        "auc": auc,
        "auc_ci_low": low,
        "auc_ci_high": high,
        "brier": float(np.mean((p - y) ** 2)) if len(y) else math.nan,
        "top_bucket_lift": lift,
    }


def record_realized_quality(con: duckdb.DuckDBPyConnection, goal: GoalDefinition, as_of: date) -> list[dict]:
    """Add the rows of every scored night whose horizon has passed by ``as_of`` and that has
    none yet; returns them (empty before endDate)."""
    if as_of < goal.end_date:
        return []
    done = {
        r[0]
        for r in con.execute(
            "SELECT prediction_date FROM analytics.goal_model_quality WHERE goal_name = ?", [goal.name]
        ).fetchall()
    }
    nights = [
        r[0]
        for r in con.execute(
            """SELECT DISTINCT as_of_date FROM analytics.intent_buckets
           WHERE goal_name = ? AND as_of_date < ? ORDER BY 1""",
            [goal.name, goal.end_date],
        ).fetchall()
    ]
    rows = []
    for night in (n for n in nights if n not in done):
        scored = con.execute(
            """SELECT b.user_id, b.score, b.bucket, s.model_run_id FROM analytics.intent_buckets b
               LEFT JOIN analytics.goal_status s ON s.goal_name = b.goal_name AND s.as_of_date = b.as_of_date
               WHERE b.goal_name = ? AND b.as_of_date = ? AND b.bucket <> ? ORDER BY b.user_id""",
            [goal.name, night, ACHIEVED],
        ).pl()
        if scored.height == 0:
            continue
        later = achievers_by_day(con, goal, scored.get_column("user_id"), night + timedelta(days=1), goal.end_date)
        labels = scored.get_column("user_id").is_in(later.get_column("user_id").implode()).cast(pl.Int8).to_numpy()
        metrics = night_quality(scored.get_column("score").to_numpy(), labels, scored.get_column("bucket").to_list())
        run_id = scored.get_column("model_run_id")[0]
        rows.append(
            {
                "goal_name": goal.name,
                "prediction_date": night,
                "model_run_id": run_id,
                "horizon_end": goal.end_date,
                **metrics,
            }
        )
    if rows:
        values = [
            [None if isinstance(r[c], float) and not math.isfinite(r[c]) else r[c] for c in COLUMNS] for r in rows
        ]
        con.executemany(f"INSERT INTO analytics.goal_model_quality VALUES ({', '.join('?' * len(COLUMNS))})", values)
    return rows


def log_to_mlflow(tracking_uri: str, goal: GoalDefinition, rows: list[dict]) -> None:
    """Realized metrics on the MLflow run that scored each night, step = day of the window."""
    from segment_pipeline.goals.tracking import log_realized_metrics

    log_realized_metrics(
        tracking_uri,
        [
            (
                r["model_run_id"],
                (r["prediction_date"] - goal.created_on).days,
                {f"realized_{k}": r[k] for k in QUALITY_NUMBERS},
            )
            for r in rows
            if r["model_run_id"]
        ],
    )
