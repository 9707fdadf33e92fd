"""The one way the project opens DuckDB: every connection gets the session settings queries assume.

DuckDB draws a progress bar on stdout for any query that runs over 2 s; in a process whose
stdout is read (a worker, a CLI piped to a file, a test) it corrupts the output, so it is
off in every connection. Times are UTC: no query depends on the machine's time zone.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

IN_MEMORY = ":memory:"


def open_duckdb(path: Path | str = IN_MEMORY, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """``duckdb.connect`` with the progress bar off and times in UTC (usable as a context manager)."""
    con = duckdb.connect(str(path), read_only=read_only)
    try:
        # Session settings: DuckDB refuses them in connect()'s config (it takes global options only).
        con.execute("SET enable_progress_bar = false")
        con.execute("SET TimeZone = 'UTC'")
    except BaseException:
        con.close()
        raise
    return con
