"""DuckDB access: one file holds every table; writes happen in transactions.

DuckDB allows one writing process at a time, so the Dagster job runs its steps in one
process on a private copy that ``storage/publish.py`` publishes when the run succeeds.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import duckdb

from segment_pipeline.settings import memory_limit as configured_memory_limit
from segment_pipeline.storage.connections import open_duckdb

ANALYTICS = "analytics"
STATE = "pipeline_state"


def quote_ident(name: str) -> str:
    """Quote an identifier (table, column) so any user-given name is inert."""
    return '"' + name.replace('"', '""') + '"'


def table_ref(schema: str, table: str) -> str:
    return f"{quote_ident(schema)}.{quote_ident(table)}"


def midnight(day: date) -> datetime:
    """The first instant of ``day``: the warehouse keeps naive UTC timestamps."""
    return datetime.combine(day, time())


@contextmanager
def connect(
    path: Path | str, *, read_only: bool = False, memory_limit: str | None = None
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the warehouse with the settings every query here assumes (UTC times, bounded memory).

    ``memory_limit`` defaults to SEGMENT_PIPELINE_MEMORY_LIMIT; past it DuckDB spills to
    ``temp_directory(path)`` instead of taking the machine's RAM.
    """
    path = Path(path)
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    con = open_duckdb(path, read_only=read_only)
    try:
        bound_memory(con, path, memory_limit)
        if not read_only:
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(ANALYTICS)}")
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(STATE)}")
        yield con
    finally:
        con.close()


def bound_memory(con: duckdb.DuckDBPyConnection, path: Path, memory_limit: str | None = None) -> None:
    """Cap DuckDB's memory (it would take 80% of RAM) and spill next to the warehouse past the cap."""
    limit = memory_limit or configured_memory_limit()
    con.execute("SET memory_limit = ?", [limit])
    # Kept as given: DuckDB reports the limit rounded ('3.3 GiB'), so it could not be set back exactly.
    con.execute("SET VARIABLE sp_memory_limit = ?", [limit])
    con.execute("SET temp_directory = ?", [str(temp_directory(path))])


RELEASE_TARGET = "256MB"


def release_cached_memory(con: duckdb.DuckDBPyConnection) -> None:
    """Hand DuckDB's cached blocks back before memory-hungry work outside it (a model fit).

    DuckDB keeps the blocks it has read cached up to its memory_limit; lowering the limit
    evicts them, and the limit is then set back. When DuckDB cannot get under the lower limit,
    nothing changes."""
    limit = scalar(con, "SELECT coalesce(getvariable('sp_memory_limit'), current_setting('memory_limit'))")
    try:
        con.execute("SET memory_limit = ?", [RELEASE_TARGET])
    except duckdb.Error:
        pass
    finally:
        con.execute("SET memory_limit = ?", [limit])


def temp_directory(path: Path) -> Path:
    """Where a connection to ``path`` spills: next to the file, on the disk that holds the warehouse."""
    return path.with_name(path.name + ".tmp")


def data_docs_directory(path: Path | str) -> Path:
    """Where Great Expectations writes its Data Docs of the warehouse's checks: next to the file."""
    return Path(path).parent / "data_docs"


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """All or nothing: an exception (or a crash) leaves the warehouse as it was."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def table_exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    row = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
        [schema, table],
    ).fetchone()
    return bool(row and row[0])


def one_row(con: duckdb.DuckDBPyConnection, sql: str, parameters: list | dict | None = None) -> tuple[Any, ...]:
    """The row of a query that always returns one (an aggregate without GROUP BY)."""
    row = con.execute(sql, parameters).fetchone()
    if row is None:
        raise LookupError(f"expected one row from: {sql}")
    return row


def scalar(con: duckdb.DuckDBPyConnection, sql: str, parameters: list | dict | None = None) -> Any:
    """The one value of a query that always returns one row (a count, a min, a max)."""
    return one_row(con, sql, parameters)[0]


def attached_tables(con: duckdb.DuckDBPyConnection, database: str) -> set[str]:
    """``schema.table`` of every table in an attached database."""
    rows = con.execute(
        "SELECT schema_name || '.' || table_name FROM duckdb_tables() WHERE database_name = ?", [database]
    ).fetchall()
    return {row[0] for row in rows}
