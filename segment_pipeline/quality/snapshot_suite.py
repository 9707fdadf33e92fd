"""Data-quality suites for the slice of `analytics.event_snapshots` loaded by one daily run.

Segments, scores and goal models all read the snapshot; these suites stop a bad load
before they do. Row-level suites take the slice as a pandas frame with columns
`event_id, user_id, event_name, ts, properties, id_occurrences` (rows in the whole
table carrying that `event_id`). An empty slice passes them.
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from segment_pipeline.quality.gx_runner import (
    ExpectationOutcome,
    SuiteOutcome,
    gx_expectations,
    run_suite,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "EARLIEST_EVENT_TS",
    "REQUIRED_COLUMNS_SUITE",
    "TIMESTAMP_RANGE_SUITE",
    "UNIQUE_IDS_SUITE",
    "VOLUME_SUITE",
    "ExpectationOutcome",
    "SuiteOutcome",
    "check_daily_volume",
    "check_required_columns",
    "check_timestamp_range",
    "check_unique_event_ids",
]

REQUIRED_COLUMNS_SUITE = "snapshot_required_columns"
TIMESTAMP_RANGE_SUITE = "snapshot_timestamp_range"
UNIQUE_IDS_SUITE = "snapshot_unique_event_ids"
VOLUME_SUITE = "snapshot_daily_volume"

REQUIRED_COLUMNS = ("event_id", "user_id", "event_name", "ts", "properties")
# The earliest time an event may have: the contract takes history from 1970 on
# (SEGMENT_PIPELINE_START_DATE is any day from 1970-01-01). Earlier times come from a
# parsing accident (a negative epoch, a two-digit year read as year 26), not from history.
EARLIEST_EVENT_TS = datetime(1970, 1, 1)
# Blank means empty or whitespace only: such a user or event name matches no rule.
NOT_BLANK = r"\S"
# The columns a rule matches on: blank is as bad as null there.
NAMED_COLUMNS = ("user_id", "event_name")


def check_required_columns(df: pd.DataFrame) -> SuiteOutcome:
    """Every event names its user and its event type and has an id, a time and properties.

    A null or blank user would form a phantom user in `All Users`; a blank event name
    can never match a segment step, so the event would silently count for nothing.
    """
    frame = df.filter(items=list(REQUIRED_COLUMNS))
    return run_suite(REQUIRED_COLUMNS_SUITE, frame, required_columns_expectations())


def required_columns_expectations() -> list:
    E = gx_expectations()
    return [
        E.ExpectTableColumnsToMatchSet(
            column_set=list(REQUIRED_COLUMNS),
            exact_match=False,
            description="the snapshot has every required column",
        ),
        *(E.ExpectColumnValuesToNotBeNull(column=c, description=f"every event has its {c}") for c in REQUIRED_COLUMNS),
        *(
            E.ExpectColumnValuesToMatchRegex(column=c, regex=NOT_BLANK, description=f"no event has a blank {c}")
            for c in NAMED_COLUMNS
        ),
    ]


def check_timestamp_range(df: pd.DataFrame, *, min_ts: datetime, max_ts_exclusive: datetime) -> SuiteOutcome:
    """Every event of the slice happened in `[min_ts, max_ts_exclusive)`, times naive UTC.

    An event after the run's cutoff would leak the future into "as of D" segments and
    goal features; one before the expected start points at a wrong clock or time zone.
    """
    expectations = timestamp_range_expectations(min_ts=min_ts, max_ts_exclusive=max_ts_exclusive)
    frame = df.filter(items=["event_id", "ts"])
    if "ts" in frame.columns:
        import pandas as pd

        frame = frame.assign(ts=_comparable_ts(pd.Series(frame["ts"])))
    return run_suite(TIMESTAMP_RANGE_SUITE, frame, expectations)


def timestamp_range_expectations(*, min_ts: datetime, max_ts_exclusive: datetime) -> list:
    low, high = _naive_utc(min_ts), _naive_utc(max_ts_exclusive)
    if not low < high:
        raise ValueError(f"empty time range: min_ts {low} is not before max_ts_exclusive {high}")
    E = gx_expectations()
    return [
        E.ExpectColumnValuesToBeBetween(
            column="ts",
            min_value=low,
            max_value=high,
            strict_max=True,
            description=f"every event is in [{low}, {high})",
        )
    ]


def check_unique_event_ids(df: pd.DataFrame) -> SuiteOutcome:
    """Each event is in the snapshot once: unique in the slice and in the whole table.

    A duplicated event would be counted twice in `minCount` steps, goal achievements
    and volumes, and re-running a day must never add one.
    """
    frame = df.filter(items=["event_id", "id_occurrences"])
    return run_suite(UNIQUE_IDS_SUITE, frame, unique_ids_expectations())


def unique_ids_expectations() -> list:
    E = gx_expectations()
    return [
        E.ExpectColumnValuesToBeUnique(column="event_id", description="no event_id repeats in the slice"),
        E.ExpectColumnValuesToBeBetween(
            column="id_occurrences",
            min_value=1,
            max_value=1,
            description="no event_id of the slice is elsewhere in the snapshot",
        ),
    ]


def check_daily_volume(
    day_count: int, trailing_counts: list[int], *, tolerance: float = 0.5, min_history: int = 3
) -> SuiteOutcome:
    """The day's event count is within `tolerance` of the trailing days' mean daily count.

    A day far below usual is most often a partial or missed source file; far above, a
    file loaded twice under new ids. With fewer than `min_history` trailing days there
    is no baseline yet, and the suite passes saying so.
    """
    if day_count < 0 or any(c < 0 for c in trailing_counts) or tolerance < 0:
        raise ValueError("event counts and tolerance must not be negative")
    E = gx_expectations()
    import pandas as pd

    days = len(trailing_counts)
    if days < max(min_history, 1):
        low, high = 0, None
        observed = f"not enough history: {days} trailing days, need {max(min_history, 1)} ({day_count} events)"
        description = "the day's event count is not negative (no baseline yet)"
    else:
        mean = sum(trailing_counts) / days
        low, high = max(0, math.floor(mean * (1 - tolerance))), math.ceil(mean * (1 + tolerance))
        observed = f"{day_count} events vs a mean of {mean:.1f} over {days} trailing days; expected {low}..{high}"
        description = f"the day's event count is within {tolerance:.0%} of the trailing mean"
    expectation = E.ExpectColumnValuesToBeBetween(
        column="day_count", min_value=low, max_value=high, description=description
    )
    outcome = run_suite(VOLUME_SUITE, pd.DataFrame({"day_count": [int(day_count)]}), [expectation], id_column=None)
    # GX has no observed value for a per-row expectation; the baseline is what a reader needs.
    return replace(outcome, outcomes=[replace(o, observed=o.observed or observed) for o in outcome.outcomes])


def _naive_utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def _comparable_ts(ts: pd.Series) -> pd.Series:
    """Naive UTC nanoseconds, the only datetime type GX compares vectorised (else row by row)."""
    import pandas as pd

    if isinstance(ts.dtype, pd.DatetimeTZDtype):
        ts = ts.dt.tz_convert("UTC").dt.tz_localize(None)
    try:
        return ts.astype("datetime64[ns]")
    except (TypeError, ValueError, OverflowError):  # e.g. year 3000: let GX compare it slowly
        return ts
