"""BG/NBD: the fit recovers known parameters; the probabilities match a simulation of the process."""

from __future__ import annotations

import numpy as np
import pytest

from segment_pipeline.stats import bgnbd
from segment_pipeline.stats.bgnbd import CDNOW_PARAMS, BgNbdParams

CDNOW = BgNbdParams(**CDNOW_PARAMS)


def _summaries(times: list[np.ndarray], T: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.array([int((t <= end).sum()) for t, end in zip(times, T, strict=True)], dtype=float)
    t_x = np.array([float(t[t <= end].max()) if (t <= end).any() else 0.0 for t, end in zip(times, T, strict=True)])
    return x, t_x


def test_the_fit_recovers_the_published_cdnow_estimates_from_simulated_data():
    rng = np.random.default_rng(7)
    T = rng.uniform(27, 39, 20_000)  # weeks; CDNOW customers were acquired over the first 12 weeks of 39
    times, *_ = bgnbd.simulate_customers(CDNOW, T, rng)
    x, t_x = _summaries(times, T)
    fitted = bgnbd.fit(x, t_x, T)
    assert fitted.r == pytest.approx(CDNOW.r, rel=0.12)
    assert fitted.alpha == pytest.approx(CDNOW.alpha, rel=0.15)
    assert fitted.a == pytest.approx(CDNOW.a, rel=0.35)
    assert fitted.b == pytest.approx(CDNOW.b, rel=0.45)
    # The maximum beats the truth on its own data, and the truth beats a far-off guess.
    ll = lambda p: bgnbd.log_likelihood(p, x, t_x, T).sum()  # noqa: E731
    assert ll(fitted) >= ll(CDNOW) > ll(BgNbdParams(1.0, 1.0, 1.0, 1.0))


def test_log_likelihood_matches_the_papers_cdnow_value():
    """FHL 2005 report LL = -9582.4 for CDNOW; one customer's term is checked by hand instead:
    x=0, T=10 reduces to Gamma(r) cancelling and (alpha/(alpha+T))^r."""
    value = bgnbd.log_likelihood(CDNOW, [0], [0], [10.0])[0]
    assert value == pytest.approx(CDNOW.r * np.log(CDNOW.alpha / (CDNOW.alpha + 10.0)))


def test_expected_transactions_matches_a_simulation():
    rng = np.random.default_rng(3)
    horizon = 39.0
    times, *_ = bgnbd.simulate_customers(CDNOW, np.full(40_000, horizon), rng)
    observed = np.mean([len(t) for t in times])
    assert bgnbd.expected_transactions(CDNOW, horizon) == pytest.approx(observed, rel=0.05)


def test_conditional_purchase_probability_matches_a_simulation():
    """P(a purchase in the next 8 weeks | history) against the simulated future of the same customers."""
    rng = np.random.default_rng(11)
    T = rng.uniform(27, 39, 60_000)
    times, *_ = bgnbd.simulate_customers(CDNOW, T, rng, horizon=8.0)
    x, t_x = _summaries(times, T)
    bought = np.array([((t > end) & (t <= end + 8.0)).any() for t, end in zip(times, T, strict=True)])
    p = bgnbd.p_purchase(CDNOW, 8.0, x, t_x, T)
    assert p.sum() == pytest.approx(bought.sum(), rel=0.05)
    for group in (x == 0, (x >= 1) & (x <= 2), x >= 3):
        assert p[group].mean() == pytest.approx(bought[group].mean(), abs=0.02)
    expected = bgnbd.conditional_expected(CDNOW, 8.0, x, t_x, T)
    future = np.array([((t > end) & (t <= end + 8.0)).sum() for t, end in zip(times, T, strict=True)])
    assert expected.sum() == pytest.approx(future.sum(), rel=0.06)
    assert np.all(p <= expected + 1e-12)  # P(N > 0) <= E[N]


def test_bad_summaries_are_refused():
    with pytest.raises(ValueError, match="t_x <= T"):
        bgnbd.log_likelihood(CDNOW, [1], [5.0], [3.0])


def test_the_fit_gives_the_same_bits_for_the_same_customers_in_any_order():
    """Callers pass polars ``group_by`` output, whose row order changes from run to run; the
    likelihood is flat along (a, b), so a last-bit change of the objective once moved them by 100x."""
    rng = np.random.default_rng(5)
    T = rng.uniform(27, 39, 3_000)
    times, *_ = bgnbd.simulate_customers(CDNOW, T, rng)
    x, t_x = _summaries(times, T)
    fitted = bgnbd.fit(x, t_x, T)
    for _ in range(3):
        order = rng.permutation(len(x))
        assert bgnbd.fit(x[order], t_x[order], T[order]) == fitted
