"""What every engine offers the pipeline: the day's past-segment members, a query as Arrow,
and the temp tables of a multi-step computation (goal features) on the engine's side."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import date
from typing import Any, Protocol

import duckdb
import pyarrow as pa

from segment_pipeline.config.segments import SegmentDefinition
from segment_pipeline.rules.dialect import DuckDBDialect

# Parameters as DuckDB takes them: a dict for ``$name``, a list for ``?`` (DuckDB engine only).
Params = Mapping[str, Any] | Sequence[Any] | None


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

    def query(self, con: duckdb.DuckDBPyConnection, sql: str, params: Params = None) -> pa.Table: ...

    # The temp tables of a computation: named by code, read by later SQL of the same engine.
    def materialize(self, con: duckdb.DuckDBPyConnection, name: str, sql: str, params: Params = None) -> None: ...

    def view(self, con: duckdb.DuckDBPyConnection, name: str, sql: str, params: Params = None) -> None: ...

    def append(self, con: duckdb.DuckDBPyConnection, name: str, sql: str, params: Params = None) -> None: ...

    def create(self, con: duckdb.DuckDBPyConnection, name: str, columns: str, *, replace: bool = True) -> None: ...

    def upload(self, con: duckdb.DuckDBPyConnection, name: str, rows: pa.Table) -> None: ...

    def from_warehouse(
        self, con: duckdb.DuckDBPyConnection, name: str, sql: str, params: Params = None, *, append: bool = False
    ) -> None: ...

    def drop(self, con: duckdb.DuckDBPyConnection, name: str) -> None: ...

    def pinned(self, con: duckdb.DuckDBPyConnection) -> AbstractContextManager[None]: ...
