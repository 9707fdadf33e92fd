"""Goal models boosted by ``xgboost.spark.SparkXGBClassifier`` when the engine is Spark.

The same booster parameters, rounds and early stopping on the tuning half as the
single-node path (``goals/training.py``); only the boosting runs in a Spark task. The
booster comes back to the driver, where calibration, metrics and MLflow logging are the
single-node code's. One worker: the training sets are at most a few hundred thousand rows
(``SEGMENT_PIPELINE_TRAINING_USERS_PER_ANCHOR``), and one partition kept in the order of
the frame lets row subsampling draw the rows the single-node booster draws.

``SparkXGBClassifier`` reads ``sparkContext`` and runs a barrier RDD stage: neither exists
under Spark Connect. There the goal model is boosted on the driver, single-node, and a
warning says so (``fit_booster`` returns None).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import xgboost as xgb

log = logging.getLogger(__name__)

LABEL, TUNING = "label", "is_tuning"
# Single-node (xgb.train) names that the Spark estimator spells as its sklearn names.
_RENAMED = {"eta": "learning_rate", "seed": "random_state"}
# Set by the estimator itself: threads from spark.task.cpus, the binary objective.
_DROPPED = {"nthread", "n_jobs"}


def is_connect(session: Any) -> bool:
    return type(session).__module__.startswith("pyspark.sql.connect")


def estimator_params(xgb_params: dict[str, Any], rounds: int, patience: int) -> dict[str, Any]:
    """``SparkXGBClassifier`` keyword arguments meaning ``xgb.train(xgb_params, ..., rounds,
    early_stopping_rounds=patience)``."""
    objective = xgb_params.get("objective", "binary:logistic")
    if objective != "binary:logistic":  # the estimator sets its own, and refuses another
        raise ValueError(f"SparkXGBClassifier boosts binary:logistic, not {objective!r}")
    params = {_RENAMED.get(k, k): v for k, v in xgb_params.items() if k not in _DROPPED | {"objective"}}
    return params | {"n_estimators": int(rounds), "early_stopping_rounds": int(patience), "num_workers": 1}


def fit_booster(
    session: Any,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_tune: np.ndarray,
    y_tune: np.ndarray,
    feature_columns: list[str],
    xgb_params: dict[str, Any],
    rounds: int,
    patience: int,
) -> xgb.Booster | None:
    """The booster ``SparkXGBClassifier`` fits on the training rows, stopping early on the
    tuning rows; None under Spark Connect (the caller boosts single-node, logged)."""
    if is_connect(session):
        log.warning(
            "SparkXGBClassifier needs a classic Spark session (it uses sparkContext and a barrier "
            "stage, which Spark Connect lacks): this goal model is boosted single-node on the driver"
        )
        return None
    import pandas as pd
    from xgboost.spark import SparkXGBClassifier

    names = [f"f{i}" for i in range(len(feature_columns))]  # Spark column names need no quoting
    frame = pd.DataFrame(np.vstack([x_train, x_tune]).astype(np.float32), columns=names)
    frame[LABEL] = np.concatenate([y_train, y_tune]).astype(np.float64)
    frame[TUNING] = np.concatenate([np.zeros(len(y_train), bool), np.ones(len(y_tune), bool)])
    # One partition in the frame's order (the estimator then does not shuffle it), checkpointed:
    # a barrier stage refuses a coalesce in its chain.
    data = session.createDataFrame(frame).coalesce(1).localCheckpoint()
    estimator = SparkXGBClassifier(
        features_col=names,
        label_col=LABEL,
        validation_indicator_col=TUNING,
        missing=np.nan,
        **estimator_params(xgb_params, rounds, patience),
    )
    # The worker gets the partition as Arrow batches (10,000 rows by default) and xgboost.spark
    # 3.2 fails on a batch without tuning rows (it looks for a "values" column): one batch.
    batch_key = "spark.sql.execution.arrow.maxRecordsPerBatch"
    batch = session.conf.get(batch_key)
    session.conf.set(batch_key, "-1")
    try:
        booster = estimator.fit(data).get_booster()
    finally:
        session.conf.set(batch_key, batch)
    booster.feature_names = list(feature_columns)
    log.info("boosted with SparkXGBClassifier: %d rows, best iteration %s", len(frame), booster.best_iteration)
    return booster
