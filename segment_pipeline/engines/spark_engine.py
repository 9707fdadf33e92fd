"""The Spark engine: the compiled SQL (Spark dialect, translated) over Parquet copies of the
warehouse's events and profiles, results back into DuckDB as Arrow.

The copies live in the lake folder (``SEGMENT_PIPELINE_LAKE_DIR``, default ``lake/`` next to
the warehouse), one folder per state of the warehouse, written by DuckDB and read by
Spark; a cluster behind ``SPARK_REMOTE`` must see that folder at the same path. Other
warehouse tables that a query names (``pipeline_state.daily_rollups``, a goal's
``pipeline_state.goal_days_<signature>``) are copied the same way when first read and
again when they change: DuckDB keeps them up to date, Spark reads them.

The temp tables of a multi-step computation (goal features) are Spark temp views of the
same name, checkpointed (computed once, as a DuckDB temp table is); small inputs that
live in DuckDB (a day's stored memberships, tonight's users) are read there and uploaded.
"""

from __future__ import annotations

import re
import shutil
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import sqlglot
from sqlglot import exp

from segment_pipeline.config.segments import SegmentDefinition
from segment_pipeline.engines.base import Params
from segment_pipeline.engines.spark_sql import UntranslatableSql, spark_ddl, to_spark_steps
from segment_pipeline.rules.compiler import EVENTS, PROFILES, compile_past_segment_chunks, read_profile_columns
from segment_pipeline.rules.dialect import SPARK
from segment_pipeline.storage.warehouse import one_row

EVENTS_VIEW = "sp_event_snapshots"
PROFILES_VIEW = "sp_profiles"
_RESULT_VIEW = "_spark_result"
# Warehouse tables copied to the lake when a query names them (EVENTS and PROFILES by sync).
_COPIED_SCHEMAS = ("pipeline_state", "analytics")


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
        self._tables: dict[str, tuple[tuple, Path]] = {}  # warehouse table: (fingerprint, copy)
        self._pinned: set[str] | None = None  # tables checked since pinned() began

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

    def sync_table(self, con: duckdb.DuckDBPyConnection, table: str) -> str:
        """The Spark view of the warehouse table ``table`` (``schema.name``), copied to the
        lake when it changed since the last copy."""
        schema, name = table.split(".", 1)
        view = f"sp_{schema}__{name}"
        if self._pinned is not None and table in self._pinned:
            return view
        state = one_row(con, f"SELECT count(*), sum(hash(t)) FROM {table} t")
        known = self._tables.get(table)
        if known is None or known[0] != state:
            copy = self.lake_dir / f"{table}-{uuid.uuid4().hex[:12]}.parquet"
            self.lake_dir.mkdir(parents=True, exist_ok=True)
            con.execute(f"COPY (SELECT * FROM {table}) TO {_literal(copy)} (FORMAT parquet)")
            self.session.read.parquet(str(copy)).createOrReplaceTempView(view)
            if known is not None:
                known[1].unlink(missing_ok=True)
            self._tables[table] = (state, copy)
        if self._pinned is not None:
            self._pinned.add(table)
        return view

    @contextmanager
    def pinned(self, con: duckdb.DuckDBPyConnection) -> Iterator[None]:
        """Within, the warehouse tables are checked for changes once, not at every query:
        a computation of many steps that does not change them (goal features) reads one state."""
        outer = self._pinned
        if outer is None:
            self._pinned = set()
        try:
            yield
        finally:
            self._pinned = outer

    def _renames(self, con: duckdb.DuckDBPyConnection, sql: str) -> dict[str, str]:
        """The Spark views of the warehouse tables ``sql`` reads, each brought up to date."""
        if self._pinned is None or "\x00events" not in self._pinned:
            self.sync(con)
            if self._pinned is not None:
                self._pinned.add("\x00events")
        renames = {EVENTS: EVENTS_VIEW, PROFILES: PROFILES_VIEW}
        for table in sqlglot.parse_one(sql, read="duckdb").find_all(exp.Table):
            name = ".".join(part.name for part in table.parts)
            if name not in renames and table.db in _COPIED_SCHEMAS and not table.catalog:
                renames[name] = self.sync_table(con, name)
        return renames

    def _frame(self, con: duckdb.DuckDBPyConnection, sql: str, params: Params) -> Any:
        if params is not None and not isinstance(params, Mapping):
            raise UntranslatableSql("positional parameters: the Spark engine takes named ones ($name)")
        *steps, final = to_spark_steps(sql, dict(params or {}), tables=self._renames(con, sql))
        for step in steps:
            # Computed once, as DuckDB's MATERIALIZED CTE; the checkpoint also cuts the plan short.
            frame = self.session.sql(step.sql, args=step.args).localCheckpoint()
            frame.createOrReplaceTempView(step.view)
        return self.session.sql(final.sql, args=final.args)

    def query(self, con: duckdb.DuckDBPyConnection, sql: str, params: Params = None) -> pa.Table:
        """SQL written for DuckDB (Spark dialect where the two differ) run on Spark over the
        warehouse's events and profiles, as Arrow."""
        return self._frame(con, sql, params).toArrow()

    def materialize(self, con: duckdb.DuckDBPyConnection, name: str, sql: str, params: Params = None) -> None:
        """A temp view ``name`` computed once (checkpointed), as DuckDB's temp table."""
        self._frame(con, sql, params).localCheckpoint().createOrReplaceTempView(_name(name))

    def view(self, con: duckdb.DuckDBPyConnection, name: str, sql: str, params: Params = None) -> None:
        """As ``materialize``: the steps after a view (a population's events) read it several
        times, and a checkpoint spares each of them the scan of the lake copy."""
        self.materialize(con, name, sql, params)

    def append(self, con: duckdb.DuckDBPyConnection, name: str, sql: str, params: Params = None) -> None:
        """Rows of ``sql`` added to the temp view ``name``, by position, as INSERT INTO does."""
        self._append(name, self._frame(con, sql, params))

    def _append(self, name: str, new: Any) -> None:
        old = self.session.table(_name(name))
        if len(new.columns) != len(old.columns):
            raise UntranslatableSql(f"{len(new.columns)} columns appended to {name}, which has {len(old.columns)}")
        renamed = new.toDF(*old.columns)
        typed = renamed.select(*[renamed[field.name].cast(field.dataType) for field in old.schema.fields])
        # The union checkpointed as a whole: a view of a union of two checkpoints broke Spark
        # 4.3's optimizer (constraint propagation through Union: "key not found: user_id#481").
        old.union(typed).localCheckpoint().createOrReplaceTempView(_name(name))

    def create(self, con: duckdb.DuckDBPyConnection, name: str, columns: str, *, replace: bool = True) -> None:
        """An empty temp view ``name`` of ``columns`` (DuckDB column definitions)."""
        if not replace and self.session.catalog.tableExists(_name(name)):
            return
        self.session.createDataFrame([], schema=spark_ddl(columns)).createOrReplaceTempView(_name(name))

    def upload(self, con: duckdb.DuckDBPyConnection, name: str, rows: pa.Table) -> None:
        """Local rows (Arrow) as the temp view ``name``."""
        self._upload(rows).createOrReplaceTempView(_name(name))

    def _upload(self, rows: pa.Table) -> Any:
        if rows.num_rows == 0:
            columns = ", ".join(f"{quote_spark(f.name)} {_arrow_ddl(f.type)}" for f in rows.schema)
            return self.session.createDataFrame([], schema=columns)
        return self.session.createDataFrame(rows)

    def from_warehouse(
        self, con: duckdb.DuckDBPyConnection, name: str, sql: str, params: Params = None, *, append: bool = False
    ) -> None:
        """DuckDB SQL over the warehouse's state (a day's stored memberships, tonight's users):
        computed there, its rows uploaded as (or appended to) the temp view ``name``."""
        rows = con.execute(sql, params or {}).fetch_arrow_table()
        if append:
            self._append(name, self._upload(rows))
        else:
            self.upload(con, name, rows)

    def drop(self, con: duckdb.DuckDBPyConnection, name: str) -> None:
        self.session.catalog.dropTempView(_name(name))

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
        for _, copy in self._tables.values():
            copy.unlink(missing_ok=True)
        self._tables.clear()


def _name(name: str) -> str:
    """A temp table's name from code: a plain identifier (``_gf_pop``, ``temp._gf_pop``)."""
    bare = name.removeprefix("temp.")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", bare):
        raise ValueError(f"not a temp table name: {name!r}")
    return bare


def quote_spark(identifier: str) -> str:
    return "`" + identifier.replace("`", "``") + "`"


def _arrow_ddl(kind: pa.DataType) -> str:
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return "STRING"
    if pa.types.is_date32(kind):
        return "DATE"
    if pa.types.is_int32(kind):
        return "INT"
    if pa.types.is_int64(kind):
        return "BIGINT"
    if pa.types.is_float64(kind):
        return "DOUBLE"
    if pa.types.is_timestamp(kind) and kind.tz is None:
        return "TIMESTAMP_NTZ"
    raise UntranslatableSql(f"no Spark column type for an empty upload of {kind}")
