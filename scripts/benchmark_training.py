"""Benchmark: train one goal model on 500k rows x 60 features (several anchors).

Prints the wall time of ``train_goal_model`` (split, boosting with early stopping,
calibration, evaluation) and of scoring every row, next to two baselines measured in
the same run on the same training rows: one pass building XGBoost's QuantileDMatrix, and
a scikit-learn logistic regression fit (lbfgs, NaN as 0). Target (issue 4): training
within one minute on 2 cores.

    .venv/bin/python scripts/benchmark_training.py [--users 100000] [--anchors 5] [--features 60]
"""

from __future__ import annotations

import argparse
import resource
import time
from datetime import date, timedelta

import numpy as np
import polars as pl

from segment_pipeline.goals.training import feature_matrix, train_goal_model


def synthetic_training_set(users: int, anchors: int, features: int, seed: int) -> pl.DataFrame:
    """Count-, recency- and ratio-like features; a nonlinear logistic truth on a third of them."""
    rng = np.random.default_rng(seed)
    frames = []
    for a in range(anchors):
        counts = rng.poisson(rng.gamma(1.0, 3.0, (users, features // 3)))
        recency = rng.exponential(20.0, (users, features // 3))
        recency[rng.random(recency.shape) < 0.2] = np.nan  # never did it
        ratios = rng.beta(2.0, 5.0, (users, features - 2 * (features // 3)))
        x = np.hstack([counts, recency, ratios]).astype(np.float32)
        horizon = rng.choice(np.array([7, 14, 30]), users)
        logit = (
            -3.0
            + 0.25 * np.log1p(x[:, :5]).sum(axis=1)
            - 0.04 * np.nan_to_num(recency[:, :3], nan=90.0).mean(axis=1)
            + 1.5 * (ratios[:, 0] > 0.4)
            + 0.03 * horizon
        )
        label = rng.random(users) < 1 / (1 + np.exp(-logit))
        frames.append(
            pl.DataFrame(
                {
                    "user_id": [f"u{i}" for i in range(users)],
                    "anchor": date(2026, 1, 1) + timedelta(days=30 * a),
                    "horizon_days": horizon,
                    "label": label.astype(np.int64),
                    **{f"x{j:02d}": x[:, j] for j in range(features)},
                }
            )
        )
    return pl.concat(frames)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000, help="users per anchor")
    parser.add_argument("--anchors", type=int, default=5)
    parser.add_argument("--features", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import xgboost as xgb
    from sklearn.linear_model import LogisticRegression

    frame = synthetic_training_set(args.users, args.anchors, args.features, args.seed)
    features = [c for c in frame.columns if c.startswith("x")] + ["horizon_days"]
    train_rows = frame.filter(pl.col("anchor") < pl.col("anchor").max())
    print(f"{frame.height:,} rows ({args.anchors} anchors x {args.users:,} users), {len(features)} features")

    started = time.perf_counter()
    matrix = feature_matrix(train_rows, features)
    xgb.QuantileDMatrix(matrix, label=train_rows["label"].to_numpy(), nthread=2)
    dmatrix_seconds = time.perf_counter() - started

    started = time.perf_counter()
    LogisticRegression(max_iter=100).fit(np.nan_to_num(matrix), train_rows["label"].to_numpy())
    logistic_seconds = time.perf_counter() - started
    del matrix

    started = time.perf_counter()
    trained = train_goal_model(frame, features, seed=args.seed)
    train_seconds = time.perf_counter() - started

    started = time.perf_counter()
    trained.predict_proba(frame)
    score_seconds = time.perf_counter() - started

    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    m = trained.metrics
    print(
        f"train_goal_model: {train_seconds:.1f} s  (nthread {trained.params['nthread']}, "
        f"{trained.best_iteration + 1} rounds, {trained.calibration_method} calibration)"
    )
    print(f"baseline QuantileDMatrix build: {dmatrix_seconds:.2f} s  -> ratio {train_seconds / dmatrix_seconds:.1f}x")
    print(f"baseline logistic regression:   {logistic_seconds:.2f} s  -> ratio {train_seconds / logistic_seconds:.1f}x")
    print(f"scoring {frame.height:,} rows:   {score_seconds:.2f} s")
    print(f"peak RSS: {peak_gb:.2f} GB")
    print(
        f"held-out: AUC {m['auc']:.3f}, Brier {m['brier']:.4f}, ECE {m['ece']:.4f}, "
        f"sum p vs actual {m['forecast_rel_error']:+.2%} (bootstrap sd {m['forecast_rel_error_sd']:.2%})"
    )
    print("target: training within 60 s on 2 cores:", "met" if train_seconds <= 60 else "NOT met")


if __name__ == "__main__":
    main()
