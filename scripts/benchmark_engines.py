"""Benchmark: the same day's memberships on the DuckDB engine and on the Spark engine.

The 20 varied segments and the seeded events of ``benchmark_segments.py`` (plus All
Users), evaluated as of one day by both engines; the rows must be identical. Spark's
session start and the Parquet copy of the warehouse are reported apart from the
query time; each engine runs twice and the second (warm) run is the one that counts.

    .venv/bin/python scripts/benchmark_engines.py [--events 1000000] [--users 50000] [--cores 2]

With SPARK_REMOTE set, the Spark side runs on that Spark Connect cluster instead (its
lake folder, --lake, must then be readable by the cluster at the same path).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchmark_segments import AS_OF, SEGMENTS_YAML, generate

from segment_pipeline.config.segments import load_segments_text
from segment_pipeline.engines.duckdb_engine import DUCKDB_ENGINE
from segment_pipeline.engines.spark_engine import SparkEngine
from segment_pipeline.engines.spark_session import spark_session
from segment_pipeline.rules.compiler import read_profile_columns
from segment_pipeline.storage import warehouse


def evaluate(engine, con, segments) -> list[tuple[str, str]]:
    con.execute("CREATE OR REPLACE TEMP TABLE _s (segment_name VARCHAR, user_id VARCHAR)")
    engine.insert_segment_members(
        con, "_s", segments, AS_OF, profile_columns=read_profile_columns(con), include_all_users=True
    )
    return con.execute("SELECT segment_name, user_id FROM _s ORDER BY ALL").fetchall()


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=50_000)
    parser.add_argument("--cores", type=int, default=2, help="local Spark cores (ignored with SPARK_REMOTE)")
    parser.add_argument("--lake", type=Path, default=None, help="folder for Spark's Parquet copy (default: temp)")
    args = parser.parse_args()
    segments = load_segments_text(SEGMENTS_YAML, "benchmark").past
    with tempfile.TemporaryDirectory() as tmp, warehouse.connect(Path(tmp) / "bench.duckdb") as con:
        seconds, _ = timed(lambda: generate(con, args.events, args.users))
        print(f"generated {args.events:,} events for {args.users:,} users in {seconds:.1f} s")
        duck = [timed(lambda: evaluate(DUCKDB_ENGINE, con, segments)) for _ in range(2)]
        rows = duck[-1][1]
        print(f"rows: {len(rows):,} ({len(segments)} segments + All Users)")
        print(f"duckdb  query: cold {duck[0][0]:6.2f} s, warm {duck[1][0]:6.2f} s")

        start_s, session = timed(lambda: spark_session(cores=args.cores, app_name="benchmark_engines"))
        where = os.environ.get("SPARK_REMOTE") or f"local[{args.cores}]"
        try:
            engine = SparkEngine(session, args.lake or Path(tmp) / "lake")
            copy_s, _ = timed(lambda: engine.sync(con))
            spark = [timed(lambda: evaluate(engine, con, segments)) for _ in range(2)]
            engine.close()
        finally:
            session.stop()
        print(f"spark   session start ({where}): {start_s:6.2f} s")
        print(f"spark   Parquet copy of the warehouse: {copy_s:6.2f} s")
        print(f"spark   query: cold {spark[0][0]:6.2f} s, warm {spark[1][0]:6.2f} s")
        print(f"spark / duckdb (warm queries): {spark[1][0] / duck[1][0]:.1f}x")
        same = all(result == rows for _, result in spark)
        print(f"identical rows: {'yes' if same else 'NO'}")
        if not same:
            raise SystemExit(1)


if __name__ == "__main__":
    main()
