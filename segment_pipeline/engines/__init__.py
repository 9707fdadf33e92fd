"""Where the heavy read-only SQL runs (contract section 8): DuckDB, or Apache Spark.

An engine computes the day's past-segment members into a DuckDB table; the small
stateful tables (tags, overlaps, target groups, goal status, live outbox) stay in the
DuckDB warehouse whatever the engine. ``open_engine`` picks one from the settings.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from segment_pipeline.engines.duckdb_engine import DUCKDB_ENGINE, DuckDBEngine
from segment_pipeline.settings import Settings

__all__ = ["DUCKDB_ENGINE", "DuckDBEngine", "open_engine"]


@contextmanager
def open_engine(settings: Settings) -> Iterator[DuckDBEngine]:
    """The engine ``SEGMENT_PIPELINE_ENGINE`` names; a Spark session is stopped afterwards
    when this opened it locally (a Spark Connect session is only detached)."""
    if settings.engine == "duckdb":
        yield DUCKDB_ENGINE
        return
    from segment_pipeline.engines.spark_engine import SparkEngine
    from segment_pipeline.engines.spark_session import spark_session

    session = spark_session(settings.spark_remote)
    engine = SparkEngine(session, settings.lake_dir or settings.warehouse.parent / "lake")
    try:
        yield engine
    finally:
        engine.close()
        session.stop()
