"""The Spark engine: the compiled SQL (Spark dialect, translated) over Parquet copies of the
warehouse's events and profiles, results back into DuckDB as Arrow.

The copies live in the lake folder (``SEGMENT_PIPELINE_LAKE_DIR``, default ``lake/`` next to
the warehouse), one folder per state of the warehouse, written by DuckDB and read by
Spark; a cluster behind ``SPARK_REMOTE`` must see that folder at the same path.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from segment_pipeline.config.segments import SegmentDefinition
from segment_pipeline.engines.spark_sql import to_spark_steps
from segment_pipeline.rules.compiler import EVENTS, PROFILES, compile_past_segment_chunks, read_profile_columns
from segment_pipeline.rules.dialect import SPARK
from segment_pipeline.storage.warehouse import one_row

EVENTS_VIEW = "sp_event_snapshots"
PROFILES_VIEW = "sp_profiles"
_RESULT_VIEW = "_spark_result"


def _literal(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


class SparkEngine:
    name = "spark"
    dialect = SPARK

    def __init__(self, session: Any, lake_dir: Path):
        self.session = session
        self.lake_dir = Path(lake_dir)
        self._synced: tuple | None = None
        self._copy: Path | None = None

    def sync(self, con: duckdb.DuckDBPyConnection) -> bool:
        """Copy the events (and profiles) to Parquet for Spark when the warehouse changed
        since the last copy; True when it copied."""
        has_profiles = read_profile_columns(con) is not None
        # A fingerprint of the content: a re-loaded day can keep the count and the newest time.
        state = one_row(
            con,
            f"SELECT count(*), sum(hash(event_id, user_id, event_name, ts, CAST(properties AS VARCHAR))) FROM {EVENTS}",
        )
        if has_profiles:
            state += one_row(con, f"SELECT count(*), hash(list(p ORDER BY user_id)) FROM {PROFILES} p")
        if state == self._synced:
            return False
        copy = self.lake_dir / f"snapshot-{uuid.uuid4().hex[:12]}"
        copy.mkdir(parents=True)
        # properties as JSON text (Spark parses it into VARIANT per test); ts stays a naive
        # TIMESTAMP, which Spark reads as TIMESTAMP_NTZ.
        con.execute(
            f"""COPY (SELECT event_id, user_id, event_name, ts, CAST(properties AS VARCHAR) AS properties FROM {EVENTS})
                TO {_literal(copy / "event_snapshots")} (FORMAT parquet, PER_THREAD_OUTPUT true)"""
        )
        reader = self.session.read
        reader.parquet(str(copy / "event_snapshots")).createOrReplaceTempView(EVENTS_VIEW)
        if has_profiles:
            con.execute(f"COPY (SELECT * FROM {PROFILES}) TO {_literal(copy / 'profiles.parquet')} (FORMAT parquet)")
            reader.parquet(str(copy / "profiles.parquet")).createOrReplaceTempView(PROFILES_VIEW)
        else:
            self.session.catalog.dropTempView(PROFILES_VIEW)
        if self._copy is not None:
            shutil.rmtree(self._copy, ignore_errors=True)
        self._synced, self._copy = state, copy
        return True

    def query(self, con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any] | None = None) -> pa.Table:
        """SQL written for DuckDB (Spark dialect where the two differ) run on Spark over the
        warehouse's events and profiles, as Arrow."""
        self.sync(con)
        *steps, final = to_spark_steps(sql, params, tables={EVENTS: EVENTS_VIEW, PROFILES: PROFILES_VIEW})
        for step in steps:
            # Computed once, as DuckDB's MATERIALIZED CTE; the checkpoint also cuts the plan short.
            frame = self.session.sql(step.sql, args=step.args).localCheckpoint()
            frame.createOrReplaceTempView(step.view)
        return self.session.sql(final.sql, args=final.args).toArrow()

    def insert_segment_members(
        self,
        con: duckdb.DuckDBPyConnection,
        target: str,
        segments: Sequence[SegmentDefinition],
        as_of: date,
        *,
        profile_columns: Mapping[str, str] | None,
        include_all_users: bool,
    ) -> None:
        """As ``DuckDBEngine.insert_segment_members``, computed on Spark."""
        queries = compile_past_segment_chunks(
            segments,
            as_of=as_of,
            profile_columns=profile_columns,
            include_all_users=include_all_users,
            dialect=SPARK,
        )
        for query in queries:
            rows = self.query(con, query.sql, query.params)
            con.register(_RESULT_VIEW, rows)
            try:
                con.execute(f"INSERT INTO {target} SELECT segment_name, user_id FROM {_RESULT_VIEW}")
            finally:
                con.unregister(_RESULT_VIEW)

    def close(self) -> None:
        if self._copy is not None:
            shutil.rmtree(self._copy, ignore_errors=True)
            self._copy, self._synced = None, None
