import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import binomtest, chi2_contingency, chisquare, fisher_exact

from segment_pipeline.stats.power import minimum_detectable_effect
from segment_pipeline.stats.uplift import (
    FISHER,
    NEWCOMBE,
    SRM_ALARM,
    SRM_BINOMIAL,
    SRM_CHI_SQUARE,
    TABLE_COLUMNS,
    Z_TEST,
    difference_p_value,
    newcombe_interval,
    pooled_z_test,
    srm_test,
    two_arm_uplift,
    wald_interval,
    wilson_interval,
)

# Newcombe (1998), Statistics in Medicine 17:873-890, Table II: the eight example contrasts,
# with the 95% limits of method 10 (hybrid score) and method 1 (Wald), to 4 decimals.
NEWCOMBE_TABLE_II = [
    ((56, 70, 48, 80), (0.0524, 0.3339), (0.0575, 0.3425)),
    ((9, 10, 3, 10), (0.1705, 0.8090), (0.2605, 0.9395)),
    ((6, 7, 2, 7), (0.0582, 0.8062), (0.1481, 0.9947)),
    ((5, 56, 0, 29), (-0.0381, 0.1926), (0.0146, 0.1640)),
    ((0, 10, 0, 20), (-0.1611, 0.2775), (0.0, 0.0)),
    ((0, 10, 0, 10), (-0.2775, 0.2775), (0.0, 0.0)),
    ((10, 10, 0, 20), (0.6791, 1.0), (1.0, 1.0)),
    ((10, 10, 0, 10), (0.6075, 1.0), (1.0, 1.0)),
]
# Half a unit in the 4th decimal: the published values are rounded.
TABLE_TOLERANCE = 5.1e-5

TWO_BY_TWO = [
    (56, 70, 48, 80),
    (254, 800, 109, 800),
    (480, 4000, 400, 4000),
    (198, 1520, 8, 80),
    (5, 56, 0, 29),
    (9, 10, 3, 10),
    (0, 300, 3, 20),
    (1200, 1500, 60, 80),
]

counts = st.integers(min_value=1, max_value=5000).flatmap(
    lambda n: st.tuples(st.integers(min_value=0, max_value=n), st.just(n))
)


def test_counts_and_rates_of_a_known_test_are_reproduced():
    result = two_arm_uplift(800, 254, 800, 109, control_percent=50)

    assert (result.test_users, result.test_achievers, result.control_users, result.control_achievers) == (
        800,
        254,
        800,
        109,
    )
    assert result.test_rate == 254 / 800 == 0.3175
    assert result.control_rate == 109 / 800 == 0.13625
    assert result.abs_uplift == pytest.approx(0.18125, abs=1e-15)
    assert result.rel_uplift == pytest.approx(0.18125 / 0.13625, rel=1e-12)
    assert (result.ci_low, result.ci_high) == newcombe_interval(254, 800, 109, 800)
    assert result.method == f"{NEWCOMBE}, {Z_TEST}, {SRM_CHI_SQUARE}"
    assert result.improvement is True
    assert result.verdict.startswith("test converts 31.8% vs 13.6% in control: +18.1 pts (95% CI +14.1 to +22.1)")
    assert result.verdict.endswith("p < 0.001; an improvement")
    assert tuple(result.table_row()) == TABLE_COLUMNS


@pytest.mark.parametrize(("counts", "method_10", "_"), NEWCOMBE_TABLE_II)
def test_newcombe_interval_matches_newcombe_1998_table_ii(counts, method_10, _):
    assert newcombe_interval(*counts) == pytest.approx(method_10, abs=TABLE_TOLERANCE)


@pytest.mark.parametrize(("counts", "_", "method_1"), NEWCOMBE_TABLE_II)
def test_wald_interval_matches_newcombe_1998_table_ii(counts, _, method_1):
    assert wald_interval(*counts) == pytest.approx(method_1, abs=TABLE_TOLERANCE)


@pytest.mark.parametrize("counts", TWO_BY_TWO)
def test_wald_interval_matches_statsmodels(counts):
    proportion = pytest.importorskip("statsmodels.stats.proportion")
    expected = proportion.confint_proportions_2indep(*counts, method="wald", compare="diff", alpha=0.05)
    assert wald_interval(*counts) == pytest.approx(tuple(float(v) for v in expected), abs=1e-12)


def test_zero_events_collapse_wald_but_not_newcombe():
    low, high = newcombe_interval(0, 80, 0, 1520)
    assert wald_interval(0, 80, 0, 1520) == (0.0, 0.0)
    assert low < 0 < high


@pytest.mark.parametrize(
    ("x", "n", "expected"), [(0, 10, (0.0, 0.2775)), (10, 10, (0.7225, 1.0)), (81, 263, (0.2553, 0.3662))]
)
def test_wilson_interval_textbook_values(x, n, expected):
    # 81/263 is Newcombe's (1998, single-proportion paper) example: 0.2553 to 0.3662.
    assert wilson_interval(x, n) == pytest.approx(expected, abs=TABLE_TOLERANCE)


@pytest.mark.parametrize("counts", TWO_BY_TWO)
def test_newcombe_and_z_test_match_statsmodels(counts):
    proportion = pytest.importorskip("statsmodels.stats.proportion")
    x1, n1, x2, n2 = counts
    expected = proportion.confint_proportions_2indep(x1, n1, x2, n2, method="newcomb", compare="diff")
    assert newcombe_interval(*counts) == pytest.approx(tuple(map(float, expected)), abs=1e-10)
    _, p_value = proportion.proportions_ztest([x1, x2], [n1, n2])
    assert pooled_z_test(*counts) == pytest.approx(float(p_value), rel=1e-9, abs=1e-300)


@pytest.mark.parametrize("counts", TWO_BY_TWO)
def test_z_test_is_the_uncorrected_chi_square(counts):
    x1, n1, x2, n2 = counts
    expected = chi2_contingency([[x1, n1 - x1], [x2, n2 - x2]], correction=False).pvalue
    assert pooled_z_test(*counts) == pytest.approx(expected, rel=1e-9, abs=1e-300)


@pytest.mark.parametrize(
    ("counts", "method"),
    [
        ((254, 800, 109, 800), Z_TEST),
        ((198, 1520, 8, 80), Z_TEST),
        ((9, 10, 3, 10), FISHER),  # expected failures per arm: 4
        ((5, 56, 0, 29), FISHER),  # expected achievers in control: 1.7
        ((0, 300, 3, 20), FISHER),
        ((0, 2000, 0, 2000), FISHER),  # no achievers at all: expected 0
    ],
)
def test_fisher_replaces_the_z_test_when_a_cell_is_expected_below_5(counts, method):
    x1, n1, x2, n2 = counts
    p_value, used = difference_p_value(*counts)
    assert used == method
    if method == FISHER:
        assert p_value == pytest.approx(fisher_exact([[x1, n1 - x1], [x2, n2 - x2]]).pvalue, rel=1e-12)
    else:
        assert p_value == pooled_z_test(*counts)


def test_a_large_control_with_a_real_effect_is_an_improvement():
    result = two_arm_uplift(4000, 480, 4000, 400, control_percent=50)

    assert result.ci_low > 0
    assert result.detectable is True
    assert result.mde < 0.02
    assert result.improvement is True
    assert result.p_value < 0.01
    assert result.srm_p_value == 1.0
    assert result.verdict.startswith("test converts 12.0% vs 10.0% in control: +2.0 pts (95% CI +0.6 to +3.4)")


def test_a_tiny_control_gives_no_conclusion_and_quotes_the_mde():
    # 1,600 users at 5%: 80 in control; +3 points on a 10% base rate.
    result = two_arm_uplift(1520, 198, 80, 8, control_percent=5)

    assert result.detectable is False
    assert result.improvement is None
    assert result.mde == pytest.approx(minimum_detectable_effect(1520, 80, 0.1))
    assert 0.10 < result.mde < 0.15
    assert result.verdict.startswith(
        f"control of 80 users too small: the minimum detectable effect is {100 * result.mde:.1f} pts; no conclusion"
    )
    # The interval is still reported: it is the honest range of the effect.
    assert result.ci_low < 0 < result.ci_high


def test_a_barely_significant_result_from_a_tiny_control_is_not_a_conclusion():
    # p = 0.023, but the control can only see effects of 12 points or more.
    result = two_arm_uplift(1520, 310, 80, 8, control_percent=5)

    assert result.ci_low > 0
    assert result.p_value < 0.05
    assert abs(result.abs_uplift) < result.mde
    assert result.detectable is False
    assert result.improvement is None


def test_a_huge_effect_is_conclusive_even_with_a_tiny_control():
    result = two_arm_uplift(1520, 600, 80, 8, control_percent=5)

    assert result.mde > 0.05
    assert result.abs_uplift > result.mde
    assert result.detectable is True
    assert result.improvement is True


@pytest.mark.parametrize(
    ("test_users", "control_users", "percent", "alarm"),
    [
        (1520, 80, 5, False),
        (1512, 88, 5, False),
        (9503, 497, 5, False),
        (5000, 5000, 50, False),
        (900, 100, 5, True),  # a 90/10 split declared 95/5
        (1600, 0, 5, True),
        (5200, 4800, 50, True),
    ],
)
def test_srm_flags_a_broken_split(test_users, control_users, percent, alarm):
    p_value, method = srm_test(test_users, control_users, percent)
    total = test_users + control_users
    expected = chisquare([test_users, control_users], [total * (1 - percent / 100), total * percent / 100]).pvalue

    assert method == SRM_CHI_SQUARE
    assert p_value == pytest.approx(expected, rel=1e-9, abs=1e-300)
    assert (p_value < SRM_ALARM) is alarm


@pytest.mark.parametrize(("test_users", "control_users"), [(18, 2), (40, 0), (30, 9)])
def test_srm_is_exact_when_an_arm_is_expected_below_5(test_users, control_users):
    p_value, method = srm_test(test_users, control_users, 5)
    assert method == SRM_BINOMIAL
    assert p_value == pytest.approx(binomtest(control_users, test_users + control_users, 0.05).pvalue)


def test_a_broken_split_withholds_the_conclusion():
    result = two_arm_uplift(9000, 1500, 1000, 100, control_percent=5)

    assert result.detectable is True
    assert result.ci_low > 0
    assert result.improvement is None
    assert result.verdict.startswith("sample ratio mismatch (p < 0.001)")


@pytest.mark.parametrize(
    ("test_achievers", "improvement", "outcome"),
    [(320, True, "an improvement"), (400, False, "no significant difference"), (480, False, "worse than control")],
)
def test_minimize_counts_a_lower_test_rate_as_the_improvement(test_achievers, improvement, outcome):
    result = two_arm_uplift(4000, test_achievers, 4000, 400, control_percent=50, objective="minimize")

    assert result.improvement is improvement
    assert "(lower is better)" in result.verdict
    assert outcome in result.verdict
    assert result.mde == pytest.approx(minimum_detectable_effect(4000, 4000, 0.1, objective="minimize"))


@pytest.mark.parametrize(
    ("test_achievers", "improvement", "outcome"),
    [(480, True, "an improvement"), (400, False, "no significant difference"), (320, False, "worse than control")],
)
def test_maximize_counts_a_higher_test_rate_as_the_improvement(test_achievers, improvement, outcome):
    result = two_arm_uplift(4000, test_achievers, 4000, 400, control_percent=50)

    assert result.improvement is improvement
    assert outcome in result.verdict


@pytest.mark.parametrize(
    ("counts", "objective", "verdict_start"),
    [
        ((0, 0, 0, 0), "maximize", "no users in either arm"),
        ((100, 5, 0, 0), "maximize", "no users in the control arm"),
        ((0, 0, 100, 5), "minimize", "no users in the test arm"),
        ((2000, 0, 2000, 0), "maximize", "test converts 0.0% vs 0.0% in control: 0.0 pts"),
        ((2000, 0, 2000, 0), "minimize", "control already at 0.0%"),
        ((2000, 2000, 2000, 2000), "maximize", "control already at 100.0%"),
        ((2000, 2000, 2000, 2000), "minimize", "test rate 100.0% vs 100.0% in control"),
        ((2000, 50, 2000, 0), "maximize", "test converts 2.5% vs 0.0% in control: +2.5 pts"),
        ((2, 1, 2, 1), "maximize", "control of 2 users too small: no effect of any size"),
    ],
)
def test_edge_cases_do_not_raise(counts, objective, verdict_start):
    result = two_arm_uplift(*counts, control_percent=50, objective=objective)

    assert result.verdict.startswith(verdict_start)
    test_users, test_achievers, control_users, control_achievers = counts
    assert result.test_rate == (test_achievers / test_users if test_users else None)
    assert result.control_rate == (control_achievers / control_users if control_users else None)
    if not result.control_rate:
        assert result.rel_uplift is None
    if result.abs_uplift is None:
        assert (result.ci_low, result.ci_high, result.p_value, result.mde) == (None, None, None, None)
        assert result.detectable is False and result.improvement is None
    else:
        assert result.ci_low <= result.abs_uplift <= result.ci_high
        assert 0 <= result.p_value <= 1


def test_srm_is_undefined_without_users():
    assert srm_test(0, 0, 5) == (None, SRM_CHI_SQUARE)


@pytest.mark.parametrize("bad", [(10, 11, 10, 1), (10, -1, 10, 1), (-5, 0, 10, 1)])
def test_impossible_counts_are_rejected(bad):
    with pytest.raises(ValueError, match=r"need 0 <= achievers <= users"):
        two_arm_uplift(*bad, control_percent=5)


def test_alpha_sets_the_interval_level():
    result = two_arm_uplift(4000, 480, 4000, 400, control_percent=50, alpha=0.1)
    assert "(90% CI" in result.verdict
    assert (result.ci_low, result.ci_high) == newcombe_interval(480, 4000, 400, 4000, alpha=0.1)


@pytest.mark.parametrize(("n", "above"), [(686, False), (685, True)])
def test_mde_inverts_the_fleiss_sample_size(n, above):
    # Fleiss' formula: 10% -> 15% at alpha 0.05 (two-sided), power 0.8 needs 685.6 users per arm.
    assert (minimum_detectable_effect(n, n, 0.10) > 0.05) is above
    assert minimum_detectable_effect(n, n, 0.10) == pytest.approx(0.05, abs=1e-4)


@pytest.mark.parametrize(
    ("n_test", "n_control", "base_rate", "objective"),
    [
        (1520, 80, 0.10, "maximize"),
        (4000, 4000, 0.10, "minimize"),
        (9500, 500, 0.0, "maximize"),
        (800, 800, 0.6, "maximize"),
    ],
)
def test_mde_matches_statsmodels_sample_size(n_test, n_control, base_rate, objective):
    proportion = pytest.importorskip("statsmodels.stats.proportion")
    mde = minimum_detectable_effect(n_test, n_control, base_rate, objective=objective)
    diff = mde if objective == "maximize" else -mde
    n = proportion.samplesize_proportions_2indep_onetail(diff, base_rate, 0.8, ratio=n_control / n_test)
    assert n == pytest.approx(n_test, rel=1e-6)


@pytest.mark.parametrize(
    ("n_test", "n_control", "base_rate"), [(0, 80, 0.1), (1520, 0, 0.1), (1520, 80, None), (2, 2, 0.5)]
)
def test_mde_is_undefined_for_empty_or_hopeless_arms(n_test, n_control, base_rate):
    assert minimum_detectable_effect(n_test, n_control, base_rate) is None


@given(counts, counts)
def test_newcombe_contains_the_estimate_within_bounds_and_is_antisymmetric(arm1, arm2):
    (x1, n1), (x2, n2) = arm1, arm2
    low, high = newcombe_interval(x1, n1, x2, n2)

    assert -1.0 <= low <= x1 / n1 - x2 / n2 <= high <= 1.0
    assert newcombe_interval(x2, n2, x1, n1) == pytest.approx((-high, -low), abs=1e-15)


@given(counts, counts, st.sampled_from(["maximize", "minimize"]), st.sampled_from([5, 10, 50]))
def test_two_arm_uplift_is_consistent(arm1, arm2, objective, percent):
    (x1, n1), (x2, n2) = arm1, arm2
    result = two_arm_uplift(n1, x1, n2, x2, control_percent=percent, objective=objective)

    assert 0 <= result.p_value <= 1
    assert 0 <= result.srm_p_value <= 1
    assert result.ci_low <= result.abs_uplift <= result.ci_high
    if result.improvement is not None:
        assert result.detectable
    if result.improvement:
        assert result.ci_low > 0 if objective == "maximize" else result.ci_high < 0
    assert result.verdict
