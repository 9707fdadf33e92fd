"""The snapshot suites run by Great Expectations on the warehouse, over the rows a run loaded.

GX's SQL datasource reads a query asset (the slice, with each event id's occurrences in the
whole table) on the caller's DuckDB connection: counts and verdicts are computed in DuckDB,
and only a few offending rows per rule (``SAMPLED_ROWS``) reach Python. Copying the slice
into pandas instead cost 130 s and 4.8 GB at 10M events.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import duckdb

from segment_pipeline.quality.gx_runner import SuiteOutcome, gx_expectations
from segment_pipeline.quality.gx_sql import run_query_suites
from segment_pipeline.quality.snapshot_suite import (
    NAMED_COLUMNS,
    NOT_BLANK,
    REQUIRED_COLUMNS_SUITE,
    TIMESTAMP_RANGE_SUITE,
    UNIQUE_IDS_SUITE,
    required_columns_expectations,
    timestamp_range_expectations,
    unique_ids_expectations,
)
from segment_pipeline.storage.warehouse import one_row

# The run's days reach the query as session variables, bound on each of GX's connections.
# The rules only ask whether an event has properties: a marker stands for the text, which would
# be most of the batch's bytes (a first night's slice is the whole history). Whether a named
# column is blank is computed here, once a row: GX runs each rule's query twice (count, rows).
_BLANK_FLAGS = "".join(
    f", {c} IS NOT NULL AND NOT regexp_matches({c}, '{NOT_BLANK}') AS {c}_blank" for c in NAMED_COLUMNS
)
_LOADED = f"""
SELECT event_id, user_id, event_name, ts, CASE WHEN properties IS NOT NULL THEN '{{...}}' END AS properties
       {_BLANK_FLAGS}
FROM analytics.event_snapshots
WHERE snapshot_date BETWEEN getvariable('sp_quality_first') AND getvariable('sp_quality_last')
"""


# GX takes a query asset that starts with SELECT (no WITH). Ids of the slice found more than
# once in the whole table are the only rows whose occurrences need a count across the table;
# the same count restricted to the slice answers the in-slice uniqueness rule, which GX would
# otherwise check with a window over every row of the slice (7 of the step's 16 CPU seconds on
# a first night of 10M events). When the slice is most of the table (a first night), every id
# is grouped without first probing it against the slice's ids: the same rows, a pass less.
def _slice_sql(*, probe_slice_ids: bool) -> str:
    probe = f"WHERE event_id IN (SELECT event_id FROM ({_LOADED}))" if probe_slice_ids else ""
    return f"""
SELECT loaded.*, coalesce(repeated.id_occurrences, 1) AS id_occurrences,
       coalesce(repeated.slice_occurrences, 1) AS slice_occurrences
FROM ({_LOADED}) loaded
LEFT JOIN (
    SELECT event_id, count(*) AS id_occurrences,
           count(*) FILTER (WHERE snapshot_date BETWEEN getvariable('sp_quality_first')
                                                    AND getvariable('sp_quality_last')) AS slice_occurrences
    FROM analytics.event_snapshots
    {probe}
    GROUP BY event_id HAVING count(*) > 1
) repeated USING (event_id)
"""


def _slice_query(con: duckdb.DuckDBPyConnection, first: date, last: date) -> str:
    in_slice, rows = one_row(
        con,
        "SELECT count(*) FILTER (WHERE snapshot_date BETWEEN ? AND ?), count(*) FROM analytics.event_snapshots",
        [first, last],
    )
    return _slice_sql(probe_slice_ids=2 * in_slice <= rows)


def check_loaded_slice(
    con: duckdb.DuckDBPyConnection,
    first: date,
    last: date,
    *,
    min_ts: datetime,
    max_ts_exclusive: datetime,
    docs_dir: Path | None = None,
) -> tuple[SuiteOutcome, SuiteOutcome, SuiteOutcome]:
    """Required columns, timestamp range and unique ids of the rows loaded on days ``first..last``.

    With ``docs_dir``, GX's Data Docs of the three validations are written there.
    """
    outcomes = run_query_suites(
        con,
        _slice_query(con, first, last),
        {
            REQUIRED_COLUMNS_SUITE: [_in_sql(e) for e in required_columns_expectations()],
            TIMESTAMP_RANGE_SUITE: timestamp_range_expectations(min_ts=min_ts, max_ts_exclusive=max_ts_exclusive),
            UNIQUE_IDS_SUITE: [_in_sql(e) for e in unique_ids_expectations()],
        },
        variables={"sp_quality_first": first, "sp_quality_last": last},
        docs_dir=docs_dir,
    )
    return outcomes[REQUIRED_COLUMNS_SUITE], outcomes[TIMESTAMP_RANGE_SUITE], outcomes[UNIQUE_IDS_SUITE]


def _in_sql(expectation):
    """Rules GX checks slowly or not at all on DuckDB, as their queries of offending rows: the
    not-blank regex (GX has none for the dialect) and in-slice uniqueness (by the batch's count)."""
    kind, column = expectation.expectation_type, getattr(expectation, "column", None)
    if kind == "expect_column_values_to_match_regex":
        assert expectation.regex == NOT_BLANK, "only the not-blank rule is written as a query"
        assert column in NAMED_COLUMNS, "the batch flags blanks of the named columns only"
        offending, shown = f"{column}_blank", column
    elif kind == "expect_column_values_to_be_unique":
        assert column == "event_id", "the batch counts repeats of event_id only"
        offending, shown = "slice_occurrences > 1", "slice_occurrences"
    else:
        return expectation
    # The id, and the value an example shows (the repeat count for uniqueness).
    return gx_expectations().UnexpectedRowsExpectation(
        unexpected_rows_query=f"SELECT event_id, {shown} FROM {{batch}} WHERE {offending}",
        description=expectation.description,
        meta={"rule": kind, "column": column},
        result_format="COMPLETE",  # its offending rows, for the examples (GX fetches at most 200)
    )
