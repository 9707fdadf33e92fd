"""The compute engine of the heavy read-only SQL (contract section 8), from SEGMENT_PIPELINE_ENGINE."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg

from segment_pipeline.engines import Engine, open_engine
from segment_pipeline.settings import load_settings


class EngineResource(dg.ConfigurableResource):
    """``duckdb`` (the default: the warehouse connection itself) or ``spark``: a Spark
    session through the PySpark client, on the Spark Connect cluster ``spark_remote``
    (SPARK_REMOTE) or local, reading Parquet copies of the events under ``lake_dir``.

    A session is opened by the step that asks for it, not for every step of a run: its
    start costs 10-40 s and most steps never need it."""

    kind: str = "duckdb"
    spark_remote: str | None = None
    lake_dir: str | None = None

    @contextmanager
    def open(self, warehouse_path: str) -> Iterator[Engine]:
        lake = Path(self.lake_dir) if self.lake_dir else Path(warehouse_path).parent / "lake"
        with open_engine(self.kind, spark_remote=self.spark_remote, lake_dir=lake) as engine:
            yield engine


@dg.definitions
def resources() -> dg.Definitions:
    settings = load_settings()
    return dg.Definitions(
        resources={
            "engine": EngineResource(
                kind=settings.engine,
                spark_remote=settings.spark_remote,
                lake_dir=str(settings.lake_dir) if settings.lake_dir else None,
            )
        }
    )
