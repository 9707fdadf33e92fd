"""The live store: the live sensor's own DuckDB file (outbox, entries, live tags, state).

The sensor never opens the warehouse. DuckDB lets one process hold a file read-write,
and a read-only reader cannot open it meanwhile, so every opening here is short: a
tick opens the store to evaluate, closes it before any HTTP call, and opens it again
briefly to record the answers. The nightly publish step copies the live tables into
its warehouse copy in one of the gaps (``live.publish.copy_live_tables``).

Ticks are serialized per store by an advisory file lock (``<store>.lock``): a tick
that finds it held skips, so overlapping ticks (a slow one still running when the next
is due, or two code servers) never send the same entry twice. The kernel drops the
lock when its holder dies, so a killed tick never blocks the next one.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from segment_pipeline.storage.connections import open_duckdb


def sql_string(text: str) -> str:
    """ATTACH takes no bound parameters: a path as an SQL string literal, quotes doubled."""
    return "'" + text.replace("'", "''") + "'"


@contextmanager
def connect(
    path: Path | str, *, busy_retries: int = 0, busy_wait_s: float = 0.2
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the live store read-write (created with its schemas if new).

    ``busy_retries``: how many more times to try, ``busy_wait_s`` apart (doubling), while
    another process holds the file (the nightly copy, a re-drive); then
    ``duckdb.IOException`` propagates.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(busy_retries + 1):
        try:
            con = open_duckdb(path)
            break
        except duckdb.IOException:
            if attempt == busy_retries:
                raise
            time.sleep(busy_wait_s * 2**attempt)
    try:
        con.execute("CREATE SCHEMA IF NOT EXISTS analytics")
        con.execute("CREATE SCHEMA IF NOT EXISTS pipeline_state")
        yield con
    finally:
        con.close()


@contextmanager
def tick_lock(path: Path | str) -> Iterator[bool]:
    """Hold ``<store>.lock`` for one tick; yields False (held by another tick) without waiting."""
    lock_path = Path(f"{path}.lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
