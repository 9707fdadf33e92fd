"""Scratch tables of a multi-step goal computation on an engine: the users it is about,
and every ``_gf_*`` table dropped afterwards, whatever happens."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import duckdb
import polars as pl

from segment_pipeline.engines.base import Engine
from segment_pipeline.engines.duckdb_engine import DUCKDB_ENGINE

TEMP_TABLES = (
    "_gf_members",
    "_gf_pop",
    "_gf_uids",
    "_gf_utd",
    "_gf_ud",
    "_gf_first",
    "_gf_life",
    "_gf_labels",
    "_gf_users",
    "_gf_typemap",
    "_gf_anchors",
    "_gf_sampled",
    "_gf_kept",
    "_gf_flagmap",
)


@contextmanager
def temp_tables(con: duckdb.DuckDBPyConnection, engine: Engine = DUCKDB_ENGINE) -> Iterator[duckdb.DuckDBPyConnection]:
    """Drops the goal computations' temp tables afterwards, whatever happens; within, the engine
    reads one state of the warehouse (``Engine.pinned``)."""
    try:
        with engine.pinned(con):
            yield con
    finally:
        if engine is not DUCKDB_ENGINE:
            for name in ("_gf_pop_events", *TEMP_TABLES):
                engine.drop(con, name)
        con.execute("DROP VIEW IF EXISTS temp._gf_pop_events")
        for name in TEMP_TABLES:
            con.execute(f"DROP TABLE IF EXISTS temp.{name}")


def register_users(
    con: duckdb.DuckDBPyConnection,
    users: str | Sequence[str] | pl.Series | pl.DataFrame | None,
    engine: Engine = DUCKDB_ENGINE,
) -> bool:
    """``_gf_users(user_id)`` from a table reference (from code, a warehouse table), ids, or
    a frame with ``user_id``; False (no table) when ``users`` is None, meaning everyone."""
    if users is None:
        return False
    if isinstance(users, str):
        engine.from_warehouse(con, "_gf_users", f"SELECT DISTINCT CAST(user_id AS VARCHAR) AS user_id FROM {users}")
        return True
    if isinstance(users, pl.DataFrame):
        ids = users.get_column("user_id")
    else:
        ids = users if isinstance(users, pl.Series) else pl.Series("user_id", list(users), dtype=pl.String)
    frame = pl.DataFrame({"user_id": ids.cast(pl.String)}).unique()
    if engine is DUCKDB_ENGINE:
        con.register("_gf_users_view", frame)
        try:
            con.execute("CREATE OR REPLACE TEMP TABLE _gf_users AS SELECT user_id FROM _gf_users_view")
        finally:
            con.unregister("_gf_users_view")
    else:
        engine.upload(con, "_gf_users", frame.to_arrow())
    return True
