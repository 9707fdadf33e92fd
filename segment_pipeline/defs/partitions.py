"""One partition per UTC day: a run for day D brings every output up to date as of D.

The first day is a setting (SEGMENT_PIPELINE_START_DATE), so the partitions are made when
the definitions load (``daily_partitions``), never when a module is imported.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import dagster as dg

from segment_pipeline.settings import load_settings


def outside_partitions_message(key: str, start: date, today: date | None = None) -> str:
    """Why ``key`` is no day the pipeline can run, with the valid range and how to change it."""
    today = today or datetime.now(UTC).date()
    last = today - timedelta(days=1)
    valid = (
        f"days run from SEGMENT_PIPELINE_START_DATE={start} to {last} (yesterday, UTC)"
        if last >= start
        else f"SEGMENT_PIPELINE_START_DATE={start} is in the future, so no day can run yet"
    )
    try:
        day = date.fromisoformat(key)
    except ValueError:
        return f"partition {key!r} is not a day (YYYY-MM-DD); {valid}"
    if day < start:
        return f"day {day} is before the first partition: {valid}; set SEGMENT_PIPELINE_START_DATE={day} or earlier to run it"
    return f"day {day} has not ended yet: {valid}; a day can run once it is over (UTC)"


def daily_partitions() -> dg.DailyPartitionsDefinition:
    """The days from SEGMENT_PIPELINE_START_DATE on, as the settings say when the definitions load."""
    return dg.DailyPartitionsDefinition(start_date=load_settings().start_date.isoformat(), timezone="UTC")


def daily() -> dict:
    """Every asset: one partition per day, and a range of days as one run (dg launch --partition-range)."""
    return {"partitions_def": daily_partitions(), "backfill_policy": dg.BackfillPolicy.single_run()}


def run_days(context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext) -> list[date]:
    """The days a run covers, oldest first: one for a nightly run, several for a backfill."""
    window = context.partition_time_window
    start, end = window.start.date(), window.end.date()
    return [start + timedelta(days=i) for i in range((end - start).days)]
