"""One partition per UTC day: a run for day D brings every output up to date as of D."""

from datetime import UTC, date, datetime, timedelta

import dagster as dg

from segment_pipeline.defs.failures import print_input_errors_as_one_line
from segment_pipeline.settings import load_settings


def outside_partitions_message(key: str, today: date | None = None) -> str:
    """Why ``key`` is no day the pipeline can run, with the valid range and how to change it."""
    today = today or datetime.now(UTC).date()
    last = today - timedelta(days=1)
    valid = (
        f"days run from SEGMENT_PIPELINE_START_DATE={START_DATE} to {last} (yesterday, UTC)"
        if last >= START_DATE
        else f"SEGMENT_PIPELINE_START_DATE={START_DATE} is in the future, so no day can run yet"
    )
    try:
        day = date.fromisoformat(key)
    except ValueError:
        return f"partition {key!r} is not a day (YYYY-MM-DD); {valid}"
    if day < START_DATE:
        return f"day {day} is before the first partition: {valid}; set SEGMENT_PIPELINE_START_DATE={day} or earlier to run it"
    return f"day {day} has not ended yet: {valid}; a day can run once it is over (UTC)"


# Before the settings are read: a bad variable then prints as one line under dg launch.
print_input_errors_as_one_line(outside_partitions_message)
START_DATE = load_settings().start_date
daily_partitions = dg.DailyPartitionsDefinition(start_date=START_DATE.isoformat(), timezone="UTC")

# Every asset: one partition per day, and a range of days as one run (dg launch --partition-range).
DAILY = {"partitions_def": daily_partitions, "backfill_policy": dg.BackfillPolicy.single_run()}


def run_days(context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext) -> list[date]:
    """The days a run covers, oldest first: one for a nightly run, several for a backfill."""
    window = context.partition_time_window
    start, end = window.start.date(), window.end.date()
    return [start + timedelta(days=i) for i in range((end - start).days)]
