"""Real Great Expectations runs of the snapshot suites on small frames."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest

from segment_pipeline.ingest.events import day_cutoff, load_events
from segment_pipeline.ingest.sources import discover
from segment_pipeline.quality.snapshot_suite import (
    EARLIEST_EVENT_TS,
    REQUIRED_COLUMNS_SUITE,
    TIMESTAMP_RANGE_SUITE,
    UNIQUE_IDS_SUITE,
    VOLUME_SUITE,
    check_daily_volume,
    check_required_columns,
    check_timestamp_range,
    check_unique_event_ids,
)
from segment_pipeline.storage import warehouse
from segment_pipeline_tests.conftest import make_events, write_events

DAY = datetime(2026, 1, 5)
NEXT_DAY = DAY + timedelta(days=1)


def snapshot_slice(n: int = 3, *, dtype: str = "str") -> pd.DataFrame:
    """A clean slice of one day's load, as the lead fetches it from DuckDB."""
    frame = pd.DataFrame(
        {
            "event_id": [f"e{i}" for i in range(1, n + 1)],
            "user_id": [f"u{i}" for i in range(1, n + 1)],
            "event_name": ["login"] * n,
            "ts": pd.to_datetime([DAY + timedelta(hours=i) for i in range(n)]),
            "properties": ['{"plan": "pro"}'] * n,
            "id_occurrences": [1] * n,
        }
    )
    return frame.astype(dict.fromkeys(("event_id", "user_id", "event_name", "properties"), dtype))


def check_range(df: pd.DataFrame):
    return check_timestamp_range(df, min_ts=DAY, max_ts_exclusive=NEXT_DAY)


ROW_SUITES = {
    REQUIRED_COLUMNS_SUITE: check_required_columns,
    TIMESTAMP_RANGE_SUITE: check_range,
    UNIQUE_IDS_SUITE: check_unique_event_ids,
}


@pytest.mark.parametrize("suite", ROW_SUITES)
def test_clean_slice_passes(suite):
    outcome = ROW_SUITES[suite](snapshot_slice())
    assert (outcome.suite, outcome.success, outcome.evaluated_rows) == (suite, True, 3)
    assert outcome.failed() == []
    assert outcome.summary() == f"all {len(outcome.outcomes)} expectations passed"


@pytest.mark.parametrize("suite", ROW_SUITES)
def test_empty_slice_passes(suite):
    outcome = ROW_SUITES[suite](snapshot_slice(0))
    assert outcome.success and outcome.evaluated_rows == 0


@pytest.mark.parametrize("dtype", ["str", "object"])
@pytest.mark.parametrize(
    ("column", "value", "expectation", "example"),
    [
        ("user_id", None, "expect_column_values_to_not_be_null(user_id)", "event_id=e2: null"),
        ("user_id", "  ", "expect_column_values_to_match_regex(user_id)", 'event_id=e2: "  "'),
        ("event_name", "", "expect_column_values_to_match_regex(event_name)", 'event_id=e2: ""'),
        ("properties", None, "expect_column_values_to_not_be_null(properties)", "event_id=e2: null"),
    ],
)
def test_required_columns_flag_missing_or_blank_values(dtype, column, value, expectation, example):
    df = snapshot_slice(dtype=dtype)
    df.loc[1, column] = value
    outcome = check_required_columns(df)
    assert not outcome.success
    [failed] = outcome.failed()
    assert (failed.expectation, failed.unexpected_count, failed.unexpected_examples) == (expectation, 1, [example])
    line = f"{failed.description} [{expectation}]: 1 of 3 rows unexpected, e.g. {example}"
    assert outcome.summary().splitlines() == [line]


def test_required_columns_name_an_absent_column():
    outcome = check_required_columns(snapshot_slice().drop(columns="user_id"))
    assert not outcome.success
    assert outcome.failed()[0].observed == "missing columns: user_id"


@pytest.mark.parametrize(
    ("ts", "success"),
    [
        (DAY, True),  # the first instant of the day belongs to it
        (NEXT_DAY - timedelta(microseconds=1), True),
        (NEXT_DAY, False),  # the upper bound is exclusive
        (DAY - timedelta(microseconds=1), False),
    ],
)
def test_timestamp_range_is_half_open(ts, success):
    df = snapshot_slice()
    df.loc[2, "ts"] = ts
    outcome = check_range(df)
    assert outcome.success is success
    if not success:
        assert outcome.failed()[0].unexpected_examples == [f"event_id=e3: {ts.isoformat(sep=' ')}"]


def test_timestamp_range_accepts_aware_bounds_and_times():
    df = snapshot_slice()
    df["ts"] = df["ts"].dt.tz_localize("UTC")
    paris = timezone(timedelta(hours=1))
    outcome = check_timestamp_range(df, min_ts=DAY.replace(hour=1, tzinfo=paris), max_ts_exclusive=NEXT_DAY)
    assert outcome.success


def test_timestamp_range_rejects_an_empty_range():
    with pytest.raises(ValueError, match="empty time range"):
        check_timestamp_range(snapshot_slice(), min_ts=NEXT_DAY, max_ts_exclusive=DAY)


@pytest.mark.parametrize(
    ("change", "expectation", "examples"),
    [
        ({"event_id": "e1"}, "expect_column_values_to_be_unique(event_id)", ["event_id=e1"]),
        ({"id_occurrences": 2}, "expect_column_values_to_be_between(id_occurrences)", ["event_id=e2: 2"]),
    ],
)
def test_unique_event_ids(change, expectation, examples):
    df = snapshot_slice()
    for column, value in change.items():
        df.loc[1, column] = value
    outcome = check_unique_event_ids(df)
    assert not outcome.success
    [failed] = outcome.failed()
    assert (failed.expectation, failed.unexpected_examples) == (expectation, examples)


def test_examples_follow_the_rows_whatever_the_index():
    df = snapshot_slice().set_index("event_id", drop=False)
    df.loc["e3", "id_occurrences"] = 3
    assert check_unique_event_ids(df).failed()[0].unexpected_examples == ["event_id=e3: 3"]


@pytest.mark.parametrize(
    ("day_count", "trailing", "kwargs", "success"),
    [
        (100, [90, 100, 110], {}, True),
        (50, [100, 100, 100], {}, True),  # bounds are inclusive
        (150, [100, 100, 100], {}, True),
        (10, [100, 100, 100], {}, False),  # a partial or missed file
        (400, [100, 100, 100], {}, False),  # a file loaded twice
        (0, [100, 100, 100], {"tolerance": 2.0}, True),  # the lower bound clamps at zero
        (115, [100, 100, 100], {"tolerance": 0.1}, False),
        (5, [100, 100], {}, True),  # not enough history to judge
        (5, [100, 100], {"min_history": 2}, False),
    ],
)
def test_daily_volume(day_count, trailing, kwargs, success):
    outcome = check_daily_volume(day_count, trailing, **kwargs)
    assert (outcome.suite, outcome.success) == (VOLUME_SUITE, success)
    [result] = outcome.outcomes
    assert result.expectation == "expect_column_values_to_be_between(day_count)"
    judged = len(trailing) >= kwargs.get("min_history", 3)
    assert result.observed.startswith(f"{day_count} events" if judged else "not enough history")
    if not success:
        assert result.unexpected_examples == [str(day_count)]
        assert outcome.summary().endswith(result.observed)


def test_daily_volume_reports_its_baseline():
    outcome = check_daily_volume(10, [90, 100, 110])
    assert outcome.outcomes[0].observed == "10 events vs a mean of 100.0 over 3 trailing days; expected 50..150"
    assert outcome.as_metadata()["expect_column_values_to_be_between(day_count)"].startswith("FAILED: 10 events")


def test_daily_volume_with_no_history():
    outcome = check_daily_volume(7, [])
    assert outcome.success
    assert outcome.outcomes[0].observed == "not enough history: 0 trailing days, need 3 (7 events)"


def test_daily_volume_refuses_negative_inputs():
    with pytest.raises(ValueError, match="must not be negative"):
        check_daily_volume(-1, [1, 2, 3])


def test_metadata_is_flat_and_readable():
    df = snapshot_slice()
    df.loc[0, "user_id"] = None
    df.loc[2, "event_name"] = ""
    metadata = check_required_columns(df).as_metadata()
    assert all(isinstance(v, (str, int, bool)) for v in metadata.values())
    assert metadata["suite"] == REQUIRED_COLUMNS_SUITE
    assert (metadata["success"], metadata["evaluated_rows"], metadata["failed_expectations"]) == (False, 3, 2)
    assert len(metadata["summary"].splitlines()) == 2
    assert metadata["expect_column_values_to_not_be_null(event_id)"] == "passed"
    assert metadata["expect_column_values_to_not_be_null(user_id)"] == (
        "FAILED: 1 of 3 rows unexpected, e.g. event_id=e1: null"
    )


def test_examples_are_capped_and_deduplicated():
    df = snapshot_slice(20)
    df["event_id"] = ["dup"] * 10 + [f"x{i}" for i in range(10)]
    df["id_occurrences"] = 2
    failed = {o.expectation: o for o in check_unique_event_ids(df).failed()}
    assert failed["expect_column_values_to_be_unique(event_id)"].unexpected_examples == ["event_id=dup"]
    assert failed["expect_column_values_to_be_unique(event_id)"].unexpected_count == 10
    assert len(failed["expect_column_values_to_be_between(id_occurrences)"].unexpected_examples) == 5


@pytest.mark.slow
def test_importing_is_cheap_and_validating_stays_offline():
    """GX loads only when a check runs, and never opens a network connection."""
    script = textwrap.dedent(
        """
        import socket, sys
        attempts = []
        def refuse(self, address, *args):
            attempts.append(address)
            raise OSError("network disabled in this test")
        socket.socket.connect = refuse
        from segment_pipeline.quality import snapshot_sql, snapshot_suite
        assert "great_expectations" not in sys.modules and "sqlalchemy" not in sys.modules
        assert snapshot_suite.check_daily_volume(100, [100, 100, 100]).success
        assert "great_expectations" in sys.modules
        assert attempts == [], attempts
        """
    )
    project_root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", script], cwd=project_root, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_history_from_1970_loaded_for_a_1995_day_passes_and_pre_1970_times_fail(tmp_path):
    """The loader then the suite, as the daily check runs them, on a day long before 2000."""
    day = date(1995, 3, 1)
    rows = make_events(20, start=datetime(1970, 1, 1)) + make_events(20, start=datetime(1995, 2, 28), prefix="n")
    write_events(tmp_path / "old.csv", rows)
    with warehouse.connect(tmp_path / "w.duckdb") as con:
        load_events(con, discover(str(tmp_path / "old.csv"), env_var="E"), snapshot_date=day, max_reject_rate=0)
        loaded = con.execute("SELECT event_id, ts FROM analytics.event_snapshots").df()
    assert len(loaded) == 40
    outcome = check_timestamp_range(loaded, min_ts=EARLIEST_EVENT_TS, max_ts_exclusive=day_cutoff(day))
    assert outcome.success, outcome.summary()

    loaded.loc[0, "ts"] = pd.Timestamp("1969-12-31 23:59:59")
    failed = check_timestamp_range(loaded, min_ts=EARLIEST_EVENT_TS, max_ts_exclusive=day_cutoff(day))
    assert not failed.success and "1969-12-31 23:59:59" in failed.summary()
