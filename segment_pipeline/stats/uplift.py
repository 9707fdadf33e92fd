"""Test-vs-control uplift of a goal: rates, a 95% interval, a p-value, SRM and power.

Methods, chosen because a 5% control is small and achievers can be few or none:

- Interval for ``test_rate - control_rate``: Newcombe's hybrid score interval (method 10
  of Newcombe 1998, *Statistics in Medicine* 17:873-890), built from the two Wilson score
  intervals. It stays inside [-1, 1] and keeps close to nominal coverage with small counts
  and zero events, where the Wald interval collapses to a point. ``wald_interval`` is kept
  for comparison only.
- p-value (two-sided, H0: equal rates): the pooled two-proportion z-test (the same as
  Pearson's chi-square without continuity correction) when every expected cell of the
  2x2 table is at least 5 (Cochran's rule); otherwise Fisher's exact test (scipy's
  two-sided: tables no more likely than the observed one). The decision uses the
  interval, so with very few users the two can disagree near the 5% line.
- Sample-ratio mismatch: a chi-square goodness-of-fit test (1 df) of the arm sizes
  against the declared control percent; the exact binomial test when an expected arm
  size is below 5. A p-value below ``SRM_ALARM`` (0.001, Fabijan et al. 2019, KDD,
  "Diagnosing Sample Ratio Mismatch") means the split is broken and the comparison is
  not trusted: ``improvement`` is then ``None``.
- Power: ``detectable`` is True when the comparison has 80% power (alpha 0.05, see
  ``power.py``) for a plausible campaign effect, ``max_plausible_uplift`` (5 points by
  default), or for the effect it observed: the minimum detectable effect (MDE) is at most
  the larger of the two. The first clause depends only on the arm sizes and the control's
  rate. The second lets a very strong result from a small arm count: it needs |z| of about
  2.8 (p below about 0.005) instead of 1.96, so that a significant estimate from an
  underpowered comparison, which mostly overstates the effect (Gelman & Carlin 2014,
  type M error), is not reported as an improvement. Without detectability a non-significant
  result is "no conclusion", not "no effect" (absence of evidence), and ``improvement`` is
  ``None``.

Each night's row is a monitor, not a stopping rule: reading it every day and stopping at
the first significant night inflates false positives. The verdict to act on is the one
at the end of the goal window.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from segment_pipeline.stats.power import minimum_detectable_effect

MAXIMIZE = "maximize"
MINIMIZE = "minimize"
OBJECTIVES = (MAXIMIZE, MINIMIZE)

NEWCOMBE = "newcombe-wilson"
Z_TEST = "pooled z-test"
FISHER = "fisher exact"
SRM_CHI_SQUARE = "chi-square SRM"
SRM_BINOMIAL = "exact binomial SRM"

# Below this expected count the normal approximations are poor (Cochran 1954).
MIN_EXPECTED_COUNT = 5
SRM_ALARM = 0.001
DEFAULT_POWER = 0.8
MAX_PLAUSIBLE_UPLIFT = 0.05

# The goal_uplift columns (contract section 7) that a result fills.
TABLE_COLUMNS = (
    "test_users",
    "test_achievers",
    "control_users",
    "control_achievers",
    "test_rate",
    "control_rate",
    "abs_uplift",
    "rel_uplift",
    "ci_low",
    "ci_high",
    "p_value",
    "srm_p_value",
)


@dataclass(frozen=True)
class UpliftResult:
    test_users: int
    test_achievers: int
    control_users: int
    control_achievers: int
    test_rate: float | None  # None when the arm is empty
    control_rate: float | None
    abs_uplift: float | None  # test_rate - control_rate
    rel_uplift: float | None  # abs_uplift / control_rate; None when control_rate is 0
    ci_low: float | None  # (1 - alpha) interval for abs_uplift
    ci_high: float | None
    p_value: float | None  # two-sided, H0: equal rates
    srm_p_value: float | None  # arm sizes vs the declared split
    method: str  # the interval, p-value and SRM methods used, comma-separated
    mde: float | None  # smallest absolute change detectable at alpha and 80% power
    detectable: bool  # mde is defined and at most max(plausible uplift, |abs_uplift|)
    improvement: bool | None  # None when not detectable, undefined or the split is broken
    verdict: str

    def table_row(self) -> dict[str, int | float | None]:
        """The values of the ``goal_uplift`` columns this result fills."""
        values = asdict(self)
        return {column: values[column] for column in TABLE_COLUMNS}


def wilson_interval(x: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """Wilson score interval for a single proportion x / n (Wilson 1927)."""
    from scipy.stats import norm

    _check_counts(x, n)
    z = float(norm.isf(alpha / 2))
    p = x / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe_interval(x1: int, n1: int, x2: int, n2: int, alpha: float = 0.05) -> tuple[float, float]:
    """Newcombe's hybrid score interval (method 10) for p1 - p2, with p1 = x1/n1, p2 = x2/n2."""
    l1, u1 = wilson_interval(x1, n1, alpha)
    l2, u2 = wilson_interval(x2, n2, alpha)
    p1, p2 = x1 / n1, x2 / n2
    difference = p1 - p2
    low = difference - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = difference + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return max(-1.0, low), min(1.0, high)


def wald_interval(x1: int, n1: int, x2: int, n2: int, alpha: float = 0.05) -> tuple[float, float]:
    """The textbook Wald interval for p1 - p2, unclipped; for comparison only."""
    from scipy.stats import norm

    _check_counts(x1, n1)
    _check_counts(x2, n2)
    p1, p2 = x1 / n1, x2 / n2
    half = float(norm.isf(alpha / 2)) * math.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
    return p1 - p2 - half, p1 - p2 + half


def pooled_z_test(x1: int, n1: int, x2: int, n2: int) -> float:
    """Two-sided p-value of the pooled two-proportion z-test of p1 = p2."""
    from scipy.stats import norm

    _check_counts(x1, n1)
    _check_counts(x2, n2)
    pooled = (x1 + x2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:  # no achiever or nobody else in either arm: the rates are equal
        return 1.0
    return float(2 * norm.sf(abs(x1 / n1 - x2 / n2) / se))


def difference_p_value(x1: int, n1: int, x2: int, n2: int) -> tuple[float, str]:
    """p-value of p1 = p2 and its method: the z-test, or Fisher's when a cell is expected below 5."""
    from scipy.stats import fisher_exact

    achievers, total = x1 + x2, n1 + n2
    expected = [n * share for n in (n1, n2) for share in (achievers / total, 1 - achievers / total)]
    if min(expected) < MIN_EXPECTED_COUNT:
        _, p = fisher_exact([[x1, n1 - x1], [x2, n2 - x2]])
        # scipy's stubs leave the result's items untyped; the p-value is a float.
        return min(1.0, float(p)), FISHER  # pyright: ignore[reportArgumentType]
    return pooled_z_test(x1, n1, x2, n2), Z_TEST


def srm_test(test_users: int, control_users: int, control_percent: float) -> tuple[float | None, str]:
    """p-value that the arm sizes follow the declared split, and the test used."""
    from scipy.stats import binomtest, chi2

    if test_users < 0 or control_users < 0:
        raise ValueError("arm sizes must be non-negative")
    if not 0 <= control_percent <= 100:
        raise ValueError(f"control_percent must lie in [0, 100], not {control_percent}")
    total = test_users + control_users
    if total == 0:
        return None, SRM_CHI_SQUARE
    share = control_percent / 100
    if share in (0.0, 1.0):  # a degenerate split: any user in the other arm is a mismatch
        expected_control = total * share
        return (1.0 if control_users == expected_control else 0.0), SRM_BINOMIAL
    if min(total * share, total * (1 - share)) < MIN_EXPECTED_COUNT:
        return float(binomtest(control_users, total, share).pvalue), SRM_BINOMIAL
    statistic = (control_users - total * share) ** 2 / (total * share * (1 - share))
    return float(chi2.sf(statistic, df=1)), SRM_CHI_SQUARE


def srm_p_value(test_users: int, control_users: int, control_percent: float) -> float | None:
    """Sample-ratio-mismatch p-value (None with no users); below ``SRM_ALARM`` the split is broken."""
    return srm_test(test_users, control_users, control_percent)[0]


def two_arm_uplift(
    test_users: int,
    test_achievers: int,
    control_users: int,
    control_achievers: int,
    *,
    control_percent: float,
    objective: str = MAXIMIZE,
    alpha: float = 0.05,
    max_plausible_uplift: float = MAX_PLAUSIBLE_UPLIFT,
) -> UpliftResult:
    """Compare the test arm's achiever rate with the control's; never raises on valid counts."""
    _check_counts(test_achievers, test_users, allow_empty=True)
    _check_counts(control_achievers, control_users, allow_empty=True)
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, not {objective!r}")
    srm, srm_method = srm_test(test_users, control_users, control_percent)
    base = {
        "test_users": test_users,
        "test_achievers": test_achievers,
        "control_users": control_users,
        "control_achievers": control_achievers,
        "srm_p_value": srm,
    }
    if test_users == 0 or control_users == 0:
        empty = (
            "either arm" if test_users == control_users else "the test arm" if test_users == 0 else "the control arm"
        )
        return UpliftResult(
            **base,
            test_rate=test_achievers / test_users if test_users else None,
            control_rate=control_achievers / control_users if control_users else None,
            abs_uplift=None,
            rel_uplift=None,
            ci_low=None,
            ci_high=None,
            p_value=None,
            method=srm_method,
            mde=None,
            detectable=False,
            improvement=None,
            verdict=f"no users in {empty}; no conclusion",
        )

    test_rate, control_rate = test_achievers / test_users, control_achievers / control_users
    abs_uplift = test_rate - control_rate
    ci_low, ci_high = newcombe_interval(test_achievers, test_users, control_achievers, control_users, alpha)
    p_value, p_method = difference_p_value(test_achievers, test_users, control_achievers, control_users)
    mde = minimum_detectable_effect(test_users, control_users, control_rate, alpha, DEFAULT_POWER, objective=objective)
    detectable = mde is not None and mde <= max(max_plausible_uplift, abs(abs_uplift))
    improves = ci_low > 0 if objective == MAXIMIZE else ci_high < 0
    worsens = ci_high < 0 if objective == MAXIMIZE else ci_low > 0
    broken_split = srm is not None and srm < SRM_ALARM

    level = f"{100 * (1 - alpha):g}% CI"
    observed = (
        f"test {_pct(test_rate)} vs {_pct(control_rate)} in control, {_points(abs_uplift)} pts, "
        f"{level} {_points(ci_low)} to {_points(ci_high)}, {_p(p_value)}"
    )
    best_rate = 1.0 if objective == MAXIMIZE else 0.0
    if broken_split and srm is not None:
        verdict = (
            f"sample ratio mismatch ({_p(srm)}): {control_users} control users of {test_users + control_users} "
            f"do not match the declared {control_percent:g}%, so the split is broken; no conclusion ({observed})"
        )
    elif control_rate == best_rate:
        verdict = (
            f"control already at {_pct(control_rate)}, the best possible rate; no uplift can be measured ({observed})"
        )
    elif not detectable:
        small_arm, small_n = ("control", control_users) if control_users <= test_users else ("test", test_users)
        power_note = (
            f"the minimum detectable effect is {_points(mde, signed=False)} pts"
            if mde is not None
            else "no effect of any size would be reliably detected"
        )
        verdict = f"{small_arm} of {small_n} users too small: {power_note}; no conclusion ({observed})"
    else:
        rates = (
            f"test converts {_pct(test_rate)} vs {_pct(control_rate)} in control"
            if objective == MAXIMIZE
            else f"test rate {_pct(test_rate)} vs {_pct(control_rate)} in control (lower is better)"
        )
        estimate = f"{_points(abs_uplift)} pts ({level} {_points(ci_low)} to {_points(ci_high)}), {_p(p_value)}"
        if improves:
            outcome = "an improvement"
        elif worsens:
            outcome = "test is worse than control"
        else:
            assert mde is not None  # this branch is reached only when detectable
            outcome = (
                f"no significant difference (an effect of {_points(mde, signed=False)} pts or more would be detected)"
            )
        verdict = f"{rates}: {estimate}; {outcome}"

    return UpliftResult(
        **base,
        test_rate=test_rate,
        control_rate=control_rate,
        abs_uplift=abs_uplift,
        rel_uplift=abs_uplift / control_rate if control_rate > 0 else None,
        ci_low=ci_low,
        ci_high=ci_high,
        p_value=p_value,
        method=f"{NEWCOMBE}, {p_method}, {srm_method}",
        mde=mde,
        detectable=detectable,
        improvement=improves if detectable and not broken_split else None,
        verdict=verdict,
    )


def _check_counts(achievers: int, users: int, *, allow_empty: bool = False) -> None:
    if users < 0 or achievers < 0 or achievers > users:
        raise ValueError(f"need 0 <= achievers <= users, got {achievers} of {users}")
    if users == 0 and not allow_empty:
        raise ValueError("a proportion needs at least one user")


def _pct(rate: float) -> str:
    return f"{100 * rate:.1f}%"


def _points(value: float, *, signed: bool = True) -> str:
    # + 0.0 turns a rounded -0.0 into 0.0: an effect that rounds to zero has no sign.
    points = round(100 * value, 1) + 0.0
    return f"{points:+.1f}" if signed and points != 0 else f"{abs(points):.1f}"


def _p(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"
