"""Freshness of the nightly tables: yesterday's partition is there by 06:00 UTC.

The nightly run starts at 00:30 UTC; a table still without yesterday's day at 06:00 means
the run failed, did not start, or took far longer than it should. Dagster's time-partition
freshness checks ask exactly that of each daily partition. Dagster marks them superseded by
``FreshnessPolicy``, but that policy judges an asset's last update, not its daily partitions:
a backfill of an old day would make a stale table look fresh.
"""

import warnings

import dagster as dg

from segment_pipeline.defs.constants import KEY_PREFIX
from segment_pipeline.storage.tables import TABLES

FRESHNESS_DEADLINE_CRON = "0 6 * * *"
FRESHNESS_SENSOR = "nightly_freshness"
NIGHTLY_TABLES = [dg.AssetKey([KEY_PREFIX, table.name]) for table in TABLES]


def nightly_freshness_checks() -> list[dg.AssetChecksDefinition]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.SupersessionWarning)
        return list(
            dg.build_time_partition_freshness_checks(
                assets=NIGHTLY_TABLES, deadline_cron=FRESHNESS_DEADLINE_CRON, timezone="UTC"
            )
        )


@dg.definitions
def defs() -> dg.Definitions:
    checks = nightly_freshness_checks()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.SupersessionWarning)
        sensor = dg.build_sensor_for_freshness_checks(freshness_checks=checks, name=FRESHNESS_SENSOR)
    return dg.Definitions(asset_checks=checks, sensors=[sensor])
