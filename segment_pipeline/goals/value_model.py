"""Value goals (``valueProperty``): expected sum of a numeric property of the goal events
in what is left of the window, per user, and the candidates that predict it.

Two kinds, judged on the same held-out evaluation rows as the probability model
(``training.time_split``: latest anchor, salted-hash halves):

- ``hurdle``: P(achieve in the horizon) from the goal's probability champion, times
  E[value | achieve] from an XGBoost regressor with a Gamma objective (log link, so it
  predicts a mean, not a median like a log1p target would) on the training anchors'
  achievers, boosted from the classic model's implied spend when that one could be
  fitted, and scaled on the tuning half so its predicted total matches the actual.
- ``bgnbd_gamma_gamma``: the classic baseline, E[goal days in the horizon | x, t_x, T]
  (BG/NBD) times E[value per goal day | x, m_x] (Gamma-Gamma), both fitted on the
  hold-out anchor's summaries like the BG/NBD probability baseline.

The kind with the lower mean squared error per user on the evaluation half is champion
(``choose_value_champion``); every error (total, MAE, RMSE,
Spearman, Gini) of both is logged to MLflow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import duckdb
import numpy as np
import polars as pl

from segment_pipeline.config.goals import GoalDefinition
from segment_pipeline.goals import feature_sql as sql
from segment_pipeline.goals.feature_spec import BGNBD_T, BGNBD_T_X, BGNBD_X
from segment_pipeline.goals.matching import (
    SqlParams,
    event_types_condition,
    goal_event_condition,
    goal_value_sql,
    value_path,
)
from segment_pipeline.goals.training import feature_matrix, time_split, xgboost_module
from segment_pipeline.rules.dialect import DUCKDB
from segment_pipeline.stats import bgnbd, gamma_gamma
from segment_pipeline.stats.value import value_errors
from segment_pipeline.storage.warehouse import midnight, one_row

VALUE = "value"
BGNBD_UNIT_DAYS = 7.0
SPEND_PARAMS: dict[str, Any] = {
    "objective": "reg:gamma",
    "tree_method": "hist",
    "max_depth": 3,
    "eta": 0.05,
    "subsample": 0.8,
    "colsample_bytree": 0.8,
    "min_child_weight": 20,
    "nthread": 1,
    "seed": 0,
}
SPEND_ROUNDS = 300
MIN_SPEND_ROWS = 20
MIN_PRIOR_PROBABILITY, MIN_PRIOR_SPEND = 1e-3, 1e-6


def value_feature_names(prop: str) -> tuple[str, str, str]:
    return f"goal_value_sum:{prop}", f"goal_value_mean:{prop}", f"goal_value_last:{prop}"


@dataclass(frozen=True)
class PropertyCheck:
    numeric: int
    non_numeric: int
    others: list[str]  # numeric properties the goal events do have

    def problem(self, goal: GoalDefinition) -> str | None:
        if self.numeric:
            return None
        found = (
            f"numeric properties they have: {', '.join(self.others)}"
            if self.others
            else "they have no numeric property"
        )
        counted = f" ({self.non_numeric:,} events hold it as a non-number)" if self.non_numeric else ""
        return (
            f"goal '{goal.name}': valueProperty '{goal.value_property}' is not a numeric property of "
            f"{goal.describe_events()} in the history before {goal.created_on}{counted}; {found}. "
            "Fix: set valueProperty to one of them, or remove it"
        )

    def note(self) -> str:
        if not self.non_numeric:
            return ""
        return f"{self.non_numeric:,} goal events hold a non-numeric value property: left out of every value sum, not counted as 0"


def check_property(con: duckdb.DuckDBPyConnection, goal: GoalDefinition, before: date) -> PropertyCheck:
    """How many goal events before ``before`` hold the value property as a number, and as something else."""
    params = SqlParams()
    types, is_goal = event_types_condition(goal.events, params), goal_event_condition(goal.events, params)
    path = params.bind(value_path(goal), "VARCHAR")
    upper = params.bind(midnight(before), "TIMESTAMP")
    numeric, non_numeric = one_row(
        con,
        f"""WITH e AS (SELECT json_type(properties, {path}) AS kind, json_extract_string(properties, {path}) AS raw
                       FROM {sql.EVENTS} WHERE {types} AND ts < {upper} AND {is_goal})
            SELECT count(*) FILTER (WHERE TRY_CAST(raw AS DOUBLE) IS NOT NULL AND kind <> 'BOOLEAN'),
                   count(*) FILTER (WHERE raw IS NOT NULL AND (TRY_CAST(raw AS DOUBLE) IS NULL OR kind = 'BOOLEAN'))
            FROM e""",
        params.values,
    )
    others = [] if numeric else sql.numeric_goal_properties(con, goal.events, before, 10)
    return PropertyCheck(int(numeric), int(non_numeric), others)


def window_values(con: duckdb.DuckDBPyConnection, goal: GoalDefinition, rows: pl.DataFrame) -> np.ndarray:
    """For each row (``anchor``, ``user_id``, ``horizon_days``): the sum of the value property over
    the user's goal events in ``[anchor 00:00, anchor + horizon)``; 0 without any."""
    params = SqlParams()
    types, is_goal, value = goal_value_sql(goal, params)
    keyed = rows.select(
        pl.int_range(pl.len(), dtype=pl.Int64).alias("_row"),
        pl.col("anchor").cast(pl.Date),
        pl.col("user_id").cast(pl.String),
        pl.col("horizon_days").cast(pl.Int32),
    )
    if keyed.height == 0:
        return np.zeros(0)
    first_anchor, last_anchor, longest = keyed.select(
        pl.col("anchor").min().alias("first"), pl.col("anchor").max().alias("last"), pl.col("horizon_days").max()
    ).row(0)
    first = params.bind(midnight(first_anchor), "TIMESTAMP")
    last = params.bind(midnight(last_anchor + timedelta(days=int(longest))), "TIMESTAMP")
    con.register("_value_rows", keyed)
    try:
        result = con.execute(
            f"""WITH e AS (SELECT user_id, ts, {value} AS v FROM {sql.EVENTS}
                           WHERE {types} AND ts >= {first} AND ts < {last} AND {is_goal}
                             AND user_id IN (SELECT user_id FROM _value_rows))
                SELECT r._row, coalesce({DUCKDB.stable_sum("e.v")}, 0) AS v FROM _value_rows r
                LEFT JOIN e ON e.user_id = r.user_id AND e.ts >= CAST(r.anchor AS TIMESTAMP)
                           AND e.ts < CAST(r.anchor AS TIMESTAMP) + to_days(r.horizon_days)
                GROUP BY r._row ORDER BY r._row""",
            params.values,
        ).fetchnumpy()
    finally:
        con.unregister("_value_rows")
    return np.asarray(result["v"], dtype=np.float64)


def value_timing_curve(con: duckdb.DuckDBPyConnection, goal: GoalDefinition, anchors: list[date]) -> np.ndarray:
    """Share of a window's value realized by the end of each day, pooled over past windows
    ``[A, A + length)`` of every user; even pace without any value in history."""
    length = goal.length_days
    totals = np.zeros(length)
    for anchor in sorted(set(anchors)):
        params = SqlParams()  # DuckDB refuses parameters a query does not use
        types, is_goal, value = goal_value_sql(goal, params)
        lower = params.bind(midnight(anchor), "TIMESTAMP")
        upper = params.bind(midnight(anchor + timedelta(days=length)), "TIMESTAMP")
        start = params.bind(anchor, "DATE")
        for day, v in con.execute(
            f"""SELECT datediff('day', {start}, CAST(ts AS DATE)) AS d, {DUCKDB.stable_sum("v")}
                FROM (SELECT ts, {value} AS v FROM {sql.EVENTS}
                      WHERE {types} AND ts >= {lower} AND ts < {upper} AND {is_goal})
                GROUP BY 1""",
            params.values,
        ).fetchall():
            if v is not None and 0 <= day < length:
                totals[int(day)] += max(float(v), 0.0)
    if totals.sum() <= 0:
        return np.arange(1, length + 1) / length
    return np.cumsum(totals) / totals.sum()


@dataclass
class HurdleValueModel:
    """P(achieve) x E[value | achieve]; the probability comes from the goal's champion.

    With a ``prior`` (the fitted BG/NBD x Gamma-Gamma model) the spend trees are boosted
    from the prior's implied spend given achievement, ``prior value / p``: they learn only
    what the features add to the classic model, and early stopping keeps the prior where
    they add nothing (on BG/NBD x Gamma-Gamma data the trees alone rank users worse)."""

    booster: Any
    feature_columns: list[str]
    scale: float
    prior: Any = None
    kind = "hurdle"

    def base_margin(self, frame: Any, probabilities: np.ndarray) -> np.ndarray | None:
        if self.prior is None:
            return None
        p = np.maximum(np.asarray(probabilities, dtype=np.float64), MIN_PRIOR_PROBABILITY)
        implied = np.asarray(self.prior.predict_value(frame), dtype=np.float64) / p
        return np.log(np.maximum(np.nan_to_num(implied, nan=MIN_PRIOR_SPEND), MIN_PRIOR_SPEND))

    def spend(self, frame: Any, probabilities: np.ndarray) -> np.ndarray:
        matrix = feature_matrix(frame, self.feature_columns)
        if len(matrix) == 0:
            return np.zeros(0)
        margin = self.base_margin(frame, probabilities)
        extra = {} if margin is None else {"base_margin": margin}
        return self.scale * np.asarray(self.booster.inplace_predict(matrix, **extra), dtype=np.float64)

    def predict_value(self, frame: Any, probabilities: np.ndarray) -> np.ndarray:
        return np.asarray(probabilities, dtype=np.float64) * self.spend(frame, probabilities)


@dataclass
class BgNbdGammaGammaValueModel:
    """E[goal days in the horizon] (BG/NBD) x E[value per goal day] (Gamma-Gamma)."""

    bgnbd_params: dict[str, float]
    spend_params: dict[str, float]
    value_property: str
    kind = "bgnbd_gamma_gamma"
    feature_columns: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.feature_columns = [
            BGNBD_X,
            BGNBD_T_X,
            BGNBD_T,
            "goal_life_days",
            value_feature_names(self.value_property)[0],
            "horizon_days",
        ]

    def predict_value(self, frame: Any, probabilities: np.ndarray | None = None) -> np.ndarray:
        x, t_x, T, days, total, horizon = feature_matrix(frame, self.feature_columns).astype(np.float64).T
        if len(x) == 0:
            return np.zeros(0)
        w = BGNBD_UNIT_DAYS
        purchases = bgnbd.conditional_expected(
            bgnbd.BgNbdParams(**self.bgnbd_params), horizon / w, x, t_x / w, np.maximum(T, t_x) / w
        )
        days = np.nan_to_num(days)
        per_day = np.where(days >= 1, np.nan_to_num(total) / np.maximum(days, 1), np.nan)
        spend = gamma_gamma.conditional_expected_spend(
            gamma_gamma.GammaGammaParams(**self.spend_params), np.where(per_day > 0, days, 0), per_day
        )
        return purchases * spend


@dataclass
class TrainedValueModel:
    model: Any
    metrics: dict[str, float]
    spend_cv: float  # coefficient of variation of achievers' value around its prediction (held out)
    squared_errors: np.ndarray = field(default_factory=lambda: np.zeros(0))  # per evaluation row, paired comparisons


def fit_hurdle(
    train: pl.DataFrame,
    tuning: pl.DataFrame,
    train_p: np.ndarray,
    tuning_p: np.ndarray,
    feature_columns: list[str],
    prior: Any = None,
) -> HurdleValueModel:
    xgb = xgboost_module()
    model = HurdleValueModel(None, list(feature_columns), 1.0, prior)
    positive = train[VALUE].to_numpy() > 0
    if positive.sum() < MIN_SPEND_ROWS:
        raise ValueError(f"only {int(positive.sum())} training rows with a positive value (needs {MIN_SPEND_ROWS})")

    def matrix(rows: pl.DataFrame, p: np.ndarray, mask: np.ndarray) -> Any:
        margin = model.base_margin(rows, p)
        return xgb.DMatrix(
            feature_matrix(rows, feature_columns)[mask],
            label=rows[VALUE].to_numpy()[mask],
            base_margin=None if margin is None else margin[mask],
            feature_names=feature_columns,
        )

    dtrain = matrix(train, train_p, positive)
    evals, stopping = [], None
    tune_positive = tuning[VALUE].to_numpy() > 0
    if tune_positive.sum() >= MIN_SPEND_ROWS:
        evals, stopping = [(matrix(tuning, tuning_p, tune_positive), "tuning")], 20
    model.booster = xgb.train(
        SPEND_PARAMS, dtrain, SPEND_ROUNDS, evals=evals, early_stopping_rounds=stopping, verbose_eval=False
    )
    # Scale so the tuning half's predicted total value matches its actual total: the same
    # drift correction the calibrator gives the probabilities.
    predicted = model.predict_value(tuning, tuning_p).sum()
    actual = tuning[VALUE].sum()
    if predicted > 0 and actual > 0:
        model.scale = float(actual / predicted)
    return model


def fit_bgnbd_gamma_gamma(holdout: pl.DataFrame, value_property: str) -> BgNbdGammaGammaValueModel:
    users = holdout.unique(subset=["user_id"], keep="first", maintain_order=True)
    counts = users.group_by([BGNBD_X, BGNBD_T_X, BGNBD_T]).len()
    x, t_x, T = (counts[c].to_numpy().astype(np.float64) for c in (BGNBD_X, BGNBD_T_X, BGNBD_T))
    w = BGNBD_UNIT_DAYS
    params = bgnbd.fit(x, t_x / w, np.maximum(T, t_x) / w, weights=counts["len"].to_numpy())
    total_col = value_feature_names(value_property)[0]
    spenders = users.filter((pl.col("goal_life_days") >= 1) & (pl.col(total_col) > 0))
    if spenders.height < MIN_SPEND_ROWS:
        raise ValueError(f"only {spenders.height} users with a past value (needs {MIN_SPEND_ROWS})")
    days = spenders["goal_life_days"].to_numpy().astype(np.float64)
    spend = gamma_gamma.fit(days, spenders[total_col].to_numpy().astype(np.float64) / days)
    return BgNbdGammaGammaValueModel(params.to_dict(), spend.to_dict(), value_property)


def train_value_models(
    frame: pl.DataFrame, values: np.ndarray, feature_columns: list[str], probability_model: Any, value_property: str
) -> tuple[list[TrainedValueModel], list[str]]:
    """Every value kind trained and judged on the held-out evaluation half; (models, notes)."""
    frame = frame.with_columns(pl.Series(VALUE, values, dtype=pl.Float64))
    _, train, tuning, evaluation, notes = time_split(frame)
    holdout = pl.concat([tuning, evaluation])
    actual = evaluation[VALUE].to_numpy()
    p_eval = np.asarray(probability_model.predict_proba(evaluation), dtype=np.float64)
    p_tune = np.asarray(probability_model.predict_proba(tuning), dtype=np.float64)
    p_train = np.asarray(probability_model.predict_proba(train), dtype=np.float64)
    trained: list[TrainedValueModel] = []
    models = []
    try:
        baseline = fit_bgnbd_gamma_gamma(holdout, value_property)
    except (ValueError, np.linalg.LinAlgError) as exc:
        baseline = None
        notes.append(f"bgnbd_gamma_gamma left out (and the hurdle boosts from a constant): {exc}")
    try:
        models.append(fit_hurdle(train, tuning, p_train, p_tune, feature_columns, baseline))
    except ValueError as exc:
        notes.append(f"hurdle left out: {exc}")
    if baseline is not None:
        models.append(baseline)
    for model in models:
        predicted = model.predict_value(evaluation, p_eval)
        metrics = value_errors(predicted, actual)
        trained.append(TrainedValueModel(model, metrics, _spend_cv(predicted, actual), np.square(predicted - actual)))
    return trained, notes


def choose_value_champion(candidates: list[TrainedValueModel]) -> tuple[TrainedValueModel, str]:
    """The kind with the lower mean squared error per user on the same held-out rows wins
    (ties: the hurdle). Squared error because the target is an expected value: the mean
    minimizes it, while the MAE (also logged) is minimized by the median, which for spend
    with mostly zeros rewards predicting too little. The paired standard error of the
    difference is reported with it: heavy-tailed spend makes the difference noisy."""
    summary = ", ".join(
        f"{c.model.kind} RMSE {c.metrics['value_rmse']:.3f}, MAE {c.metrics['value_mae']:.3f}, "
        f"total error {c.metrics['value_total_rel_error']:+.1%}, Spearman {c.metrics['value_spearman']:.3f}, "
        f"Gini {c.metrics['value_gini']:.3f}"
        for c in candidates
    )
    by_kind = {c.model.kind: c for c in candidates}
    hurdle, classic = by_kind.get("hurdle"), by_kind.get("bgnbd_gamma_gamma")
    if hurdle is None or classic is None:
        best = hurdle or classic
        if best is None:
            raise ValueError("no value model to choose from")
        return best, f"value champion {best.model.kind}, the only value kind trained ({summary})"
    gain = classic.squared_errors - hurdle.squared_errors
    se = float(gain.std(ddof=1) / math.sqrt(len(gain))) if len(gain) > 1 else math.nan
    best = hurdle if gain.mean() >= 0 else classic
    return best, (
        f"value champion {best.model.kind}: lower held-out squared error per user "
        f"(hurdle minus classic {-gain.mean():+.3f}, paired SE {se:.3f}) ({summary})"
    )


def _spend_cv(predicted: np.ndarray, actual: np.ndarray) -> float:
    """sd / mean of an achiever's value relative to its prediction, for the forecast's chance band."""
    mask = (actual > 0) & (predicted > 0)
    if mask.sum() < 2:
        return 1.0
    ratio = actual[mask] / predicted[mask]
    ratio = ratio / ratio.mean()
    return float(ratio.std(ddof=1))


def value_forecast(
    predicted: np.ndarray,
    probabilities: np.ndarray,
    curve: np.ndarray,
    *,
    rel_error: float,
    spend_cv: float,
    level: float = 0.90,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, low, high) cumulative value per day of the window.

    Chance: user i's value is a hurdle, 0 or a spend around ``v_i / p_i`` with relative sd
    ``spend_cv``, so Var = (v_i^2 / p_i)(1 + cv^2) - v_i^2; by day k a share c[k] of it.
    Model: the held-out total error ``rel_error`` as a spread (unknown: 100%), as the
    achiever forecast does."""
    from statistics import NormalDist

    v = np.asarray(predicted, dtype=np.float64)
    p = np.clip(np.asarray(probabilities, dtype=np.float64), 1e-6, 1.0)
    c = np.asarray(curve, dtype=np.float64)
    user_var = np.maximum(v**2 / p * (1 + spend_cv**2) - v**2, 0.0)
    mean = c * v.sum()
    model_rel = abs(rel_error) if math.isfinite(rel_error) else 1.0
    sd = np.sqrt(c * user_var.sum() + (model_rel * mean) ** 2)
    z = NormalDist().inv_cdf(0.5 + level / 2)
    low = np.maximum.accumulate(np.maximum(mean - z * sd, 0.0))
    high = np.maximum.accumulate(mean + z * sd)
    return mean, low, high
