"""The DuckDB engine: the compiled queries run on the warehouse connection itself."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date

import duckdb
import pyarrow as pa

from segment_pipeline.config.segments import SegmentDefinition
from segment_pipeline.engines.base import Params
from segment_pipeline.rules.compiler import compile_past_segment_chunks
from segment_pipeline.rules.dialect import DUCKDB

_UPLOAD_VIEW = "_engine_upload"


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

    def query(self, con: duckdb.DuckDBPyConnection, sql: str, params: Params = None) -> pa.Table:
        """DuckDB SQL over the warehouse's tables, as Arrow."""
        return con.execute(sql, params or {}).fetch_arrow_table()

    # Temp tables: ``name`` and ``columns`` come from code, never from users.
    def materialize(self, con: duckdb.DuckDBPyConnection, name: str, sql: str, params: Params = None) -> None:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS {sql}", params or {})

    def view(self, con: duckdb.DuckDBPyConnection, name: str, sql: str, params: Params = None) -> None:
        con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS {sql}", params or {})

    def append(self, con: duckdb.DuckDBPyConnection, name: str, sql: str, params: Params = None) -> None:
        con.execute(f"INSERT INTO {name} {sql}", params or {})

    def create(self, con: duckdb.DuckDBPyConnection, name: str, columns: str, *, replace: bool = True) -> None:
        verb = "CREATE OR REPLACE TEMP TABLE" if replace else "CREATE TEMP TABLE IF NOT EXISTS"
        con.execute(f"{verb} {name} ({columns})")

    def upload(self, con: duckdb.DuckDBPyConnection, name: str, rows: pa.Table) -> None:
        con.register(_UPLOAD_VIEW, rows)
        try:
            con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM {_UPLOAD_VIEW}")
        finally:
            con.unregister(_UPLOAD_VIEW)

    def from_warehouse(
        self, con: duckdb.DuckDBPyConnection, name: str, sql: str, params: Params = None, *, append: bool = False
    ) -> None:
        """A temp table of DuckDB SQL over the warehouse (its small state tables): here, the same thing."""
        if append:
            self.append(con, name, sql, params)
        else:
            self.materialize(con, name, sql, params)

    def drop(self, con: duckdb.DuckDBPyConnection, name: str) -> None:
        kind = con.execute(
            """SELECT 'VIEW' FROM duckdb_views() WHERE temporary AND view_name = $n
               UNION ALL SELECT 'TABLE' FROM duckdb_tables() WHERE temporary AND table_name = $n""",
            {"n": name},
        ).fetchone()
        if kind:
            con.execute(f"DROP {kind[0]} temp.{name}")

    @contextmanager
    def pinned(self, con: duckdb.DuckDBPyConnection) -> Iterator[None]:
        yield


DUCKDB_ENGINE = DuckDBEngine()
