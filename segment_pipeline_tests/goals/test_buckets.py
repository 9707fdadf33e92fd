"""Intent buckets: ordered conversion, precision targets, assignment at the cut-offs."""

from __future__ import annotations

import numpy as np
import pytest

from segment_pipeline.goals.buckets import (
    LEAST_LIKELY,
    MODERATELY_LIKELY,
    MOST_LIKELY,
    BucketThresholds,
    assign_buckets,
    bucket_report,
    choose_thresholds,
)


def calibrated_sample(n: int = 20_000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Scores that are the true probabilities, and outcomes drawn from them."""
    rng = np.random.default_rng(seed)
    scores = rng.beta(1.2, 5.0, n)
    return scores, (rng.random(n) < scores).astype(int)


def test_default_split_is_strictly_ordered_and_separates_threefold():
    scores, labels = calibrated_sample()
    thresholds = choose_thresholds(scores, labels)
    report = bucket_report(scores, labels, thresholds)

    assert thresholds.method == "shares" and thresholds.ordered
    assert thresholds.shares == (0.20, 0.30)
    rates = [report[b]["conversion_rate"] for b in (MOST_LIKELY, MODERATELY_LIKELY, LEAST_LIKELY)]
    assert rates[0] > rates[1] > rates[2]
    assert rates[0] >= 3 * rates[2]
    assert report[MOST_LIKELY]["share"] == pytest.approx(0.20, abs=0.001)
    assert report[MODERATELY_LIKELY]["share"] == pytest.approx(0.30, abs=0.001)


def test_buckets_are_widened_when_the_default_split_is_not_ordered():
    # 1000 users by descending score; conversion per rank band is exact.
    bands = [(200, 0.5), (300, 0.6), (200, 0.1), (300, 0.1)]
    labels = np.concatenate([(np.arange(n) < round(n * rate)).astype(int) for n, rate in bands])
    scores = np.linspace(0.9, 0.01, 1000)
    thresholds = choose_thresholds(scores, labels)
    assert thresholds.ordered
    assert thresholds.shares == (0.25, 0.35)
    assert "widened" in thresholds.note


def test_no_ordering_is_reported_not_hidden():
    scores = np.linspace(0.9, 0.01, 1000)
    labels = (np.arange(1000) >= 500).astype(int)  # low scores convert: an inverted model
    thresholds = choose_thresholds(scores, labels)
    assert not thresholds.ordered
    assert "not strictly ordered" in thresholds.note
    assert thresholds.shares == (0.20, 0.30)


@pytest.mark.parametrize("level", [0.5, 0.6, 0.7])
def test_precision_level_gives_the_largest_top_set_reaching_it(level):
    scores, labels = calibrated_sample(seed=1)
    thresholds = choose_thresholds(scores, labels, precision_level=level)
    most = scores >= thresholds.most_likely_min
    assert thresholds.method == "precision" and thresholds.precision_level == level
    assert labels[most].mean() >= level
    # One more user (the next score down) would drop below the level.
    order = np.argsort(-scores)
    larger = order[: most.sum() + 1]
    assert labels[larger].mean() < level
    moderately = (scores >= thresholds.moderately_likely_min) & ~most
    assert thresholds.moderately_likely_min == pytest.approx(labels.mean())
    assert labels[most].mean() > labels[moderately].mean() > labels[~most & ~moderately].mean()
    assert thresholds.ordered


def test_an_unreachable_precision_level_leaves_most_likely_empty():
    scores, labels = calibrated_sample(n=2000, seed=2)
    thresholds = choose_thresholds(scores, labels, precision_level=0.999)
    assert MOST_LIKELY not in assign_buckets(scores, thresholds)
    assert thresholds.most_likely_min > 1.0
    assert "empty" in thresholds.note
    assert not thresholds.ordered


@pytest.mark.parametrize(
    ("score", "bucket"),
    [
        (0.9, MOST_LIKELY),
        (0.5, MOST_LIKELY),
        (0.4999, MODERATELY_LIKELY),
        (0.2, MODERATELY_LIKELY),
        (0.19, LEAST_LIKELY),
    ],
)
def test_assignment_at_the_cut_offs(score, bucket):
    thresholds = BucketThresholds(0.5, 0.2, "shares", True, "")
    assert assign_buckets(np.array([score]), thresholds) == [bucket]


def test_tied_scores_stay_in_one_bucket():
    scores = np.array([0.3] * 50 + [0.1] * 50)
    labels = np.array([1] * 20 + [0] * 30 + [1] * 5 + [0] * 45)
    thresholds = choose_thresholds(scores, labels)
    buckets = assign_buckets(scores, thresholds)
    assert len(set(buckets[:50])) == 1 and len(set(buckets[50:])) == 1
    assert not thresholds.ordered  # two distinct scores cannot fill three buckets


def test_report_adds_up():
    scores, labels = calibrated_sample(n=5000, seed=3)
    thresholds = choose_thresholds(scores, labels)
    report = bucket_report(scores, labels, thresholds)
    assert sum(r["n"] for r in report.values()) == 5000
    assert sum(r["conversions"] for r in report.values()) == labels.sum()
    assert sum(r["share"] for r in report.values()) == pytest.approx(1.0)
    weighted_lift = sum(r["lift"] * r["share"] for r in report.values())
    assert weighted_lift == pytest.approx(1.0)


def test_mismatched_inputs_are_rejected():
    with pytest.raises(ValueError, match="differ in length"):
        choose_thresholds(np.array([0.1, 0.2]), np.array([1]))
