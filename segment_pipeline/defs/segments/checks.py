"""Checks on the segment tables that audiences, BI and score trees are built on."""

import dagster as dg

from segment_pipeline.defs.findings import unique_key_checks
from segment_pipeline.defs.partitions import daily_partitions


@dg.definitions
def defs() -> dg.Definitions:
    partitions = daily_partitions()
    # One check step per asset step: a blocking check over two steps would wait on the second
    # while holding back the first one's downstream (a cycle when one feeds the other).
    segment_tables = ["segment_memberships", "segment_tags", "segment_overlaps"]
    return dg.Definitions(
        asset_checks=[
            unique_key_checks("segment_unique_keys", segment_tables, partitions),
            unique_key_checks("user_scores_unique_keys", ["user_scores"], partitions),
        ]
    )
