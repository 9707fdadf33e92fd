"""The warehouse-counted suites agree with the GX suites run on the whole slice as a frame."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from segment_pipeline.quality.snapshot_sql import check_loaded_slice
from segment_pipeline.quality.snapshot_suite import (
    check_required_columns,
    check_timestamp_range,
    check_unique_event_ids,
)
from segment_pipeline.storage import warehouse

DAY = date(2026, 1, 5)
LOW, HIGH = datetime(1970, 1, 1), datetime(2026, 1, 6)

FAULTS = {
    "clean": [],
    "nulls_and_blanks": [
        "UPDATE analytics.event_snapshots SET user_id = NULL WHERE event_id IN ('e3', 'e40')",
        "UPDATE analytics.event_snapshots SET event_name = '  ' WHERE event_id = 'e7'",
        "UPDATE analytics.event_snapshots SET user_id = '\t' WHERE event_id = 'e8'",
        "UPDATE analytics.event_snapshots SET properties = NULL WHERE event_id = 'e9'",
    ],
    "times": [
        "UPDATE analytics.event_snapshots SET ts = TIMESTAMP '2026-03-05' WHERE event_id IN ('e1', 'e2')",
        "UPDATE analytics.event_snapshots SET ts = TIMESTAMP '1969-12-31 23:59:59' WHERE event_id = 'e5'",
        "UPDATE analytics.event_snapshots SET ts = TIMESTAMP '2026-01-06' WHERE event_id = 'e6'",
    ],
    "duplicates": [
        # a repeat inside the day's load, and one of an id loaded on an earlier day
        "INSERT INTO analytics.event_snapshots SELECT * FROM analytics.event_snapshots WHERE event_id = 'e4'",
        "INSERT INTO analytics.event_snapshots SELECT event_id, user_id, event_name, ts, properties, DATE '2026-01-01' "
        "FROM analytics.event_snapshots WHERE event_id = 'e11'",
    ],
}


def build(path, faults):
    con_cm = warehouse.connect(path)
    con = con_cm.__enter__()
    # The contract's columns without their NOT NULLs: the suites exist for a table that broke them.
    con.execute("""CREATE TABLE analytics.event_snapshots (event_id VARCHAR, user_id VARCHAR, event_name VARCHAR,
                   ts TIMESTAMP, properties JSON, snapshot_date DATE)""")
    con.execute(
        """INSERT INTO analytics.event_snapshots
           SELECT 'e' || i, 'u' || (i % 7), 'login', TIMESTAMP '2026-01-05' + i * INTERVAL 1 MINUTE,
                  '{"n": 1}', DATE '2026-01-05' FROM range(60) t(i)"""
    )
    for statement in faults:
        con.execute(statement)
    return con_cm, con


def verdicts(outcome):
    return (
        outcome.success,
        outcome.evaluated_rows,
        [(o.expectation, o.success, o.unexpected_count) for o in outcome.outcomes],
    )


# Earlier days' rows: none (the slice is the table, as on a first night: ids grouped without
# probing) or more than the slice (as on later nights: the slice's ids probed first).
@pytest.mark.parametrize("history_rows", [0, 200])
@pytest.mark.parametrize("fault", FAULTS)
def test_counts_and_verdicts_equal_the_suites_on_the_whole_slice(tmp_path, fault, history_rows):
    cm, con = build(tmp_path / "w.duckdb", FAULTS[fault])
    try:
        con.execute(
            """INSERT INTO analytics.event_snapshots
               SELECT 'h' || i, 'u' || (i % 5), 'login', TIMESTAMP '2025-12-31' + i * INTERVAL 1 MINUTE,
                      '{"n": 2}', DATE '2026-01-01' FROM range(?) t(i)""",
            [history_rows],
        )
        whole = con.execute(
            """SELECT s.event_id, s.user_id, s.event_name, s.ts, CAST(s.properties AS VARCHAR) AS properties,
                      (SELECT count(*) FROM analytics.event_snapshots o WHERE o.event_id = s.event_id) AS id_occurrences
               FROM analytics.event_snapshots s WHERE snapshot_date = ?""",
            [DAY],
        ).df()
        required, timestamps, unique = check_loaded_slice(con, DAY, DAY, min_ts=LOW, max_ts_exclusive=HIGH)
    finally:
        cm.__exit__(None, None, None)
    assert verdicts(required) == verdicts(check_required_columns(whole))
    assert verdicts(timestamps) == verdicts(check_timestamp_range(whole, min_ts=LOW, max_ts_exclusive=HIGH))
    assert verdicts(unique) == verdicts(check_unique_event_ids(whole))
    assert (fault == "clean") == all(o.success for o in (required, timestamps, unique))


def test_failures_name_offending_rows_and_examples_stay_few(tmp_path):
    many_nulls = [
        "UPDATE analytics.event_snapshots SET user_id = NULL WHERE event_id <> 'e0'",
        "UPDATE analytics.event_snapshots SET ts = TIMESTAMP '2026-03-05' WHERE event_id = 'e0'",
    ]
    cm, con = build(tmp_path / "w.duckdb", many_nulls)
    try:
        required, timestamps, _ = check_loaded_slice(con, DAY, DAY, min_ts=LOW, max_ts_exclusive=HIGH)
    finally:
        cm.__exit__(None, None, None)
    [null_user] = list(required.failed())
    assert null_user.unexpected_count == 59 and "59 of 60 rows" in required.summary()
    assert 0 < len(null_user.unexpected_examples) <= 5
    assert "event_id=e0" in timestamps.summary() and "2026-03-05" in timestamps.summary()


def test_works_on_a_read_only_connection(tmp_path):
    cm, _ = build(tmp_path / "w.duckdb", FAULTS["duplicates"])
    cm.__exit__(None, None, None)
    with warehouse.connect(tmp_path / "w.duckdb", read_only=True) as con:
        _, _, unique = check_loaded_slice(con, DAY, DAY, min_ts=LOW, max_ts_exclusive=HIGH)
    assert not unique.success and "event_id=e4" in unique.summary() and "event_id=e11" in unique.summary()


def test_data_docs_show_the_failed_rule_and_its_rows(tmp_path):
    cm, con = build(tmp_path / "w.duckdb", FAULTS["nulls_and_blanks"])
    try:
        required, _, _ = check_loaded_slice(
            con, DAY, DAY, min_ts=LOW, max_ts_exclusive=HIGH, docs_dir=tmp_path / "data_docs"
        )
    finally:
        cm.__exit__(None, None, None)
    assert not required.success
    index = (tmp_path / "data_docs" / "index.html").read_text()
    assert "snapshot_required_columns" in index and "snapshot_unique_event_ids" in index
    [page] = [
        p for p in (tmp_path / "data_docs" / "validations").rglob("*.html") if "snapshot_required_columns" in str(p)
    ]
    text = page.read_text()
    assert "every event has its user_id" in text and "2 unexpected values found" in text  # the rule and its count
