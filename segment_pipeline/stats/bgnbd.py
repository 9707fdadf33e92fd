"""BG/NBD (Fader, Hardie and Lee 2005, "Counting your customers the easy way"): a small,
tested maximum-likelihood fit and the probabilities a goal needs.

Each customer is summarised by ``x`` (repeat transactions after the first), ``t_x`` (time
of the last one, from the first) and ``T`` (time from the first to the end of
observation). While alive a customer buys at rate ``lambda ~ Gamma(r, alpha)``; after
each purchase they drop out with probability ``p ~ Beta(a, b)``.

- ``log_likelihood``: FHL 2005 equation (6), closed form.
- ``expected_transactions``: E[X(t)] of a new customer, equation (7), with the Gaussian
  hypergeometric function 2F1 (``scipy.special.hyp2f1``).
- ``conditional_expected``: E[Y(t) | x, t_x, T], equation (10), with 2F1.
- ``p_purchase``: P(at least one purchase in (T, T + t] | x, t_x, T). Drop-out happens only
  right after a purchase, so an alive customer buys in the next ``t`` with probability
  ``1 - exp(-lambda t)``; integrating over the posterior gives
  ``[A(T) - A(T + t)] / [A(T) + D]`` where ``A(s) = B(a, b+x) / (alpha + s)^(r+x)`` and
  ``D = [x > 0] B(a+1, b+x-1) / (alpha + t_x)^(r+x)`` (common factors cancel).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

# Published estimates for the CDNOW sample, time in weeks (FHL 2005, section 5).
CDNOW_PARAMS = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}


@dataclass(frozen=True)
class BgNbdParams:
    r: float
    alpha: float
    a: float
    b: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def _arrays(x, t_x, T) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float64)
    t_x = np.asarray(t_x, dtype=np.float64)
    T = np.asarray(T, dtype=np.float64)
    if np.any(x < 0) or np.any(t_x < 0) or np.any(t_x - 1e-9 > T):
        raise ValueError("BG/NBD needs x >= 0 and 0 <= t_x <= T")
    return x, t_x, T


def log_likelihood(params: BgNbdParams, x, t_x, T) -> np.ndarray:
    """Each customer's log-likelihood, FHL 2005 equation (6)."""
    from scipy.special import betaln, gammaln

    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    x, t_x, T = _arrays(x, t_x, T)
    head = gammaln(r + x) - gammaln(r) + r * np.log(alpha) + betaln(a, b + x) - betaln(a, b)
    alive = -(r + x) * np.log(alpha + T)
    repeat = x > 0
    # log[(alpha+T)^-(r+x) + [x>0] a/(b+x-1) (alpha+t_x)^-(r+x)], added in log space.
    dropped = np.where(
        repeat, np.log(a) - np.log(np.maximum(b + x - 1, 1e-300)) - (r + x) * np.log(alpha + t_x), -np.inf
    )
    return head + np.logaddexp(alive, dropped)


def fit(x, t_x, T, *, weights=None, start: BgNbdParams | None = None) -> BgNbdParams:
    """Maximum-likelihood parameters (L-BFGS-B on their logs). ``weights`` count customers
    sharing one ``(x, t_x, T)``.

    The same customers in any order give the same bits: every sum is ``math.fsum`` (exactly
    rounded, so order-free). The likelihood is flat along ``a, b`` and the gradient is
    taken by finite differences, so a last-bit change of the objective moves the optimum
    by whole percents."""
    from scipy.optimize import minimize

    x, t_x, T = _arrays(x, t_x, T)
    if len(x) == 0:
        raise ValueError("BG/NBD needs at least one customer to fit")
    w = np.ones_like(x) if weights is None else np.asarray(weights, dtype=np.float64)
    total = math.fsum(w)
    first = start or BgNbdParams(1.0, max(math.fsum(w * T) / total, 1e-3), 1.0, 1.0)

    def objective(log_params: np.ndarray) -> float:
        params = BgNbdParams(*np.exp(np.clip(log_params, -20, 20)))
        terms = w * log_likelihood(params, x, t_x, T)
        if not np.all(np.isfinite(terms)):
            return 1e12
        return -math.fsum(terms) / total

    result = minimize(
        objective,
        np.log([first.r, first.alpha, first.a, first.b]),
        method="L-BFGS-B",
        bounds=[(-12, 12)] * 4,
    )
    return BgNbdParams(*(float(v) for v in np.exp(result.x)))


def expected_transactions(params: BgNbdParams, t) -> np.ndarray:
    """E[X(t)] for a customer just acquired, FHL 2005 equation (7)."""
    from scipy.special import hyp2f1

    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    t = np.asarray(t, dtype=np.float64)
    z = t / (alpha + t)
    return (a + b - 1) / (a - 1) * (1 - (alpha / (alpha + t)) ** r * hyp2f1(r, b, a + b - 1, z))


def conditional_expected(params: BgNbdParams, t, x, t_x, T) -> np.ndarray:
    """E[Y(t) | x, t_x, T]: expected purchases in (T, T + t], FHL 2005 equation (10)."""
    from scipy.special import hyp2f1

    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    x, t_x, T = _arrays(x, t_x, T)
    t = np.asarray(t, dtype=np.float64)
    z = t / (alpha + T + t)
    body = (
        (a + b + x - 1)
        / (a - 1)
        * (1 - ((alpha + T) / (alpha + T + t)) ** (r + x) * hyp2f1(r + x, b + x, a + b + x - 1, z))
    )
    return body / (1 + (x > 0) * a / np.maximum(b + x - 1, 1e-300) * ((alpha + T) / (alpha + t_x)) ** (r + x))


def p_purchase(params: BgNbdParams, t, x, t_x, T) -> np.ndarray:
    """P(at least one purchase in (T, T + t] | x, t_x, T); see the module docstring."""
    from scipy.special import betaln

    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    x, t_x, T = _arrays(x, t_x, T)
    t = np.asarray(t, dtype=np.float64)
    # Logs relative to A(T), so large x or T cannot underflow.
    log_a_later = -(r + x) * (np.log(alpha + T + t) - np.log(alpha + T))
    log_d = np.where(
        x > 0,
        betaln(a + 1, np.maximum(b + x - 1, 1e-300))
        - betaln(a, b + x)
        - (r + x) * (np.log(alpha + t_x) - np.log(alpha + T)),
        -np.inf,
    )
    return -np.expm1(log_a_later) / (1.0 + np.exp(log_d))


def simulate_customers(params: BgNbdParams, T, rng: np.random.Generator, horizon=None):
    """(repeat purchase times up to ``T + horizon`` per customer, lambda, p, death time).

    Customers buy at their rate; after each purchase they die with probability p, so the
    death time is that purchase's time."""
    T = np.asarray(T, dtype=np.float64)
    end = T if horizon is None else T + np.asarray(horizon, dtype=np.float64)
    n = len(T)
    lam = rng.gamma(params.r, 1.0 / params.alpha, n)
    p = rng.beta(params.a, params.b, n)
    times, deaths = [], np.full(n, np.inf)
    for i in range(n):
        now, bought = 0.0, []
        while True:
            now += rng.exponential(1.0 / lam[i]) if lam[i] > 0 else np.inf
            if now > end[i]:
                break
            bought.append(now)
            if rng.random() < p[i]:
                deaths[i] = now
                break
        times.append(np.array(bought))
    return times, lam, p, deaths
