"""Parquet copies of the analytics tables, for BI tools that read files rather than DuckDB."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from segment_pipeline.storage.warehouse import ANALYTICS, quote_ident


def export_tables(con: duckdb.DuckDBPyConnection, out_dir: Path) -> dict[str, int]:
    """Write every ``analytics`` table to ``out_dir/<table>.parquet``; rows written per table.

    Tables stream in record batches (a large snapshot never sits whole in memory) into
    a temporary file renamed into place, so a reader never sees half a file.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    names = [
        r[0]
        for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = ? ORDER BY 1", [ANALYTICS]
        ).fetchall()
    ]
    written = {}
    for name in names:
        target = out_dir / f"{name}.parquet"
        partial = out_dir / f".{name}.parquet.partial"
        reader = con.execute(f"SELECT * FROM {quote_ident(ANALYTICS)}.{quote_ident(name)}").fetch_record_batch(100_000)
        rows = 0
        with pq.ParquetWriter(partial, reader.schema) as writer:
            for batch in reader:
                writer.write_batch(batch)
                rows += batch.num_rows
        os.replace(partial, target)
        written[name] = rows
    return written
