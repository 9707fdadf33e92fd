"""Table definitions of the contract's output tables (section 7) and internal state.

Each writer calls ``ensure_tables`` for the tables it owns, so a fresh warehouse
needs no migration step.
"""

from __future__ import annotations

import duckdb

from segment_pipeline.storage.warehouse import ANALYTICS, STATE, table_ref

TABLE_DDL: dict[tuple[str, str], str] = {
    (ANALYTICS, "event_snapshots"): """
        event_id VARCHAR NOT NULL,
        user_id VARCHAR NOT NULL,
        event_name VARCHAR NOT NULL,
        ts TIMESTAMP NOT NULL,
        properties JSON NOT NULL,
        snapshot_date DATE NOT NULL
    """,
    (ANALYTICS, "rejected_events"): """
        snapshot_date DATE NOT NULL,
        source VARCHAR NOT NULL,
        reason VARCHAR NOT NULL,
        raw VARCHAR
    """,
    # Which source files were read, so a nightly run skips files it already took in whole.
    (STATE, "source_files"): """
        path VARCHAR PRIMARY KEY,
        size_bytes BIGINT NOT NULL,
        modified_ns BIGINT NOT NULL,
        max_ts TIMESTAMP,
        loaded_through TIMESTAMP NOT NULL
    """,
}


def ensure_tables(con: duckdb.DuckDBPyConnection, *tables: tuple[str, str]) -> None:
    for key in tables:
        schema, name = key
        con.execute(f"CREATE TABLE IF NOT EXISTS {table_ref(schema, name)} ({TABLE_DDL[key]})")
