"""Where the heavy read-only SQL runs (contract section 8): DuckDB, or Apache Spark.

An engine computes the day's past-segment members into a DuckDB table, and the goal
features (training sets, nightly scoring sets) as Arrow; the small stateful tables (tags,
overlaps, target groups, goal status, rollups, live outbox) stay in the DuckDB warehouse
whatever the engine. ``open_engine`` opens the one the settings name; ``using`` makes it
the one the goal code (which gets no engine argument through its callers) computes on.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

from segment_pipeline.engines.base import Engine
from segment_pipeline.engines.duckdb_engine import DUCKDB_ENGINE, DuckDBEngine

__all__ = ["DUCKDB_ENGINE", "DuckDBEngine", "Engine", "current_engine", "open_engine", "using"]

_CURRENT: ContextVar[Engine | None] = ContextVar("segment_pipeline_engine", default=None)


def current_engine() -> Engine:
    """The engine ``using`` set in this context; DuckDB when none was."""
    return _CURRENT.get() or DUCKDB_ENGINE


@contextmanager
def using(engine: Engine) -> Iterator[Engine]:
    """Within, goal features (and model training) compute on ``engine``."""
    token = _CURRENT.set(engine)
    try:
        yield engine
    finally:
        _CURRENT.reset(token)


@contextmanager
def open_engine(kind: str, *, spark_remote: str | None = None, lake_dir: Path) -> Iterator[Engine]:
    """The engine ``kind`` names (``SEGMENT_PIPELINE_ENGINE``). For Spark, a session on
    ``spark_remote`` (Spark Connect) or a local one, stopped afterwards, with its Parquet
    copies under ``lake_dir``; a session this opened is stopped afterwards."""
    if kind == "duckdb":
        yield DUCKDB_ENGINE
        return
    if kind != "spark":
        raise ValueError(f"unknown engine {kind!r}: duckdb or spark")
    from segment_pipeline.engines.spark_engine import SparkEngine
    from segment_pipeline.engines.spark_session import active_session, spark_session

    # A session opened elsewhere in this process (a notebook, a test) is used, not stopped.
    already_open = active_session()
    session = spark_session(spark_remote)
    engine = SparkEngine(session, lake_dir)
    try:
        yield engine
    finally:
        engine.close()
        if already_open is None:
            session.stop()
