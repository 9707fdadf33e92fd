"""The closing summary of a night, in a few plain lines for the console and the run log."""

from __future__ import annotations

import textwrap

import duckdb

from segment_pipeline.reports.build import NightReports, standing_sentences
from segment_pipeline.storage.tables import TABLES
from segment_pipeline.storage.warehouse import ANALYTICS, scalar, table_exists, table_ref


def table_rows(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Rows in each documented table that exists."""
    return {
        t.name: scalar(con, f"SELECT count(*) FROM {table_ref(ANALYTICS, t.name)}")
        for t in TABLES
        if table_exists(con, ANALYTICS, t.name)
    }


def night_summary(con: duckdb.DuckDBPyConnection, reports: NightReports) -> str:
    rows = ", ".join(f"{k} {v:,}" for k, v in table_rows(con).items())
    lines = [f"Night {reports.as_of} done. Tables now hold (rows):"]
    lines += textwrap.wrap(rows, width=110, initial_indent="  ", subsequent_indent="  ")
    for name, night in reports.nights.items():
        standing = standing_sentences(night)
        lines.append(f"  goal '{name}': {night.status}" + (f": {standing[0]}" if standing else f": {night.message}"))
    if not reports.nights:
        lines.append("  no goal has a status tonight")
    lines.append(f"Report: {reports.index}")
    return "\n".join(lines)
