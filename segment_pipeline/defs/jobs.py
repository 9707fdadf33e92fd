"""The nightly refresh: every asset, for one day, in one process.

The job selects all assets, so an asset added anywhere under ``defs/`` joins it
without a change here. Steps run in one process because DuckDB allows one
writing process per database file.
"""

import dagster as dg

from segment_pipeline.defs.freshness import nightly_freshness_checks
from segment_pipeline.defs.partitions import daily_partitions


@dg.definitions
def defs() -> dg.Definitions:
    nightly_refresh = dg.define_asset_job(
        name="nightly_refresh",
        # Freshness is judged by its own sensor against the clock, not inside the run it judges.
        selection=dg.AssetSelection.all() - dg.AssetSelection.checks(*nightly_freshness_checks()),
        partitions_def=daily_partitions(),
        executor_def=dg.in_process_executor,
        description=(
            "Bring every output up to date as of the partition's day: load new events and "
            "profiles, check them, then recompute everything downstream for that day."
        ),
        tags={"segment_pipeline/writes": "warehouse"},
    )
    nightly_refresh_schedule = dg.build_schedule_from_partitioned_job(
        nightly_refresh,
        name="nightly_refresh_schedule",
        hour_of_day=0,
        minute_of_hour=30,
        description="Each night at 00:30 UTC, refresh everything as of the day that just ended.",
    )
    # Ad-hoc materializations from the UI also run in one process, for the same reason.
    return dg.Definitions(
        jobs=[nightly_refresh],
        schedules=[nightly_refresh_schedule],
        executor=dg.in_process_executor,
    )
