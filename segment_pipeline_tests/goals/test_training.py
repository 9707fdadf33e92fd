"""Goal model training on synthetic training sets whose true probabilities are known."""

from __future__ import annotations

import pickle
from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import roc_auc_score

from segment_pipeline.goals import training
from segment_pipeline.goals.training import (
    InsufficientTrainingData,
    expected_calibration_error,
    train_goal_model,
    tuning_half_mask,
)

FIRST_ANCHOR = date(2026, 1, 1)


def make_goal_frame(
    n_users: int = 20_000,
    anchors: int = 4,
    *,
    n_informative: int = 6,
    n_noise: int = 6,
    seed: int = 0,
    drift: float = 0.0,
    anchor_step: int = 28,
    horizons: tuple[int, ...] = (14, 28),
    intercept: float = -2.0,
    null_share: float = 0.05,
) -> pl.DataFrame:
    """A point-in-time training set with a logistic truth, kept in ``true_p``.

    Features ``f0..`` are standard normal; the first ``n_informative`` move the log-odds
    with known weights, the rest are noise. ``drift`` shifts the log-odds of the latest
    anchor only, as a season would. A share of ``f0`` is null.
    """
    rng = np.random.default_rng(seed)
    beta = np.linspace(1.0, -0.6, n_informative)
    frames = []
    for a in range(anchors):
        x = rng.normal(size=(n_users, n_informative + n_noise))
        horizon = rng.choice(np.array(horizons), n_users)
        shift = drift if a == anchors - 1 else 0.0
        p = 1 / (1 + np.exp(-(intercept + x[:, :n_informative] @ beta + 0.03 * (horizon - 14) + shift)))
        frames.append(
            pl.DataFrame(
                {
                    "user_id": [f"u{i}" for i in range(n_users)],
                    "anchor": FIRST_ANCHOR + timedelta(days=anchor_step * a),
                    "horizon_days": horizon,
                    "label": (rng.random(n_users) < p).astype(np.int64),
                    "true_p": p,
                    **{f"f{j}": x[:, j] for j in range(x.shape[1])},
                }
            )
        )
    frame = pl.concat(frames)
    nulls = pl.Series(rng.random(frame.height) < null_share)
    return frame.with_columns(pl.when(nulls).then(None).otherwise(pl.col("f0")).alias("f0"))


def feature_columns(frame: pl.DataFrame) -> list[str]:
    return [c for c in frame.columns if c.startswith("f")] + ["horizon_days"]


@pytest.fixture(scope="module")
def drifted() -> tuple[pl.DataFrame, object]:
    """The latest anchor converts more than history: raw XGBoost under-forecasts it."""
    frame = make_goal_frame(n_users=12_000, anchors=3, drift=0.5)
    return frame, train_goal_model(frame, feature_columns(frame))


def test_calibrated_probabilities_match_the_truth_on_the_evaluation_half(drifted):
    _frame, trained = drifted
    truth = trained.evaluation_frame["true_p"].to_numpy()
    scores = trained.evaluation_scores
    metrics = trained.metrics

    assert trained.calibration_method == "isotonic"
    assert abs(scores.mean() - truth.mean()) < 0.01
    assert metrics["ece"] < 0.02
    assert abs(metrics["forecast_rel_error"]) < 0.10
    # The drift really was there, and calibration on the latest anchor removed it.
    assert metrics["forecast_rel_error_uncalibrated"] < -0.15
    assert metrics["ece"] < metrics["ece_uncalibrated"]
    best_possible_auc = roc_auc_score(trained.evaluation_labels, truth)
    assert metrics["auc"] > best_possible_auc - 0.03
    assert 0 < metrics["forecast_rel_error_sd"] < 0.1


def test_training_rows_fed_in_batches_give_the_model_of_one_batch(drifted, monkeypatch):
    """The training matrix is built batch by batch (no whole float32 copy); batches that split
    the rows, the nulls included, must give the same model as one batch."""
    frame, whole = drifted
    assert whole.metrics["n_train"] < training.TRAIN_BATCH_ROWS  # the fixture's model: one batch
    monkeypatch.setattr(training, "TRAIN_BATCH_ROWS", 1_000)
    batched = train_goal_model(frame, feature_columns(frame))
    assert batched.metrics["n_train"] > 20 * 1_000
    np.testing.assert_allclose(batched.evaluation_scores, whole.evaluation_scores, atol=1e-6)
    assert batched.model.booster.num_boosted_rounds() == whole.model.booster.num_boosted_rounds()


def test_metrics_are_complete_and_consistent(drifted):
    _frame, trained = drifted
    m = trained.metrics
    for name in ("auc", "pr_auc", "brier", "log_loss", "ece", "base_rate", "n_train", "n_holdout", "positives"):
        assert np.isfinite(m[name]), name
    assert m["positives"] == trained.evaluation_labels.sum()
    assert m["base_rate"] == pytest.approx(trained.evaluation_labels.mean())
    assert m["n_tuning"] + m["n_evaluation"] == m["n_holdout"]
    assert trained.calibration_curve["n"].sum() == m["n_evaluation"]
    assert 1 <= trained.best_iteration < 300


def test_hold_out_is_every_row_of_the_latest_anchor(drifted):
    frame, trained = drifted
    latest = frame["anchor"].max()
    assert trained.holdout_anchor == latest
    assert all(a < latest for a in trained.train_anchors)
    assert set(trained.evaluation_frame["anchor"].unique().to_list()) == {latest}
    assert trained.metrics["n_holdout"] == frame.filter(pl.col("anchor") == latest).height
    assert trained.metrics["n_train"] == frame.filter(pl.col("anchor") < latest).height


def test_split_ignores_row_order_and_keeps_users_together():
    frame = make_goal_frame(n_users=3000, anchors=3, seed=3)
    params = {"num_boost_round": 20}
    trained = train_goal_model(frame, feature_columns(frame), params=params)
    again = train_goal_model(frame.sample(fraction=1.0, shuffle=True, seed=7), feature_columns(frame), params=params)
    assert sorted(again.evaluation_frame["user_id"].to_list()) == sorted(trained.evaluation_frame["user_id"].to_list())
    users = frame.filter(pl.col("anchor") == trained.holdout_anchor)["user_id"]
    tuning = set(users.filter(tuning_half_mask(users)).to_list())
    assert tuning.isdisjoint(trained.evaluation_frame["user_id"].to_list())
    assert 0.45 < len(tuning) / users.len() < 0.55


def test_rows_whose_label_window_overlaps_the_hold_out_are_purged():
    frame = make_goal_frame(n_users=3000, anchors=6, anchor_step=7, horizons=(14,), seed=1)
    trained = train_goal_model(frame, feature_columns(frame), params={"num_boost_round": 20})
    latest = frame["anchor"].max()
    # The anchor 7 days before the hold-out still had its 14-day window open at it.
    assert max(trained.train_anchors) == latest - timedelta(days=14)
    assert trained.metrics["n_train"] == 4 * 3000
    assert any("purged 3000" in note for note in trained.notes)


def test_platt_scaling_when_positives_are_few():
    frame = make_goal_frame(n_users=4000, anchors=3, intercept=-5.0, seed=2)
    trained = train_goal_model(frame, feature_columns(frame), params={"num_boost_round": 30})
    assert trained.calibration_method == "platt"
    assert "platt" in trained.calibration_reason
    assert np.all((trained.evaluation_scores > 0) & (trained.evaluation_scores < 1))


def test_model_pickles_and_scores_polars_pandas_and_arrays_alike(drifted):
    frame, trained = drifted
    rows = frame.head(500)
    restored = pickle.loads(pickle.dumps(trained.model))
    expected = trained.predict_proba(rows)
    np.testing.assert_allclose(restored.predict_proba(rows), expected)
    np.testing.assert_allclose(restored.predict_proba(rows.to_pandas()), expected)
    matrix = rows.select(trained.feature_columns).to_numpy()
    np.testing.assert_allclose(restored.predict_proba(matrix), expected)
    assert np.all((expected >= 0) & (expected <= 1))


def test_feature_importance_ranks_signal_above_noise(drifted):
    _, trained = drifted
    importance = trained.feature_importance
    assert set(importance["feature"]) == set(trained.feature_columns)
    gain = dict(zip(importance["feature"], importance["total_gain"], strict=True))
    assert gain["f0"] > 3 * max(gain[f"f{j}"] for j in range(6, 12))


def test_a_single_anchor_is_insufficient_history():
    frame = make_goal_frame(n_users=500, anchors=1)
    with pytest.raises(InsufficientTrainingData, match="at least 2 anchors"):
        train_goal_model(frame, feature_columns(frame))


def test_a_hold_out_without_achievers_is_insufficient():
    frame = make_goal_frame(n_users=500, anchors=2)
    frame = frame.with_columns(
        pl.when(pl.col("anchor") == pl.col("anchor").max()).then(0).otherwise(pl.col("label")).alias("label")
    )
    with pytest.raises(InsufficientTrainingData, match="tuning half"):
        train_goal_model(frame, feature_columns(frame))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.drop("anchor"), "lacks columns"),
        (lambda f: f.with_columns(pl.col("f1").cast(pl.String)), "numeric"),
        (lambda f: f.with_columns(pl.lit(2).alias("label")), "0/1"),
    ],
)
def test_bad_frames_are_rejected_with_a_reason(change, message):
    frame = make_goal_frame(n_users=200, anchors=2)
    with pytest.raises(ValueError, match=message):
        train_goal_model(change(frame), feature_columns(frame))


@pytest.mark.parametrize(
    ("labels", "probabilities", "expected"),
    [
        ([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5], 0.0),
        ([0, 0, 0, 0], [0.25, 0.25, 0.25, 0.25], 0.25),
        ([0, 1], [0.05, 0.95], 0.05),
    ],
)
def test_expected_calibration_error(labels, probabilities, expected):
    assert expected_calibration_error(np.array(labels), np.array(probabilities)) == pytest.approx(expected)
