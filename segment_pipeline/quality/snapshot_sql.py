"""The snapshot suites on the rows a run loaded, counted in the warehouse.

Copying every loaded row into pandas cost 130 s and 4.8 GB at 10M events. Here DuckDB
counts each expectation's offending rows over the slice, and only a few offending rows
per rule (``EXAMPLE_ROWS``) reach Python, where the Great Expectations suites of
``snapshot_suite`` run on them for the verdict's wording and examples. The counts, the
verdicts and ``evaluated_rows`` are then the warehouse's, over the whole slice.

GX could run on DuckDB itself through SQLAlchemy (``duckdb_engine``), but its SQL
execution engine issues one query per metric and expectation, and its unexpected-row
examples need an index column: the aggregates below are one pass per suite.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime

import duckdb

from segment_pipeline.quality.gx_runner import MAX_EXAMPLES, SuiteOutcome
from segment_pipeline.quality.snapshot_suite import (
    NOT_BLANK,
    REQUIRED_COLUMNS,
    check_required_columns,
    check_timestamp_range,
    check_unique_event_ids,
)
from segment_pipeline.storage.warehouse import one_row

# Offending rows fetched per rule: enough for MAX_EXAMPLES distinct values after repeats.
EXAMPLE_ROWS = 4 * MAX_EXAMPLES

_SLICE = """
CREATE OR REPLACE TEMP VIEW _quality_slice AS
SELECT event_id, user_id, event_name, ts, CAST(properties AS VARCHAR) AS properties
FROM analytics.event_snapshots
WHERE snapshot_date BETWEEN getvariable('sp_quality_first') AND getvariable('sp_quality_last')
"""

# Ids of the slice found more than once in the whole table: the only rows the uniqueness
# suite can fail on, so the only ones that need a count across the table.
_REPEATED_IDS = """
CREATE OR REPLACE TEMP TABLE _quality_repeats AS
SELECT event_id, count(*) AS id_occurrences FROM analytics.event_snapshots
WHERE event_id IN (SELECT event_id FROM _quality_slice)
GROUP BY event_id HAVING count(*) > 1
"""


def _blank(column: str) -> str:
    return f"({column} IS NOT NULL AND NOT regexp_matches({column}, '{NOT_BLANK}'))"


def check_loaded_slice(
    con: duckdb.DuckDBPyConnection, first: date, last: date, *, min_ts: datetime, max_ts_exclusive: datetime
) -> tuple[SuiteOutcome, SuiteOutcome, SuiteOutcome]:
    """Required columns, timestamp range and unique ids of the rows loaded on days ``first..last``."""
    # A view takes no parameters; session variables carry the days into it.
    con.execute("SET VARIABLE sp_quality_first = ?", [first])
    con.execute("SET VARIABLE sp_quality_last = ?", [last])
    con.execute(_SLICE)
    con.execute(_REPEATED_IDS)
    nulls = {c: f"{c} IS NULL" for c in REQUIRED_COLUMNS}
    blanks = {c: _blank(c) for c in ("user_id", "event_name")}
    early, late = "ts < ?", "ts >= ?"
    counted = one_row(
        con,
        "SELECT count(*), "
        + ", ".join(f"count(*) FILTER (WHERE {p})" for p in (*nulls.values(), *blanks.values()))
        + f", count(*) FILTER (WHERE {early} OR {late}) FROM _quality_slice",
        [min_ts, max_ts_exclusive],
    )
    rows, *rule_counts, out_of_range = counted
    required_counts = dict(
        zip(
            [f"expect_column_values_to_not_be_null({c})" for c in nulls]
            + [f"expect_column_values_to_match_regex({c})" for c in blanks],
            rule_counts,
            strict=True,
        )
    )
    in_slice_repeats, elsewhere = one_row(
        con,
        """SELECT count(*) FILTER (WHERE in_slice > 1), count(*)
           FROM (SELECT s.event_id, count(*) OVER (PARTITION BY s.event_id) AS in_slice
                 FROM _quality_slice s JOIN _quality_repeats USING (event_id))""",
    )

    def examples(where: list[str], params: list | None = None):
        # One query per rule, so a flood of one fault leaves room for the examples of another.
        parts = [f"(SELECT * FROM _quality_slice WHERE {p} LIMIT {EXAMPLE_ROWS})" for p in where]
        return con.execute(" UNION ".join(parts), params or []).df()

    required = check_required_columns(examples([*nulls.values(), *blanks.values()]))
    timestamps = check_timestamp_range(
        examples([early, late], [min_ts, max_ts_exclusive]), min_ts=min_ts, max_ts_exclusive=max_ts_exclusive
    )
    dup_rows = con.execute(
        f"""SELECT s.event_id, r.id_occurrences FROM _quality_slice s JOIN _quality_repeats r USING (event_id)
            ORDER BY s.event_id LIMIT {EXAMPLE_ROWS}"""
    ).df()
    unique = check_unique_event_ids(dup_rows)
    con.execute("DROP TABLE _quality_repeats; DROP VIEW _quality_slice")
    return (
        _counted(required, rows, required_counts),
        _counted(timestamps, rows, {"expect_column_values_to_be_between(ts)": out_of_range}),
        _counted(
            unique,
            rows,
            {
                "expect_column_values_to_be_unique(event_id)": in_slice_repeats,
                "expect_column_values_to_be_between(id_occurrences)": elsewhere,
            },
        ),
    )


def _counted(outcome: SuiteOutcome, rows: int, counts: dict[str, int]) -> SuiteOutcome:
    """The suite's wording and examples from the sample, its counts and verdicts from the warehouse."""
    outcomes = [
        replace(o, unexpected_count=counts[o.expectation], success=counts[o.expectation] == 0)
        if o.expectation in counts
        else o
        for o in outcome.outcomes
    ]
    return replace(outcome, evaluated_rows=rows, outcomes=outcomes, success=all(o.success for o in outcomes))
