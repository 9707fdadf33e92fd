"""Run the nightly job once per engine and compare every analytics table.

    .venv/bin/python scripts/compare_engine_runs.py [--partition 2026-06-20] [--workdir DIR]

Each run is ``dg launch --job nightly_refresh --partition DAY`` with its own warehouse,
MLflow store, reports folder and Dagster home under ``--workdir`` (a temp folder by
default), on the same event source (the demo, or SEGMENT_PIPELINE_EVENTS): first with
``SEGMENT_PIPELINE_ENGINE=duckdb``, then with ``spark``. Then every table of the
``analytics`` schema of either warehouse is compared as a multiset of rows (MLflow run
ids, new in every run, only as present or absent); a table that differs is shown with
the columns whose values differ. Exit status 1 if any does.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parent.parent
# MLflow run ids are new random ids in every run, whatever the engine: compared as present or not.
RUN_ID_COLUMNS = {"goal_status": {"model_run_id"}}
ENGINES = ("duckdb", "spark")


def run_job(engine: str, folder: Path, partition: str) -> float:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "dagster_home").mkdir(exist_ok=True)
    env = os.environ | {
        "SEGMENT_PIPELINE_ENGINE": engine,
        "SEGMENT_PIPELINE_WAREHOUSE": str(folder / "warehouse.duckdb"),
        "SEGMENT_PIPELINE_REPORTS_DIR": str(folder / "reports"),
        "MLFLOW_TRACKING_URI": (folder / "mlruns").as_uri(),
        "DAGSTER_HOME": str(folder / "dagster_home"),
    }
    dg = Path(sys.executable).with_name("dg")
    start = time.perf_counter()
    result = subprocess.run(
        [str(dg), "launch", "--job", "nightly_refresh", "--partition", partition],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - start
    (folder / "launch.log").write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        raise SystemExit(f"{engine} run failed ({result.returncode}); see {folder / 'launch.log'}")
    return seconds


def tables(path: Path) -> dict[str, tuple[list[str], Counter]]:
    with duckdb.connect(str(path), read_only=True) as con:
        con.execute("SET enable_progress_bar = false")
        names = [
            r[0]
            for r in con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'analytics' ORDER BY 1"
            ).fetchall()
        ]
        found = {}
        for name in names:
            cursor = con.execute(f'SELECT * FROM analytics."{name}"')
            columns = [d[0] for d in cursor.description]
            run_ids = {i for i, c in enumerate(columns) if c in RUN_ID_COLUMNS.get(name, set())}
            found[name] = (
                columns,
                Counter(
                    tuple("<run id>" if i in run_ids and v is not None else repr(v) for i, v in enumerate(row))
                    for row in cursor.fetchall()
                ),
            )
        return found


def differing_columns(columns: list[str], left: Counter, right: Counter) -> list[str]:
    """The columns whose multiset of values differs between the two runs."""

    def values(rows: Counter, i: int) -> Counter:
        counted: Counter = Counter()
        for row, n in rows.items():
            counted[row[i]] += n
        return counted

    return [column for i, column in enumerate(columns) if values(left, i) != values(right, i)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--partition", default="2026-06-20")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument(
        "--engines", default="duckdb,spark", help="the two runs; duckdb,duckdb shows what differs between any two runs"
    )
    parser.add_argument("--reuse", action="store_true", help="compare runs already in --workdir, run nothing")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="compare_engines_"))
    engines = args.engines.split(",")
    if len(engines) != 2 or not set(engines) <= set(ENGINES):
        raise SystemExit(f"--engines takes two of {', '.join(ENGINES)}, not {args.engines!r}")
    folders = [workdir / engines[0], workdir / (engines[1] if engines[1] != engines[0] else f"{engines[1]}-again")]
    for engine, folder in zip(engines, folders, strict=True):
        if not args.reuse:
            seconds = run_job(engine, folder, args.partition)
            print(f"{engine}: nightly_refresh {args.partition} in {seconds:.0f} s ({folder})")
    left, right = (tables(folder / "warehouse.duckdb") for folder in folders)
    differ = 0
    for name in sorted(set(left) | set(right)):
        if name not in left or name not in right:
            print(f"  {name}: only in the {folders[1].name if name not in left else folders[0].name} run")
            differ += 1
            continue
        (columns, rows_l), (columns_r, rows_r) = left[name], right[name]
        rows = sum(rows_l.values())
        if columns == columns_r and rows_l == rows_r:
            print(f"  {name}: identical ({rows:,} rows)")
            continue
        differ += 1
        detail = differing_columns(columns, rows_l, rows_r) if columns == columns_r else ["(columns differ)"]
        print(f"  {name}: DIFFERS ({rows:,} vs {sum(rows_r.values()):,} rows; columns: {', '.join(detail)})")
    print(f"{len(set(left) | set(right)) - differ} tables identical, {differ} differ")
    raise SystemExit(1 if differ else 0)


if __name__ == "__main__":
    main()
