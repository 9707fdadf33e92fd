"""Move live state kept in the warehouse by earlier versions into a new live store, once.

    python -m segment_pipeline.live.adopt [--warehouse FILE] [--store FILE]

Earlier versions of the live_segments sensor kept their state (outbox, pending entries,
files read, live tags) in the warehouse. Stop the sensor, run this once, then turn the
sensor back on: it carries on where it was (no first-start watermark: the files it had
read stay read, pending and dead entries keep their place), and the nightly publish
keeps copying the same live rows into the warehouse. The warehouse is only read.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from segment_pipeline.live import engine, store
from segment_pipeline.live.outbox import ENTRIES, OUTBOX, utc_naive
from segment_pipeline.segments import history
from segment_pipeline.settings import SettingsError, load_settings
from segment_pipeline.storage.warehouse import attached_tables, scalar, transaction

_ALIAS = "sp_old_warehouse"
_STATE = [engine.EVENTS, engine.MATCHES, engine.PENDING, engine.ARMED, engine.CANCELLED, engine.FILES, ENTRIES]


class AdoptError(RuntimeError):
    """The live store is already in use, or the warehouse cannot be read."""


def adopt_warehouse_state(warehouse_path: Path | str, live_store_path: Path | str, *, now: datetime) -> dict[str, int]:
    """Copy the warehouse's live tables into an unused live store, in one transaction; returns
    rows copied per table. Pending entries start the retry schedule afresh; dead ones stay dead."""
    with store.connect(live_store_path) as con:
        engine.ensure_tables(con)
        history.ensure_tables(con)
        used = scalar(con, f"SELECT (SELECT count(*) FROM {engine.HISTORY}) + (SELECT count(*) FROM {OUTBOX})")
        if used:
            raise AdoptError(f"live store {live_store_path} is already in use; adopt only into a new live store")
        try:
            con.execute(f"ATTACH {store.sql_string(str(warehouse_path))} AS {_ALIAS} (READ_ONLY)")
        except duckdb.Error as exc:
            raise AdoptError(
                f"cannot read the warehouse {warehouse_path} (a run may hold it; try again): {exc}"
            ) from exc
        try:
            present = attached_tables(con, _ALIAS)
            copied: dict[str, int] = {}
            with transaction(con):
                for table in [t for t in _STATE if t in present]:
                    copied[table] = scalar(con, f"INSERT INTO {table} BY NAME SELECT * FROM {_ALIAS}.{table}")
                if OUTBOX in present:
                    columns = {
                        row[0]
                        for row in con.execute(
                            "SELECT column_name FROM duckdb_columns() WHERE database_name = ? "
                            "AND schema_name = 'pipeline_state' AND table_name = 'live_outbox'",
                            [_ALIAS],
                        ).fetchall()
                    }
                    # retry_step is new: pending rows get the whole schedule, dead ones stay dead
                    step = (
                        ""
                        if "retry_step" in columns
                        else ", CASE WHEN status = 'dead' THEN attempts ELSE 0 END AS retry_step"
                    )
                    copied[OUTBOX] = scalar(con, f"INSERT INTO {OUTBOX} BY NAME SELECT *{step} FROM {_ALIAS}.{OUTBOX}")
                if "analytics.segment_tags" in present:
                    past = (
                        f"SELECT segment_name FROM {_ALIAS}.pipeline_state.segment_evaluations"
                        if "pipeline_state.segment_evaluations" in present
                        else "SELECT NULL::VARCHAR WHERE false"
                    )
                    copied["analytics.segment_tags"] = scalar(
                        con,
                        f"""INSERT INTO analytics.segment_tags SELECT user_id, segment_name, created_at, removed_at
                            FROM {_ALIAS}.analytics.segment_tags WHERE segment_name NOT IN ({past})""",
                    )
                # started, without a watermark: the old sensor's files-read state carries on
                con.execute(f"INSERT INTO {engine.HISTORY} VALUES (?, NULL, NULL)", [utc_naive(now)])
        finally:
            con.execute(f"DETACH {_ALIAS}")
    return copied


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m segment_pipeline.live.adopt", description=(__doc__ or "").partition("\n")[0]
    )
    parser.add_argument("--warehouse", type=Path, help="default: SEGMENT_PIPELINE_WAREHOUSE")
    parser.add_argument("--store", type=Path, help="default: SEGMENT_PIPELINE_LIVE_STORE")
    args = parser.parse_args(argv)
    try:
        warehouse, live_store = args.warehouse, args.store
        if warehouse is None or live_store is None:
            settings = load_settings()
            warehouse, live_store = warehouse or settings.warehouse, live_store or settings.live_store
        if not warehouse.exists():
            raise AdoptError(f"no warehouse at {warehouse}; nothing to adopt")
        copied = adopt_warehouse_state(warehouse, live_store, now=datetime.now(UTC))
    except (SettingsError, AdoptError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    counts = ", ".join(f"{table} {rows}" for table, rows in copied.items()) or "no live tables in the warehouse"
    print(f"adopted into {live_store}: {counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
