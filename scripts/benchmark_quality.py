"""Benchmark: the snapshot quality suites on the last of 4 days of N events (a quarter is the slice).

0.1% of users are null and 1 event in 99,991 is 60 days late, so two rules fail with examples.
The first call imports GX and is not timed; the second is. Data Docs go to a temp folder.

    .venv/bin/python scripts/benchmark_quality.py [--events 2000000] [--no-docs]

Run from an older checkout (``PYTHONPATH=<its root>``) to compare; a version without Data
Docs is called without ``docs_dir``.
"""

from __future__ import annotations

import argparse
import inspect
import resource
import tempfile
import time
from datetime import date, datetime
from pathlib import Path

from segment_pipeline.quality.snapshot_sql import check_loaded_slice
from segment_pipeline.storage import warehouse

DAY = date(2026, 1, 5)

_EVENTS = """
INSERT INTO analytics.event_snapshots
SELECT 'e' || i, CASE WHEN i % 1000 = 0 THEN NULL ELSE 'u' || (i % 50000) END, 'login',
       TIMESTAMP '2026-01-02' + (i * 4 * 86400 // $n) * INTERVAL 1 SECOND
           + CASE WHEN i % 99991 = 0 THEN INTERVAL 60 DAY ELSE INTERVAL 0 DAY END,
       '{"n": 1}', CAST(TIMESTAMP '2026-01-02' + (i * 4 * 86400 // $n) * INTERVAL 1 SECOND AS DATE)
FROM range($n) t(i)
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--no-docs", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "warehouse.duckdb"
        with warehouse.connect(path) as con:
            con.execute("""CREATE TABLE analytics.event_snapshots (event_id VARCHAR, user_id VARCHAR,
                           event_name VARCHAR, ts TIMESTAMP, properties JSON, snapshot_date DATE)""")
            con.execute(_EVENTS, {"n": args.events})
        takes_docs = "docs_dir" in inspect.signature(check_loaded_slice).parameters
        extra = {"docs_dir": Path(tmp) / "data_docs"} if takes_docs and not args.no_docs else {}
        bounds = {"min_ts": datetime(1970, 1, 1), "max_ts_exclusive": datetime(2026, 1, 6)}
        with warehouse.connect(path, read_only=True) as con:
            check_loaded_slice(con, DAY, DAY, **bounds, **extra)
            started = time.perf_counter()
            outcomes = check_loaded_slice(con, DAY, DAY, **bounds, **extra)
            took = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    print(f"{args.events:,} events, {outcomes[0].evaluated_rows:,} in the slice: {took:.2f} s, peak RSS {peak} MB")
    for o in outcomes:
        failed = ", ".join(f"{x.expectation} {x.unexpected_count}" for x in o.failed()) or "passed"
        print(f"  {o.suite}: {failed}")


if __name__ == "__main__":
    main()
