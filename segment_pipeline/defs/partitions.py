"""One partition per UTC day: a run for day D brings every output up to date as of D."""

from datetime import date, timedelta

import dagster as dg

from segment_pipeline.settings import load_settings

daily_partitions = dg.DailyPartitionsDefinition(
    start_date=load_settings().start_date.isoformat(), timezone="UTC"
)

# Every asset: one partition per day, and a range of days as one run (dg launch --partition-range).
DAILY = {"partitions_def": daily_partitions, "backfill_policy": dg.BackfillPolicy.single_run()}


def run_days(context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext) -> list[date]:
    """The days a run covers, oldest first: one for a nightly run, several for a backfill."""
    window = context.partition_time_window
    start, end = window.start.date(), window.end.date()
    return [start + timedelta(days=i) for i in range((end - start).days)]
