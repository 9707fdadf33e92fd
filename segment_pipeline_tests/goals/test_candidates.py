"""XGBoost against the classic baselines on one time split; the champion rule; buckets that always mean something."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest

from segment_pipeline.goals.buckets import BUCKETS, BucketThresholds, assign_buckets, choose_thresholds
from segment_pipeline.goals.candidates import choose_best, model_kind, train_candidates
from segment_pipeline.goals.model_quality import hanley_mcneil_interval, night_quality
from segment_pipeline.goals.training import time_split
from segment_pipeline.stats import bgnbd
from segment_pipeline.stats.bgnbd import CDNOW_PARAMS, BgNbdParams

FEATURES = [
    "horizon_days",
    "bgnbd_x",
    "bgnbd_t_x",
    "bgnbd_T",
    "life_days_since_last_event",
    "life_active_days",
    "tenure_days",
    "goal_life_days",
    "goal_days_since_last_life",
    "goal_days_since_first",
    "noise",
]


def bgnbd_frame(users: int = 4000, anchors: int = 4, window_weeks: float = 4.0, seed: int = 5) -> pl.DataFrame:
    """Samples of simulated BG/NBD customers at anchors 4 weeks apart: the lifetime features a
    goal builds, and the label 'a purchase in the next 4 weeks'."""
    rng = np.random.default_rng(seed)
    born = rng.uniform(0, 12, users)
    first_anchor = 30.0
    end = first_anchor + anchors * window_weeks + window_weeks
    times, *_ = bgnbd.simulate_customers(BgNbdParams(**CDNOW_PARAMS), end - born, rng)
    frames = []
    for k in range(anchors):
        tau = first_anchor + k * window_weeks
        x, t_x, label = np.zeros(users), np.zeros(users), np.zeros(users, dtype=np.int64)
        for i, t in enumerate(times):
            since = tau - born[i]
            before = t[t < since]
            x[i], t_x[i] = len(before), before.max() if len(before) else 0.0
            label[i] = int(((t >= since) & (t < since + window_weeks)).any())
        T = (tau - born) * 7
        frames.append(
            pl.DataFrame(
                {
                    "user_id": [f"u{i}" for i in range(users)],
                    "anchor": date(2026, 1, 5) + timedelta(weeks=tau),
                    "horizon_days": 28.0,
                    "label": label,
                    "bgnbd_x": x,
                    "bgnbd_t_x": t_x * 7,
                    "bgnbd_T": T,
                    "life_days_since_last_event": T - t_x * 7,
                    "life_active_days": x + 1,
                    "tenure_days": T,
                    "goal_life_days": x + 1,
                    "goal_days_since_last_life": T - t_x * 7,
                    "goal_days_since_first": T,
                    "noise": rng.normal(size=users),
                }
            )
        )
    return pl.concat(frames)


@pytest.fixture(scope="module")
def frame() -> pl.DataFrame:
    return bgnbd_frame()


def test_every_candidate_is_judged_on_the_same_held_out_rows(frame):
    candidates = train_candidates(frame, FEATURES)
    assert [model_kind(c.model) for c in candidates] == ["xgboost", "logistic", "bgnbd"]
    evaluated = [c.evaluation_frame.select("user_id", "anchor", "label") for c in candidates]
    assert all(e.equals(evaluated[0]) for e in evaluated)
    tuning = time_split(frame)[2]
    for c in candidates:
        assert c.metrics["auc"] > 0.7
        # Calibrated on the tuning half: its total is reproduced, whatever the kind.
        assert c.model.predict_proba(tuning).sum() == pytest.approx(tuning["label"].sum(), rel=0.02)
        scores = c.model.predict_proba(c.evaluation_frame)  # every kind scores a frame the same way
        np.testing.assert_allclose(scores, c.evaluation_scores)
    best, why = choose_best(candidates)
    assert why.startswith(f"{model_kind(best.model)} won on the held-out rows")
    assert best.metrics["auc"] == max(c.metrics["auc"] for c in candidates)


def test_a_baseline_wins_when_xgboost_is_crippled(frame):
    crippled = {"max_depth": 1, "num_boost_round": 1, "eta": 0.01}
    candidates = train_candidates(frame, FEATURES, xgb_params=crippled)
    by_kind = {model_kind(c.model): c for c in candidates}
    assert by_kind["xgboost"].metrics["auc"] < by_kind["bgnbd"].metrics["auc"] - 0.02
    best, why = choose_best(candidates)
    assert model_kind(best.model) in ("logistic", "bgnbd")
    assert "xgboost AUC" in why


def test_the_best_auc_loses_when_its_brier_is_clearly_worse(frame):
    candidates = train_candidates(frame, FEATURES, kinds=("logistic", "bgnbd"))
    top = max(candidates, key=lambda c: c.metrics["auc"])
    other = next(c for c in candidates if c is not top)
    top.metrics["brier"] = other.metrics["brier"] * 1.5
    best, why = choose_best(candidates)
    assert best is other and "Brier >10% worse" in why


def test_ties_are_broken_by_user_and_every_bucket_is_filled():
    scores = np.array([0.05] * 97 + [0.3, 0.3, 0.3])  # sparse data: most users tie
    users = [f"u{i}" for i in range(100)]
    shares = BucketThresholds(0.3, 0.05, "shares", True, "", shares=(0.2, 0.3))
    got = assign_buckets(scores, shares, users)
    assert [got.count(b) for b in BUCKETS] == [20, 30, 50]
    assert all(got[i] == "most_likely" for i in (97, 98, 99))  # the higher scores always rank first
    # Stable: the same users win the tie whatever the order they come in.
    order = np.random.default_rng(0).permutation(100)
    again = assign_buckets(scores[order], shares, [users[i] for i in order])
    assert {users[i]: b for i, b in zip(order, again, strict=True)} == dict(zip(users, got, strict=True))
    # A precision cut-off nobody reaches still leaves three non-empty buckets for 3+ users.
    precision = BucketThresholds(2.0, 2.0, "precision", False, "", precision_level=0.9)
    assert set(assign_buckets(np.array([0.1, 0.1, 0.1]), precision, ["a", "b", "c"])) == set(BUCKETS)


def test_chosen_shares_are_judged_by_rank():
    rng = np.random.default_rng(1)
    scores = np.round(rng.uniform(size=2000), 1)  # 11 distinct values: many ties
    labels = (rng.uniform(size=2000) < scores).astype(int)
    users = [f"u{i}" for i in range(2000)]
    thresholds = choose_thresholds(scores, labels, user_ids=users)
    got = assign_buckets(scores, thresholds, users)
    assert thresholds.ordered and [got.count(b) for b in BUCKETS] == [400, 600, 1000]


def test_hanley_mcneil_interval_matches_the_worked_value():
    # AUC 0.8, 50 positives, 50 negatives: Q1 = 0.8/1.2 = 0.66667, Q2 = 2(0.64)/1.8 = 0.71111,
    # SE^2 = (0.16 + 49(0.02667) + 49(0.07111)) / 2500 = 0.0019804, SE = 0.044502.
    low, high = hanley_mcneil_interval(0.8, 50, 50)
    assert (low, high) == pytest.approx((0.8 - 1.959964 * 0.044502, 0.8 + 1.959964 * 0.044502), abs=1e-5)
    assert hanley_mcneil_interval(0.99, 5, 5)[1] == 1.0  # clipped
    assert all(np.isnan(hanley_mcneil_interval(0.7, 0, 10)))


def test_night_quality_figures():
    scores = np.array([0.9, 0.8, 0.3, 0.2, 0.1])
    labels = np.array([1, 0, 1, 0, 0])
    got = night_quality(
        scores, labels, ["most_likely", "most_likely", "moderately_likely", "least_likely", "least_likely"]
    )
    assert got["users"] == 5 and got["achievers"] == 2 and got["predicted_achievers"] == pytest.approx(2.3)
    assert got["auc"] == pytest.approx(5 / 6)
    assert got["brier"] == pytest.approx((0.01 + 0.64 + 0.49 + 0.04 + 0.01) / 5)
    assert got["top_bucket_lift"] == pytest.approx(0.5 / 0.4)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["bgnbd", "logistic"])
def test_a_baseline_champion_is_stored_in_mlflow_and_scores_the_same_after_loading(frame, tmp_path, kind):
    from segment_pipeline.goals.tracking import load_champion, log_goal_model

    candidates = train_candidates(frame, FEATURES, kinds=(kind,))
    trained = candidates[0]
    users = trained.evaluation_frame["user_id"]
    thresholds = choose_thresholds(trained.evaluation_scores, trained.evaluation_labels, user_ids=users)
    uri = (tmp_path / "mlruns").as_uri()
    record = log_goal_model(uri, "baseline goal", trained, thresholds, {}, candidates=candidates, selection=kind)
    champion = load_champion(uri, "baseline goal")
    assert record.promoted and champion.kind == kind and champion.run_id == record.run_id
    np.testing.assert_allclose(champion.predict_proba(trained.evaluation_frame), trained.evaluation_scores)
