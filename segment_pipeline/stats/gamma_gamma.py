"""Gamma-Gamma spend model (Fader, Hardie and Lee 2005, "RFM and CLV: Using Iso-Value
Curves for Customer Base Analysis"; Fader and Hardie, "The Gamma-Gamma Model of Monetary
Value", 2013): a small, tested maximum-likelihood fit.

A customer's transaction values are ``z ~ Gamma(p, nu)`` (shape p, rate nu) around their
own mean ``p / nu``, and ``nu ~ Gamma(q, gamma)`` across customers. Observed: ``x``
transactions with mean value ``m_x``. Since ``x m_x ~ Gamma(p x, nu)``, integrating nu out
gives the marginal density of ``m_x``

    f(m_x | p, q, gamma, x) = Gamma(px + q) / (Gamma(px) Gamma(q))
                              * gamma^q m_x^(px-1) x^(px) / (gamma + m_x x)^(px + q)

and the posterior mean of a customer's expected transaction value (FHL 2005 eq. 5)

    E[M | p, q, gamma, m_x, x] = (gamma + m_x x) p / (p x + q - 1),

a weighted mean of the population mean ``p gamma / (q - 1)`` and the customer's ``m_x``.
The model assumes spend independent of purchase frequency: that is what makes it a
baseline for the project's hurdle model, which learns spend from every feature.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

# Published estimates for the CDNOW sample (FHL 2005, section 4; Fader and Hardie 2013).
CDNOW_SPEND_PARAMS = {"p": 6.25, "q": 3.74, "gamma": 15.44}


@dataclass(frozen=True)
class GammaGammaParams:
    p: float
    q: float
    gamma: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    @property
    def population_mean(self) -> float:
        """E[M] of a new customer; infinite when q <= 1 (the mean of nu's inverse diverges)."""
        return self.p * self.gamma / (self.q - 1) if self.q > 1 else float("inf")


def _arrays(x, m_x) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float64)
    m_x = np.asarray(m_x, dtype=np.float64)
    if x.shape != m_x.shape:
        raise ValueError(f"x and m_x differ in shape: {x.shape} vs {m_x.shape}")
    if np.any(x < 1) or np.any(~np.isfinite(m_x)) or np.any(m_x <= 0):
        raise ValueError("Gamma-Gamma needs x >= 1 transactions with a positive, finite mean value m_x")
    return x, m_x


def log_likelihood(params: GammaGammaParams, x, m_x) -> np.ndarray:
    """Each customer's log-density of ``m_x`` given ``x``."""
    from scipy.special import gammaln

    p, q, g = params.p, params.q, params.gamma
    x, m_x = _arrays(x, m_x)
    px = p * x
    return (
        gammaln(px + q)
        - gammaln(px)
        - gammaln(q)
        + q * np.log(g)
        + (px - 1) * np.log(m_x)
        + px * np.log(x)
        - (px + q) * np.log(g + m_x * x)
    )


def fit(x, m_x, *, weights=None, start: GammaGammaParams | None = None) -> GammaGammaParams:
    """Maximum-likelihood parameters (L-BFGS-B on their logs) from customers with x >= 1."""
    from scipy.optimize import minimize

    x, m_x = _arrays(x, m_x)
    if len(x) == 0:
        raise ValueError("Gamma-Gamma needs at least one customer with a transaction to fit")
    w = np.ones_like(x) if weights is None else np.asarray(weights, dtype=np.float64)
    total = math.fsum(w)
    # Start at the population mean's scale: with p = 1 and q = 2, p gamma / (q - 1) = gamma.
    first = start or GammaGammaParams(1.0, 2.0, max(math.fsum(w * m_x) / total, 1e-6))

    def objective(log_params: np.ndarray) -> float:
        # math.fsum: exactly rounded, so the customers' order cannot change the fit (see bgnbd.fit).
        params = GammaGammaParams(*np.exp(np.clip(log_params, -20, 20)))
        terms = w * log_likelihood(params, x, m_x)
        if not np.all(np.isfinite(terms)):
            return 1e12
        return -math.fsum(terms) / total

    result = minimize(objective, np.log([first.p, first.q, first.gamma]), method="L-BFGS-B", bounds=[(-12, 12)] * 3)
    return GammaGammaParams(*(float(v) for v in np.exp(result.x)))


def conditional_expected_spend(params: GammaGammaParams, x, m_x) -> np.ndarray:
    """E[M | x, m_x]; customers with no transaction yet (x = 0) get the population mean."""
    p, q, g = params.p, params.q, params.gamma
    x = np.asarray(x, dtype=np.float64)
    m_x = np.nan_to_num(np.asarray(m_x, dtype=np.float64), nan=0.0)
    seen = x >= 1
    return np.where(
        seen, (g + m_x * np.where(seen, x, 0.0)) * p / (p * np.where(seen, x, 0.0) + q - 1), params.population_mean
    )


def simulate_spend(params: GammaGammaParams, counts, rng: np.random.Generator) -> tuple[list[np.ndarray], np.ndarray]:
    """(each customer's transaction values, their true expected value p / nu) for ``counts`` transactions."""
    counts = np.asarray(counts, dtype=np.int64)
    nu = rng.gamma(params.q, 1.0 / params.gamma, len(counts))
    values = [rng.gamma(params.p, 1.0 / nu[i], int(k)) for i, k in enumerate(counts)]
    return values, params.p / nu
