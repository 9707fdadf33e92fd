"""Goal models: XGBoost on point-in-time training sets, calibrated on the latest anchor.

The split is by time, never random:
- train: every anchor before the latest one. Rows whose label window
  ``[anchor, anchor + horizon_days)`` reaches past the latest anchor are purged: their
  labels were observed during the held-out period, so they would leak it.
- held out: every row of the latest anchor, cut by a salted hash of ``user_id`` into a
  tuning half (early stopping and calibration) and an evaluation half (metrics only).
  Fitting the calibrator and measuring calibration on the same rows would flatter both.

Calibration turns scores into probabilities whose sum forecasts the number of achievers:
isotonic when the tuning half has enough rows of each class (``stats/calibration.py``),
Platt scaling (a logistic fit on the margin) otherwise, because isotonic steps overfit
when positives are few. Both reproduce the tuning half's mean exactly, and both correct
drift between the training anchors and the latest one.
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import polars as pl

from segment_pipeline.stats.calibration import apply_calibration, fit_calibration, sigmoid

if TYPE_CHECKING:
    import xgboost as xgb


KEY_COLUMNS = ("user_id", "anchor", "horizon_days", "label")


@functools.cache
def xgboost_module() -> Any:
    """``xgboost``, imported on first use (with scikit-learn and scipy it costs seconds)."""
    # libgomp reads this when xgboost loads it. Its default, spinning while waiting, makes
    # boosting 10-30x slower whenever another process shares the cores, as Dagster's parallel
    # steps do. Set here, not at import of this module: nothing is written at import time.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import xgboost

    return xgboost


DEFAULT_PARAMS: dict[str, Any] = {
    "objective": "binary:logistic",
    "eval_metric": "logloss",
    "tree_method": "hist",
    "max_depth": 6,
    "eta": 0.1,
    "subsample": 0.8,
    "colsample_bytree": 0.8,
    "min_child_weight": 5,
    "max_bin": 256,
}
NUM_BOOST_ROUND = 300
EARLY_STOPPING_ROUNDS = 20
# Below this many training cells one thread is faster: OpenMP's per-node synchronisation
# costs more than it saves, and 10x more when other processes share the cores.
PARALLEL_MIN_CELLS = 2_000_000
TRAIN_BATCH_ROWS = 262_144  # rows converted to float32 at a time for XGBoost's training matrix
ECE_BINS = 10
BOOTSTRAP_RESAMPLES = 200
_SPLIT_SALT = "segment_pipeline holdout split"
_EPS = 1e-6


class InsufficientTrainingData(ValueError):
    """The training set cannot support a time-based split (the goal's ``insufficient_history``)."""


def feature_matrix(frame: Any, feature_columns: list[str]) -> np.ndarray:
    """Features as float32 in ``feature_columns`` order; nulls become NaN (XGBoost's missing)."""
    if isinstance(frame, np.ndarray):
        matrix = np.asarray(frame, dtype=np.float32)
        if matrix.ndim != 2 or matrix.shape[1] != len(feature_columns):
            raise ValueError(f"expected a 2-D array with {len(feature_columns)} feature columns, got {matrix.shape}")
        return matrix
    missing = [c for c in feature_columns if c not in frame.columns]
    if missing:
        raise ValueError(f"feature columns missing from the frame: {missing}")
    if isinstance(frame, pl.DataFrame):
        return frame.select(pl.col(c).cast(pl.Float32) for c in feature_columns).to_numpy()
    return frame[feature_columns].to_numpy(dtype=np.float32, na_value=np.nan)  # pandas


class ScoringModel(Protocol):
    """What every model kind (XGBoost here, the baselines in ``goals/baselines.py``) offers."""

    kind: str
    feature_columns: list[str]
    calibration: str

    def predict_proba(self, frame: Any) -> np.ndarray: ...


@dataclass
class GoalModel:
    """A picklable calibrated scorer: ``predict_proba(frame)`` for polars, pandas or a matrix."""

    booster: xgb.Booster
    feature_columns: list[str]
    calibration: str  # "isotonic" or "platt"
    calibration_x: np.ndarray  # isotonic knots on the raw probability, or [slope, intercept]
    calibration_y: np.ndarray

    def raw_margin(self, frame: Any) -> np.ndarray:
        matrix = feature_matrix(frame, self.feature_columns)
        if len(matrix) == 0:
            return np.zeros(0)
        return np.asarray(self.booster.inplace_predict(matrix, predict_type="margin"), dtype=np.float64)

    def predict_proba(self, frame: Any) -> np.ndarray:
        return self.calibrate(self.raw_margin(frame))

    kind = "xgboost"

    def calibrate(self, margin: np.ndarray) -> np.ndarray:
        return apply_calibration(self.calibration, self.calibration_x, self.calibration_y, margin)


@dataclass
class TrainedGoalModel:
    """The model plus everything needed to log, compare, bucket and forecast with it."""

    model: ScoringModel
    metrics: dict[str, float]
    feature_importance: pl.DataFrame  # feature, gain, total_gain, splits
    calibration_curve: pl.DataFrame  # bin, n, mean_predicted, observed_rate (evaluation half)
    calibration_reason: str
    holdout_anchor: date
    train_anchors: list[date]
    params: dict[str, Any]
    best_iteration: int
    # Evaluation-half rows with every column, so a champion built on other features can be scored on them.
    evaluation_frame: pl.DataFrame
    evaluation_scores: np.ndarray
    notes: list[str] = field(default_factory=list)

    @property
    def calibration_method(self) -> str:
        return self.model.calibration

    @property
    def feature_columns(self) -> list[str]:
        return self.model.feature_columns

    @property
    def evaluation_labels(self) -> np.ndarray:
        return self.evaluation_frame["label"].to_numpy().astype(np.int8)

    def predict_proba(self, frame: Any) -> np.ndarray:
        return self.model.predict_proba(frame)


def train_goal_model(
    frame: pl.DataFrame,
    feature_columns: list[str],
    *,
    seed: int = 0,
    params: dict[str, Any] | None = None,
    purge_overlap: bool = True,
    split: TimeSplit | None = None,
) -> TrainedGoalModel:
    """Fit, early-stop and calibrate on the latest anchor; evaluate on its other half.

    ``params`` override ``DEFAULT_PARAMS``; the keys ``num_boost_round`` and
    ``early_stopping_rounds`` set the boosting length. ``split``: ``time_split(frame,
    purge_overlap)`` when the caller has it already.
    """
    validate_frame(frame, feature_columns)
    holdout_anchor, train, tuning, evaluation, notes = split or time_split(frame, purge_overlap)
    notes = list(notes)
    x_tune, y_tune = feature_matrix(tuning, feature_columns), tuning["label"].to_numpy()
    booster, xgb_params = _fit_booster(train, x_tune, y_tune, feature_columns, seed, params or {})
    best_iteration = int(booster.best_iteration)
    booster = booster[: best_iteration + 1]

    tune_margin = np.asarray(booster.inplace_predict(x_tune, predict_type="margin"), dtype=np.float64)
    model, reason = _calibrate(booster, list(feature_columns), tune_margin, y_tune)

    eval_x, eval_y = feature_matrix(evaluation, feature_columns), evaluation["label"].to_numpy()
    eval_margin = model.raw_margin(eval_x)
    scores = model.calibrate(eval_margin)
    metrics = evaluation_metrics(eval_y, scores)
    raw = evaluation_metrics(eval_y, sigmoid(eval_margin))
    metrics.update({f"{k}_uncalibrated": raw[k] for k in ("brier", "log_loss", "ece", "forecast_rel_error")})
    metrics["forecast_rel_error_sd"] = bootstrap_rel_error_sd(eval_y, scores, seed=seed)
    metrics.update(
        n_train=float(train.height),
        n_holdout=float(tuning.height + evaluation.height),
        n_tuning=float(tuning.height),
        n_evaluation=float(evaluation.height),
        train_positives=float(train["label"].sum()),
        best_iteration=float(best_iteration),
    )
    return TrainedGoalModel(
        model=model,
        metrics=metrics,
        feature_importance=_importance(booster, feature_columns),
        calibration_curve=calibration_curve(eval_y, scores),
        calibration_reason=reason,
        holdout_anchor=holdout_anchor,
        train_anchors=sorted(train["anchor"].unique().to_list()),
        params=xgb_params,
        best_iteration=best_iteration,
        evaluation_frame=evaluation,
        evaluation_scores=scores,
        notes=notes,
    )


TimeSplit = tuple[date, pl.DataFrame, pl.DataFrame, pl.DataFrame, list[str]]


def time_split(frame: pl.DataFrame, purge_overlap: bool = True) -> TimeSplit:
    """(hold-out anchor, training rows, tuning half, evaluation half, notes)."""
    notes: list[str] = []
    anchors = sorted(frame["anchor"].unique().to_list())
    if len(anchors) < 2:
        raise InsufficientTrainingData(f"need at least 2 anchors for a time-based hold-out, got {len(anchors)}")
    holdout_anchor = anchors[-1]
    holdout = frame.filter(pl.col("anchor") == holdout_anchor)
    train = frame.filter(pl.col("anchor") < holdout_anchor)
    if purge_overlap:
        purged = train.filter(pl.col("anchor") + pl.duration(days=pl.col("horizon_days")) <= holdout_anchor)
        positives = purged["label"].sum()
        if 0 < positives < purged.height:
            if purged.height < train.height:
                notes.append(
                    f"purged {train.height - purged.height} training rows whose label window overlaps the hold-out"
                )
            train = purged
        else:
            notes.append("kept training rows whose label window overlaps the hold-out: purging left a single class")
    _require_both_classes(train, "training anchors")

    tuning_mask = tuning_half_mask(holdout["user_id"])
    tuning, evaluation = holdout.filter(tuning_mask), holdout.filter(~tuning_mask)
    _require_both_classes(tuning, f"tuning half of the hold-out anchor {holdout_anchor}")
    if evaluation.height == 0:
        raise InsufficientTrainingData(f"the hold-out anchor {holdout_anchor} has too few users to split")
    return holdout_anchor, train, tuning, evaluation, notes


def _fit_booster(
    train: pl.DataFrame,
    x_tune: np.ndarray,
    y_tune: np.ndarray,
    feature_columns: list[str],
    seed: int,
    params: dict[str, Any],
) -> tuple[xgb.Booster, dict[str, Any]]:
    """Boost on the training rows, stopping early on the tuning half's log loss."""
    xgb = xgboost_module()

    nthread = _cpu_count() if train.height * len(feature_columns) >= PARALLEL_MIN_CELLS else 1
    xgb_params = {**DEFAULT_PARAMS, "seed": seed, "nthread": nthread, **params}
    rounds = int(xgb_params.pop("num_boost_round", NUM_BOOST_ROUND))
    patience = int(xgb_params.pop("early_stopping_rounds", EARLY_STOPPING_ROUNDS))
    booster = _fit_on_engine(train, x_tune, y_tune, feature_columns, xgb_params, rounds, patience)
    if booster is None:
        dtrain = xgb.QuantileDMatrix(_row_batches(xgb, train, feature_columns), nthread=xgb_params["nthread"])
        dtune = xgb.DMatrix(x_tune, label=y_tune, feature_names=feature_columns, nthread=xgb_params["nthread"])
        booster = xgb.train(
            xgb_params, dtrain, rounds, evals=[(dtune, "tuning")], early_stopping_rounds=patience, verbose_eval=False
        )
    return booster, {**xgb_params, "num_boost_round": rounds, "early_stopping_rounds": patience}


def _row_batches(xgb, train: pl.DataFrame, feature_columns: list[str]):
    """The training rows for a ``QuantileDMatrix``, ``TRAIN_BATCH_ROWS`` at a time: XGBoost
    sketches, then quantizes, batch by batch, so no float32 copy of the whole frame is held
    next to the frame (about 0.9 GB at 2M rows x 110 features)."""

    class RowBatches(xgb.DataIter):
        def __init__(self) -> None:
            self._start = 0
            super().__init__()

        def next(self, input_data) -> bool:
            if self._start >= train.height:
                return False
            batch = train.slice(self._start, TRAIN_BATCH_ROWS)
            input_data(
                data=feature_matrix(batch, feature_columns),
                label=batch["label"].to_numpy(),
                feature_names=feature_columns,
            )
            self._start += TRAIN_BATCH_ROWS
            return True

        def reset(self) -> None:
            self._start = 0

    return RowBatches()


def _fit_on_engine(train, x_tune, y_tune, feature_columns, xgb_params, rounds, patience):
    """With the Spark engine (``engines.using``), the booster of ``SparkXGBClassifier``; None
    otherwise, or where it cannot run (Spark Connect: ``engines/spark_training.py`` logs it)."""
    from segment_pipeline.engines import current_engine

    engine = current_engine()
    session = getattr(engine, "session", None)
    if engine.name != "spark" or session is None:
        return None
    from segment_pipeline.engines.spark_training import fit_booster

    x_train, y_train = feature_matrix(train, feature_columns), train["label"].to_numpy()
    return fit_booster(session, x_train, y_train, x_tune, y_tune, feature_columns, xgb_params, rounds, patience)


def tuning_half_mask(user_ids: pl.Series) -> pl.Series:
    """True for users in the tuning half: a salted hash, so stable across runs and machines."""

    def in_tuning(user_id: str) -> bool:
        digest = hashlib.blake2b(f"{_SPLIT_SALT}:{user_id}".encode(), digest_size=4).digest()
        return int.from_bytes(digest, "big") < 2**31

    halves = {u: in_tuning(str(u)) for u in user_ids.unique().to_list()}
    return user_ids.replace_strict(halves, return_dtype=pl.Boolean)


def evaluation_metrics(labels: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    """Ranking, probability and count-forecast quality of ``probabilities`` against 0/1 ``labels``."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    y = np.asarray(labels, dtype=np.float64)
    p = np.clip(np.asarray(probabilities, dtype=np.float64), _EPS, 1 - _EPS)
    both = 0 < y.sum() < len(y)
    actual, predicted = float(y.sum()), float(p.sum())
    return {
        "auc": float(roc_auc_score(y, p)) if both else math.nan,
        "pr_auc": float(average_precision_score(y, p)) if both else math.nan,
        "brier": float(np.mean((p - y) ** 2)),
        "log_loss": float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))),
        "ece": expected_calibration_error(y, p),
        "ece_quantile": expected_calibration_error(y, p, quantile_bins=True),
        "base_rate": float(y.mean()),
        "mean_predicted": float(p.mean()),
        "positives": actual,
        "predicted_positives": predicted,
        "forecast_rel_error": (predicted - actual) / actual if actual else math.nan,
    }


def expected_calibration_error(
    labels: np.ndarray, probabilities: np.ndarray, *, bins: int = ECE_BINS, quantile_bins: bool = False
) -> float:
    """Row-weighted mean |mean predicted - observed rate| over equal-width (or equal-count) bins."""
    y, p = np.asarray(labels, dtype=np.float64), np.asarray(probabilities, dtype=np.float64)
    groups = _bins(p, bins, quantile_bins)
    return float(sum(len(g) * abs(p[g].mean() - y[g].mean()) for g in groups if len(g)) / len(p))


def calibration_curve(labels: np.ndarray, probabilities: np.ndarray, *, bins: int = ECE_BINS) -> pl.DataFrame:
    """Equal-count bins of predicted vs observed, for the calibration plot."""
    y, p = np.asarray(labels, dtype=np.float64), np.asarray(probabilities, dtype=np.float64)
    rows = [
        {"bin": i, "n": len(g), "mean_predicted": float(p[g].mean()), "observed_rate": float(y[g].mean())}
        for i, g in enumerate(_bins(p, bins, quantile=True))
        if len(g)
    ]
    schema = {"bin": pl.Int64, "n": pl.Int64, "mean_predicted": pl.Float64, "observed_rate": pl.Float64}
    return pl.DataFrame(rows, schema=schema)


def bootstrap_rel_error_sd(
    labels: np.ndarray, probabilities: np.ndarray, *, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0
) -> float:
    """Bootstrap (over held-out rows) standard deviation of (sum p - actual) / actual."""
    y, p = np.asarray(labels, dtype=np.float64), np.asarray(probabilities, dtype=np.float64)
    if y.sum() == 0:
        return math.nan
    rng = np.random.default_rng(seed)
    errors = []
    for _ in range(resamples):
        idx = rng.integers(0, len(y), len(y))
        actual = y[idx].sum()
        if actual:
            errors.append((p[idx].sum() - actual) / actual)
    return float(np.std(errors, ddof=1)) if len(errors) > 1 else math.nan


def _calibrate(
    booster: xgb.Booster, feature_columns: list[str], margin: np.ndarray, labels: np.ndarray
) -> tuple[GoalModel, str]:
    method, x, y, reason = fit_calibration(margin, labels)
    return GoalModel(booster, feature_columns, method, x, y), reason


def _importance(booster: xgb.Booster, feature_columns: list[str]) -> pl.DataFrame:
    gain = booster.get_score(importance_type="gain")
    total = booster.get_score(importance_type="total_gain")
    splits = booster.get_score(importance_type="weight")
    return pl.DataFrame(
        {
            "feature": feature_columns,
            "gain": [_one_score(gain.get(c, 0.0)) for c in feature_columns],
            "total_gain": [_one_score(total.get(c, 0.0)) for c in feature_columns],
            "splits": [int(_one_score(splits.get(c, 0))) for c in feature_columns],
        }
    ).sort("total_gain", descending=True)


def _one_score(value: float | list[float]) -> float:
    # xgboost gives a list per feature only for multi-output trees; a goal model has one output.
    return float(sum(value)) if isinstance(value, list) else float(value)


def _bins(p: np.ndarray, bins: int, quantile: bool) -> list[np.ndarray]:
    if quantile:
        return np.array_split(np.argsort(p, kind="stable"), bins)
    index = np.minimum((p * bins).astype(int), bins - 1)
    return [np.flatnonzero(index == b) for b in range(bins)]


def validate_frame(frame: pl.DataFrame, feature_columns: list[str]) -> None:
    missing = [c for c in (*KEY_COLUMNS, *feature_columns) if c not in frame.columns]
    if missing:
        raise ValueError(f"training frame lacks columns {missing}")
    if not feature_columns:
        raise ValueError("no feature columns given")
    forbidden = {"user_id", "anchor", "label"} & set(feature_columns)
    if forbidden:
        raise ValueError(f"{sorted(forbidden)} cannot be features")
    not_numeric = [c for c in feature_columns if not (frame.schema[c].is_numeric() or frame.schema[c] == pl.Boolean)]
    if not_numeric:
        raise ValueError(f"feature columns must be numeric or boolean: {not_numeric}")
    labels = set(frame["label"].unique().to_list())
    if not labels <= {0, 1}:
        raise ValueError(f"label must be 0/1, found {sorted(labels, key=str)}")


def _require_both_classes(frame: pl.DataFrame, what: str) -> None:
    positives = int(frame["label"].sum())
    if positives == 0 or positives == frame.height:
        raise InsufficientTrainingData(
            f"the {what} hold {frame.height} rows and {positives} achievers: both outcomes are needed"
        )


def _cpu_count() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1
