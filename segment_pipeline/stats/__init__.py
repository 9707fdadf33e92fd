"""Statistics for goal reports: test-vs-control uplift, intervals, SRM and power (no dagster)."""

from segment_pipeline.stats.power import minimum_detectable_effect
from segment_pipeline.stats.uplift import (
    UpliftResult,
    newcombe_interval,
    srm_p_value,
    two_arm_uplift,
    wald_interval,
    wilson_interval,
)

__all__ = [
    "UpliftResult",
    "minimum_detectable_effect",
    "newcombe_interval",
    "srm_p_value",
    "two_arm_uplift",
    "wald_interval",
    "wilson_interval",
]
