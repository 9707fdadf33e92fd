"""The DuckDB engine: the compiled queries run on the warehouse connection itself."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

import duckdb
import pyarrow as pa

from segment_pipeline.config.segments import SegmentDefinition
from segment_pipeline.rules.compiler import compile_past_segment_chunks
from segment_pipeline.rules.dialect import DUCKDB


class DuckDBEngine:
    name = "duckdb"
    dialect = DUCKDB

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
        """Append ``(segment_name, user_id)`` rows of every past segment as of ``as_of`` to
        ``target`` (a table reference from code), All Users too when asked."""
        queries = compile_past_segment_chunks(
            segments, as_of=as_of, profile_columns=profile_columns, include_all_users=include_all_users
        )
        for query in queries:
            con.execute(f"INSERT INTO {target} {query.sql}", query.params)

    def query(self, con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any] | None = None) -> pa.Table:
        """DuckDB SQL over the warehouse's tables, as Arrow."""
        return con.execute(sql, params or {}).fetch_arrow_table()


DUCKDB_ENGINE = DuckDBEngine()
