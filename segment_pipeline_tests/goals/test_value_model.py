"""Value goals' statistics and models: Gamma-Gamma, Welch value uplift, tiers, ranking errors."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from scipy import stats as scipy_stats

from segment_pipeline.goals.buckets import HIGH, LOW, MEDIUM, value_tiers
from segment_pipeline.goals.feature_spec import BGNBD_T, BGNBD_T_X, BGNBD_X
from segment_pipeline.goals.value_model import (
    BGNBD_UNIT_DAYS,
    fit_bgnbd_gamma_gamma,
    value_feature_names,
    value_forecast,
)
from segment_pipeline.stats import bgnbd, gamma_gamma
from segment_pipeline.stats.value import value_errors, value_gini, value_uplift, welch_interval


def test_gamma_gamma_recovers_the_cdnow_spend_parameters():
    truth = gamma_gamma.GammaGammaParams(**gamma_gamma.CDNOW_SPEND_PARAMS)
    rng = np.random.default_rng(1)
    counts = rng.integers(1, 8, 20_000)
    values, _ = gamma_gamma.simulate_spend(truth, counts, rng)
    m_x = np.array([v.mean() for v in values])
    fitted = gamma_gamma.fit(counts, m_x)
    assert fitted.p == pytest.approx(truth.p, rel=0.10)
    assert fitted.q == pytest.approx(truth.q, rel=0.10)
    assert fitted.gamma == pytest.approx(truth.gamma, rel=0.10)
    # p and gamma trade off (seed 7 gives p 7.08, gamma 13.37); the population mean they make is sharp.
    assert fitted.population_mean == pytest.approx(truth.population_mean, rel=0.02)
    # The fit is a maximum: the truth is not more likely than the estimate.
    assert gamma_gamma.log_likelihood(fitted, counts, m_x).sum() >= gamma_gamma.log_likelihood(truth, counts, m_x).sum()


def test_gamma_gamma_conditional_spend_is_the_published_weighted_mean():
    params = gamma_gamma.GammaGammaParams(6.25, 3.74, 15.44)
    population = params.p * params.gamma / (params.q - 1)
    x, m_x = np.array([1.0, 10.0]), np.array([20.0, 50.0])
    weight = params.p * x / (params.p * x + params.q - 1)
    expected = (1 - weight) * population + weight * m_x
    assert gamma_gamma.conditional_expected_spend(params, x, m_x) == pytest.approx(expected)
    assert gamma_gamma.conditional_expected_spend(params, [0.0], [np.nan])[0] == pytest.approx(population)
    with pytest.raises(ValueError, match="x >= 1"):
        gamma_gamma.log_likelihood(params, [0.0], [1.0])


def test_welch_interval_matches_scipy():
    rng = np.random.default_rng(3)
    # Heavy-tailed spend with many zeros, unequal arms and variances.
    test = np.where(rng.random(900) < 0.3, rng.lognormal(3.0, 1.2, 900), 0.0)
    control = np.where(rng.random(110) < 0.2, rng.lognormal(3.0, 1.0, 110), 0.0)
    diff, low, high = welch_interval(test, control)
    reference = scipy_stats.ttest_ind(test, control, equal_var=False).confidence_interval(0.95)
    assert diff == pytest.approx(test.mean() - control.mean())
    assert (low, high) == pytest.approx((reference.low, reference.high), rel=1e-9)
    result = value_uplift(test, control)
    assert result.value_uplift == pytest.approx(diff)
    assert result.test_value_per_user == pytest.approx(test.mean())
    assert result.value_ci_low == pytest.approx(reference.low)


def test_value_uplift_is_undefined_without_two_users_per_arm():
    result = value_uplift(np.array([1.0, 2.0]), np.array([3.0]))
    assert result.value_uplift == pytest.approx(-1.5)
    assert result.value_ci_low is None and result.value_ci_high is None
    empty = value_uplift(np.array([1.0, 2.0]), np.array([]))
    assert empty.control_value_per_user is None and empty.value_uplift is None


def test_value_tiers_take_20_30_50_percent_and_break_ties_stably():
    users = [f"u{i}" for i in range(10)]
    tied = np.zeros(10)  # everyone alike: the hash alone decides, the shares still hold
    tiers = value_tiers(tied, users)
    assert [tiers.count(t) for t in (HIGH, MEDIUM, LOW)] == [2, 3, 5]
    assert value_tiers(tied, users) == tiers  # stable
    assert value_tiers(tied[::-1], users[::-1]) == tiers[::-1]  # independent of row order
    ranked = value_tiers(np.arange(10.0), users)
    assert ranked[9] == HIGH and ranked[8] == HIGH and ranked[7] == MEDIUM and ranked[0] == LOW
    # Ties across a cut: two users at the cut-off split between tiers, by hash.
    partly = value_tiers(np.array([5, 5, 5, 1, 1, 1, 1, 1, 1, 1.0]), users)
    assert [partly.count(t) for t in (HIGH, MEDIUM, LOW)] == [2, 3, 5]
    assert sorted(partly[:3]) == [HIGH, HIGH, MEDIUM]


def test_value_errors_and_gini():
    actual = np.array([0.0, 0.0, 10.0, 30.0, 60.0])
    perfect = value_errors(actual, actual)
    assert perfect["value_mae"] == 0 and perfect["value_total_rel_error"] == 0
    assert perfect["value_spearman"] == pytest.approx(1.0) and perfect["value_gini"] == pytest.approx(1.0)
    assert value_gini(np.ones(5), actual) == pytest.approx(0.0)
    assert value_gini(-actual, actual) < 0
    assert math.isnan(value_errors(np.ones(5), actual)["value_spearman"])


def test_value_forecast_band_contains_the_mean_and_grows():
    predicted, p = np.full(1000, 5.0), np.full(1000, 0.25)
    curve = np.linspace(0.1, 1.0, 10)
    mean, low, high = value_forecast(predicted, p, curve, rel_error=0.05, spend_cv=0.8)
    assert mean[-1] == pytest.approx(5000.0)
    assert np.all(low <= mean) and np.all(mean <= high)
    assert np.all(np.diff(high) >= 0) and np.all(np.diff(low) >= 0)
    wider = value_forecast(predicted, p, curve, rel_error=0.3, spend_cv=0.8)
    assert wider[2][-1] > high[-1]


def test_the_value_kind_with_the_lower_held_out_squared_error_is_champion():
    from types import SimpleNamespace

    from segment_pipeline.goals.value_model import TrainedValueModel, choose_value_champion

    rng = np.random.default_rng(5)
    base = rng.exponential(10.0, 2000)
    metrics = {
        "value_mae": 1.0,
        "value_rmse": 1.0,
        "value_total_rel_error": 0.0,
        "value_spearman": 0.5,
        "value_gini": 0.5,
    }

    def candidate(kind, errors):
        return TrainedValueModel(SimpleNamespace(kind=kind), metrics, 1.0, errors)

    classic = candidate("bgnbd_gamma_gamma", base)
    worse, better = candidate("hurdle", base * 1.1), candidate("hurdle", base * 0.9)
    assert choose_value_champion([worse, classic])[0] is classic
    best, why = choose_value_champion([better, classic])
    assert best is better and "paired SE" in why and "RMSE" in why
    assert choose_value_champion([candidate("hurdle", base), classic])[0].model.kind == "hurdle"  # a tie
    assert choose_value_champion([worse])[0] is worse  # the only kind trained


def test_the_classic_value_model_predicts_the_same_bits_from_the_same_users_in_any_order():
    """Two fits of BG/NBD x Gamma-Gamma on the same hold-out rows, shuffled: bit-identical
    parameters and predictions (the nightly job's row order is not fixed)."""
    rng = np.random.default_rng(2)
    n = 4_000
    T = rng.uniform(60, 200, n)
    times, *_ = bgnbd.simulate_customers(bgnbd.BgNbdParams(**bgnbd.CDNOW_PARAMS), T / BGNBD_UNIT_DAYS, rng)
    x = np.array([len(t) for t in times], dtype=np.int64)
    t_x = np.array([float(t.max()) * BGNBD_UNIT_DAYS if len(t) else 0.0 for t in times]).round()
    values, _ = gamma_gamma.simulate_spend(gamma_gamma.GammaGammaParams(**gamma_gamma.CDNOW_SPEND_PARAMS), x + 1, rng)
    total = value_feature_names("amount")[0]
    holdout = pl.DataFrame(
        {
            "user_id": [f"u{i}" for i in range(n)],
            BGNBD_X: x,
            BGNBD_T_X: t_x,
            BGNBD_T: T.round(),
            "goal_life_days": x + 1,
            total: [float(v.sum()) for v in values],
            "horizon_days": np.full(n, 14),
        }
    )
    fitted = fit_bgnbd_gamma_gamma(holdout, "amount")
    predicted = fitted.predict_value(holdout)
    for seed in range(3):
        again = fit_bgnbd_gamma_gamma(holdout.sample(fraction=1.0, shuffle=True, seed=seed), "amount")
        assert (again.bgnbd_params, again.spend_params) == (fitted.bgnbd_params, fitted.spend_params)
        assert again.predict_value(holdout).tolist() == predicted.tolist()
