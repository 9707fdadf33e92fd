"""What every engine offers the pipeline: the day's past-segment members, and a query as Arrow."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any, Protocol

import duckdb
import pyarrow as pa

from segment_pipeline.config.segments import SegmentDefinition
from segment_pipeline.rules.dialect import DuckDBDialect


class Engine(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def dialect(self) -> DuckDBDialect: ...

    def insert_segment_members(
        self,
        con: duckdb.DuckDBPyConnection,
        target: str,
        segments: Sequence[SegmentDefinition],
        as_of: date,
        *,
        profile_columns: Mapping[str, str] | None,
        include_all_users: bool,
    ) -> None: ...

    def query(self, con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any] | None = None) -> pa.Table: ...
