"""Benchmark: a goal's training set and nightly scoring set on the DuckDB and Spark engines.

The demo (``--users``) loaded as a night's load does (rollups kept), its goal ``sell
concert tickets`` at its training anchors, then every user scored as of 2026-06-20: the
frames must be identical. Spark's session start is reported apart; the Spark side runs
twice and both (cold, then warm) are printed.

    .venv/bin/python scripts/benchmark_goal_features.py [--users 3000] [--cores 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import date
from pathlib import Path

from polars.testing import assert_frame_equal

from segment_pipeline.config.project import load_project_config
from segment_pipeline.demo.generator import DemoSpec, build_demo_tables
from segment_pipeline.engines.duckdb_engine import DUCKDB_ENGINE
from segment_pipeline.engines.spark_engine import SparkEngine
from segment_pipeline.engines.spark_session import spark_session
from segment_pipeline.goals.features import build_scoring_set, build_training_set, choose_anchors, first_event_day
from segment_pipeline.ingest.events import load_events
from segment_pipeline.ingest.sources import discover
from segment_pipeline.settings import BUNDLED_CONFIG_DIR
from segment_pipeline.storage import warehouse

DAY = date(2026, 6, 20)
GOAL = "sell concert tickets"


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=3000)
    parser.add_argument("--cores", type=int, default=2)
    args = parser.parse_args()
    config = load_project_config(BUNDLED_CONFIG_DIR)
    goal = config.goals.by_name[GOAL]
    tables = build_demo_tables(DemoSpec(users=args.users))
    with tempfile.TemporaryDirectory() as folder, warehouse.connect(Path(folder) / "w.duckdb") as con:
        tmp = Path(folder)
        (tmp / "events").mkdir()
        tables.events.write_parquet(tmp / "events" / "demo.parquet")
        load_events(con, discover(str(tmp / "events" / "*"), env_var="E"), snapshot_date=DAY, max_reject_rate=0)
        con.register("_profiles", tables.profiles.to_arrow())
        con.execute("CREATE TABLE analytics.profiles AS SELECT * FROM _profiles")
        anchors = choose_anchors(first_event_day(con), goal.created_on, goal.length_days, goal.lookback_days)
        users = [r[0] for r in con.execute("SELECT user_id FROM pipeline_state.users ORDER BY 1").fetchall()]
        print(f"{tables.events.height:,} events, {len(users):,} users, {len(anchors)} anchors")
        start, session = timed(lambda: spark_session(cores=args.cores))
        print(f"spark session start: {start:.1f} s")
        spark = SparkEngine(session, tmp / "lake")
        try:
            results = {}
            for label, engine in [("duckdb", DUCKDB_ENGINE), ("spark cold", spark), ("spark warm", spark)]:
                train_s, training = timed(
                    lambda e=engine: build_training_set(con, goal, config.segments, anchors, engine=e)
                )
                score_s, scoring = timed(
                    lambda e=engine, t=training: build_scoring_set(con, goal, users, DAY, spec=t.spec, engine=e)
                )
                results[label] = (training, scoring)
                print(
                    f"{label:>10}: training set {train_s:6.1f} s ({training.frame.height:,} x {training.frame.width}),"
                    f" scoring set {score_s:6.1f} s ({scoring.height:,} rows)"
                )
            duck_training, duck_scoring = results["duckdb"]
            for label in ("spark cold", "spark warm"):
                assert_frame_equal(results[label][0].frame, duck_training.frame)
                assert_frame_equal(results[label][1], duck_scoring)
            print("identical frames on both engines")
        finally:
            spark.close()
            session.stop()


if __name__ == "__main__":
    main()
