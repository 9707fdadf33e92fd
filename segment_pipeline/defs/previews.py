"""Small Markdown previews of warehouse tables for asset metadata in the UI."""

from __future__ import annotations

import duckdb


def table_preview(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> str:
    cursor = con.execute(sql, params or [])
    columns = [d[0] for d in cursor.description]
    rows = cursor.fetchall()
    if not rows:
        return "_no rows_"

    def cell(value: object) -> str:
        text = "" if value is None else str(value)
        text = text if len(text) <= 80 else text[:77] + "..."
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def rows_table(columns: list[str], rows: list) -> str:
    """A Markdown table from Python rows."""
    if not rows:
        return "_no rows_"
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join("" if v is None else str(v).replace("|", "\\|") for v in row) + " |" for row in rows]
    return "\n".join(lines)
