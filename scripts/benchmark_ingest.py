"""Benchmark: the event load, a first night and a next night that re-sends 10% and adds 10%.

N events are written half as Parquet, half as NDJSON (JSON-text properties); night 2
adds one Parquet file holding N/10 new events and N/10 re-sent ones (same content), so
it pays the duplicate check against the loaded snapshot.

    .venv/bin/python scripts/benchmark_ingest.py [--events 2000000]
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path

import polars as pl

from segment_pipeline.ingest.events import load_events
from segment_pipeline.ingest.sources import discover
from segment_pipeline.storage import warehouse


def events(n: int, prefix: str = "e", offset: int = 0) -> pl.DataFrame:
    start = datetime(2026, 1, 1)
    ids = range(offset, offset + n)
    return pl.DataFrame(
        {
            "event_id": [f"{prefix}{i}" for i in ids],
            "user_id": [f"u{i % 50_000}" for i in ids],
            "event_name": [("login", "item_viewed", "charged")[i % 3] for i in ids],
            "ts": [(start + timedelta(seconds=i * 0.4)).isoformat() for i in ids],
            "properties": [json.dumps({"n": i, "category": "concert"}) for i in ids],
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=2_000_000)
    n = parser.parse_args().events
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "events"
        src.mkdir()
        first = events(n)
        first[: n // 2].write_parquet(src / "a.parquet")
        first[n // 2 :].write_ndjson(src / "b.ndjson")
        with warehouse.connect(Path(tmp) / "warehouse.duckdb") as con:
            started = time.perf_counter()
            night1 = load_events(
                con, discover(str(src / "*"), env_var="E"), snapshot_date=date(2026, 1, 20), max_reject_rate=0.01
            )
            t1 = time.perf_counter() - started
            pl.concat([events(n // 10, "x"), first[: n // 10]]).write_parquet(src / "c.parquet")
            started = time.perf_counter()
            night2 = load_events(
                con, discover(str(src / "*"), env_var="E"), snapshot_date=date(2026, 1, 21), max_reject_rate=0.01
            )
            t2 = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"night 1: {night1.loaded:,} events loaded in {t1:.1f} s")
    print(f"night 2: {night2.loaded:,} new, {night2.already_loaded:,} re-sent skipped in {t2:.1f} s")
    print(f"peak RSS {peak_mb:,.0f} MB")


if __name__ == "__main__":
    main()
