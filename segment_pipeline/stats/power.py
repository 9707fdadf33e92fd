"""Minimum detectable effect of a two-arm comparison of rates.

The MDE is the smallest absolute change of the rate that a two-sided test at ``alpha``
detects with probability ``power``, given the arm sizes and the control's base rate. It
solves the normal-approximation sample-size equation of Fleiss, Levin & Paik (2003,
*Statistical Methods for Rates and Proportions*, eq. 4.14, unequal arms) for the effect:

    delta = z(1 - alpha/2) * sd_null(delta) + z(power) * sd_alt(delta)

with ``sd_null`` the pooled-rate standard error of the difference (the z-test's null) and
``sd_alt`` the unpooled one at ``p_control`` and ``p_control + delta``. The far tail of the
two-sided test is ignored, as in that formula and in statsmodels'
``samplesize_proportions_2indep_onetail``, which this inverts.

The change is an increase for ``maximize`` goals and a decrease for ``minimize`` goals,
so a base rate near 0 or 1 limits the room an effect has; ``None`` means that no change
within that room reaches the power (or an arm is empty).
"""

from __future__ import annotations

import math

# The first sign change of the power equation is found on this grid, then refined.
_GRID_POINTS = 2048


def minimum_detectable_effect(
    n_test: float,
    n_control: float,
    base_rate: float | None,
    alpha: float = 0.05,
    power: float = 0.8,
    *,
    objective: str = "maximize",
) -> float | None:
    """Smallest absolute rate change (a fraction, not points) detectable at ``alpha``/``power``."""
    from scipy.optimize import brentq
    from scipy.stats import norm

    if objective not in ("maximize", "minimize"):
        raise ValueError(f"objective must be 'maximize' or 'minimize', not {objective!r}")
    if not (0 < alpha < 1 and 0 < power < 1):
        raise ValueError("alpha and power must lie strictly between 0 and 1")
    if base_rate is None or n_test <= 0 or n_control <= 0:
        return None
    if not 0 <= base_rate <= 1:
        raise ValueError(f"base_rate must lie in [0, 1], not {base_rate}")
    # A decrease from p is an increase from 1 - p: both standard errors are symmetric.
    p = base_rate if objective == "maximize" else 1.0 - base_rate
    room = 1.0 - p
    if room <= 0:
        return None
    z_alpha = float(norm.isf(alpha / 2))
    z_power = float(norm.ppf(power))

    def excess(delta: float) -> float:
        # > 0 once the effect is larger than what the test needs to see it with that power.
        p_test = p + delta
        pooled = (n_test * p_test + n_control * p) / (n_test + n_control)
        sd_null = math.sqrt(pooled * (1 - pooled) * (1 / n_test + 1 / n_control))
        sd_alt = math.sqrt(p_test * (1 - p_test) / n_test + p * (1 - p) / n_control)
        return delta - z_alpha * sd_null - z_power * sd_alt

    # Not 0 itself: at a base rate of 0 both standard errors vanish there.
    previous = room * 1e-12
    for i in range(1, _GRID_POINTS + 1):
        delta = room * i / _GRID_POINTS
        if excess(delta) >= 0:
            # scipy's stubs: without full_output, brentq returns the root alone (a float).
            return float(brentq(excess, previous, delta, xtol=1e-12))  # pyright: ignore[reportArgumentType]
        previous = delta
    return None
