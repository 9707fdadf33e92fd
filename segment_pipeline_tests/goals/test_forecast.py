"""Goal forecast: the 90% band covers simulated outcomes about 90% of the time."""

from __future__ import annotations

import math
from datetime import date, timedelta

import numpy as np
import pytest

from segment_pipeline.goals.forecast import forecast_curve
from segment_pipeline.goals.training import bootstrap_rel_error_sd

WINDOW = 30
DAY_WEIGHTS = 0.9 ** np.arange(WINDOW)  # achievers come early, as after a campaign launch
TIMING = np.cumsum(DAY_WEIGHTS) / DAY_WEIGHTS.sum()


def simulate_coverage(
    beta: tuple[float, float], *, users: int = 1000, holdout_users: int = 10_000, bias: float = 1.0, reps: int = 200
) -> np.ndarray:
    """Share of repetitions whose band holds the realised cumulative count, per day.

    Each repetition draws a held-out anchor (to measure the model's error of the total),
    then a target group whose achievers and achievement days are drawn from the truth.
    The model's probabilities are the truth times ``bias``.
    """
    rng = np.random.default_rng(42)
    covered = np.zeros(WINDOW)
    for rep in range(reps):
        holdout_p = rng.beta(*beta, holdout_users)
        holdout_y = rng.random(holdout_users) < holdout_p
        model_holdout = np.clip(holdout_p * bias, 0, 1)
        rel_error = (model_holdout.sum() - holdout_y.sum()) / holdout_y.sum()
        rel_error_sd = bootstrap_rel_error_sd(holdout_y, model_holdout, resamples=20, seed=rep)

        true_p = rng.beta(*beta, users)
        achieved = rng.random(users) < true_p
        days = rng.choice(WINDOW, achieved.sum(), p=DAY_WEIGHTS / DAY_WEIGHTS.sum())
        actual = np.cumsum(np.bincount(days, minlength=WINDOW))

        points = forecast_curve(
            np.clip(true_p * bias, 0, 1),
            TIMING,
            holdout_relative_error=rel_error,
            holdout_relative_error_sd=rel_error_sd,
            days=WINDOW,
        )
        low = np.array([p.predicted_low for p in points])
        high = np.array([p.predicted_high for p in points])
        covered += (low <= actual) & (actual <= high)
    return covered / reps


@pytest.mark.parametrize("beta", [(2.0, 8.0), (1.0, 40.0)], ids=["base-rate-20pct", "base-rate-2pct"])
def test_band_covers_about_90_percent_for_a_calibrated_model(beta):
    coverage = simulate_coverage(beta)
    for day in (4, 14, WINDOW - 1):
        assert 0.80 <= coverage[day] <= 0.97, (day, coverage[day])


def test_band_still_covers_when_the_model_is_off_by_15_percent():
    coverage = simulate_coverage((2.0, 8.0), bias=0.85)
    assert coverage[WINDOW - 1] >= 0.80


def test_curve_is_monotone_and_bounded():
    rng = np.random.default_rng(0)
    p = rng.beta(1.0, 9.0, 500)
    window = [date(2026, 12, 1) + timedelta(days=d) for d in range(WINDOW)]
    points = forecast_curve(p, TIMING, holdout_relative_error=0.08, days=window)

    assert [pt.day for pt in points] == window
    predicted = np.array([pt.predicted_cumulative for pt in points])
    low = np.array([pt.predicted_low for pt in points])
    high = np.array([pt.predicted_high for pt in points])
    assert np.all(np.diff(predicted) >= 0) and np.all(np.diff(low) >= 0) and np.all(np.diff(high) >= 0)
    assert np.all((low >= 0) & (low <= predicted) & (predicted <= high) & (high <= len(p)))
    assert predicted[-1] == pytest.approx(p.sum())


def forecast_total_interval(p: np.ndarray, **band) -> tuple[float, float, float]:
    """(expected, low, high) achievers by the window's end: a one-day curve."""
    last = forecast_curve(p, [1.0], days=1, **band)[-1]
    return last.predicted_cumulative, last.predicted_low, last.predicted_high


def test_total_interval_matches_the_last_day_of_the_curve():
    p = np.full(200, 0.3)
    total = forecast_total_interval(p, holdout_relative_error=-0.05, holdout_relative_error_sd=0.02)
    last = forecast_curve(p, [0.5, 1.0], holdout_relative_error=-0.05, holdout_relative_error_sd=0.02, days=2)[-1]
    assert total == pytest.approx((last.predicted_cumulative, last.predicted_low, last.predicted_high))
    # chance alone: sd = sqrt(200 * 0.3 * 0.7); model: 5.4% of 60
    expected_sd = math.sqrt(200 * 0.21 + (math.hypot(0.05, 0.02) * 60) ** 2)
    assert total[2] - total[0] == pytest.approx(1.6449 * expected_sd, rel=1e-3)


def test_band_is_clipped_to_the_group_size():
    p = np.full(10, 0.99)
    mean, low, high = forecast_total_interval(p, holdout_relative_error=0.5)
    assert high == 10 and low < mean


def test_unknown_model_error_gives_a_wide_band():
    p = np.full(1000, 0.1)
    _, _low_known, high_known = forecast_total_interval(p, holdout_relative_error=0.0)
    _, low_unknown, high_unknown = forecast_total_interval(p, holdout_relative_error=float("nan"))
    assert low_unknown == 0 and high_unknown > high_known + 50


@pytest.mark.parametrize(
    ("curve", "message"),
    [([0.2, 0.1, 1.0], "non-decreasing"), ([0.2, 0.5, 0.9], "end at 1.0"), ([], "non-empty")],
)
def test_bad_timing_curves_are_rejected(curve, message):
    with pytest.raises(ValueError, match=message):
        forecast_curve(np.array([0.5]), curve, holdout_relative_error=0.0, days=len(curve))


def test_days_must_match_the_curve():
    with pytest.raises(ValueError, match="2 days but a timing curve of 3"):
        forecast_curve(np.array([0.5]), [0.2, 0.5, 1.0], holdout_relative_error=0.0, days=2)
