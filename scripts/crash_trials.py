"""Random kill -9 trials: does every run recover to the tables of a run that was never killed?

Each trial starts `dg launch --job nightly_refresh` as a real process, kills its whole process
group with SIGKILL at a uniform moment of a run, then runs the same day again cleanly and
compares every `analytics` table with a never-killed run of the same history:

- fresh: an empty warehouse and MLflow store, the first run of day D is killed;
- incremental: day D-1 already published (and its MLflow store), the run of day D is killed.

Identifiers MLflow allocates necessarily differ after a kill (a killed run's registered
versions stay in the registry, unused): run ids are left out of the comparison and registry
version numbers in messages (`v3`) are compared as `v#`. Floating-point values are compared
with a relative tolerance of 1e-6: DuckDB sums doubles in parallel, so two never-killed runs
already differ in the last bits (up to about 5e-9 relative, seen in the creation forecasts). Everything else must be
equal, and no goal may be left `invalid`.

    .venv/bin/python scripts/crash_trials.py --trials 20
"""

from __future__ import annotations

import argparse
import math
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from segment_pipeline.storage.connections import open_duckdb

ROOT = Path(__file__).resolve().parent.parent
DG = ROOT / ".venv" / "bin" / "dg"
MLFLOW_ID_COLUMNS = {"model_run_id"}


def launch(env: dict[str, str], day: date) -> subprocess.Popen:
    return subprocess.Popen(
        [str(DG), "launch", "--job", "nightly_refresh", "--partition", day.isoformat()],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def run_clean(env: dict[str, str], day: date) -> float:
    started = time.monotonic()
    proc = launch(env, day)
    _, err = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"a clean run of {day} failed:\n{err[-3000:]}")
    return time.monotonic() - started


def tables(warehouse: Path) -> dict[str, list[tuple]]:
    with open_duckdb(str(warehouse), read_only=True) as con:
        names = [
            r[0]
            for r in con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'analytics' ORDER BY 1"
            ).fetchall()
        ]
        dump = {}
        for name in names:
            columns = [
                r[0]
                for r in con.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_schema = 'analytics' "
                    "AND table_name = ? ORDER BY ordinal_position",
                    [name],
                ).fetchall()
            ]
            kept = ", ".join(f'"{c}"' for c in columns if c not in MLFLOW_ID_COLUMNS)
            rows = con.execute(f'SELECT {kept} FROM analytics."{name}"').fetchall()
            dump[name] = sorted(rows, key=_order)
        return dump


def _order(row: tuple) -> tuple:
    exact = tuple(repr(_without_versions(v)) for v in row if not isinstance(v, float))
    return exact, tuple(round(v, 3) for v in row if isinstance(v, float))


def _without_versions(value):
    return re.sub(r"\bv\d+\b", "v#", value) if isinstance(value, str) else value


def _same(a: tuple, b: tuple) -> bool:
    return len(a) == len(b) and all(
        math.isclose(x, y, rel_tol=1e-6, abs_tol=1e-9)
        if isinstance(x, float) and isinstance(y, float)
        else _without_versions(x) == _without_versions(y)
        for x, y in zip(a, b, strict=True)
    )


def differences(got: dict, want: dict) -> list[str]:
    out = []
    for name in sorted(set(got) | set(want)):
        a, b = got.get(name, []), want.get(name, [])
        if len(a) != len(b):
            out.append(f"{name}: {len(a)} rows, expected {len(b)}")
            continue
        wrong = [(x, y) for x, y in zip(a, b, strict=True) if not _same(x, y)]
        if wrong:
            out.append(f"{name}: {len(wrong)} rows differ, e.g. {wrong[0][0]!r} vs {wrong[0][1]!r}"[:600])
    return out


def environment(folder: Path, demo) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SEGMENT_PIPELINE_", "MLFLOW_", "DAGSTER_"))}
    home = folder / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    env.update(
        {
            "DAGSTER_HOME": str(home),
            "SEGMENT_PIPELINE_EVENTS": demo.events_glob,
            "SEGMENT_PIPELINE_PROFILES": str(demo.profiles_path),
            "SEGMENT_PIPELINE_WAREHOUSE": str(folder / "warehouse.duckdb"),
            "MLFLOW_TRACKING_URI": (folder / "mlruns").as_uri(),
            "SEGMENT_PIPELINE_START_DATE": "2026-01-01",
            "SEGMENT_PIPELINE_LOCK_WAIT_SECONDS": "60",
        }
    )
    return env


def copy_state(source: Path, target: Path) -> None:
    target.mkdir(parents=True)
    shutil.copy(source / "warehouse.duckdb", target / "warehouse.duckdb")
    shutil.copytree(source / "mlruns", target / "mlruns")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--users", type=int, default=3000)
    parser.add_argument("--day", type=date.fromisoformat, default=date(2026, 6, 20))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    from segment_pipeline.demo.generator import DemoSpec, generate_demo

    work = Path(tempfile.mkdtemp(prefix="crash_trials_"))
    rng = random.Random(args.seed)
    demo = generate_demo(work / "demo", DemoSpec(users=args.users))
    day, previous = args.day, args.day - timedelta(days=1)

    fresh_ref = work / "reference_fresh"
    fresh_ref.mkdir()
    fresh_seconds = run_clean(environment(fresh_ref, demo), day)
    incr_base = work / "reference_previous_day"
    incr_base.mkdir()
    run_clean(environment(incr_base, demo), previous)
    incr_ref = work / "reference_incremental"
    copy_state(incr_base, incr_ref)
    incr_seconds = run_clean(environment(incr_ref, demo), day)
    want = {"fresh": tables(fresh_ref / "warehouse.duckdb"), "incremental": tables(incr_ref / "warehouse.duckdb")}
    length = {"fresh": fresh_seconds, "incremental": incr_seconds}
    print(
        f"never-killed runs: fresh {fresh_seconds:.1f} s, incremental {incr_seconds:.1f} s ({args.users:,} users, day {day})"
    )
    print(f"{'trial':>5} {'mode':<12} {'kill at':>8} {'published after kill':<22} {'recovered':<10} invalid goals")

    recovered = 0
    for trial in range(1, args.trials + 1):
        mode = "fresh" if trial % 2 else "incremental"
        folder = work / f"trial_{trial:02d}"
        if mode == "incremental":
            copy_state(incr_base, folder)
        else:
            folder.mkdir()
        env = environment(folder, demo)
        kill_at = rng.uniform(0, length[mode])
        proc = launch(env, day)
        try:
            proc.wait(timeout=kill_at)
            state = "finished before kill"
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            state = "killed"
        warehouse = folder / "warehouse.duckdb"
        published = (
            "none"
            if not warehouse.exists()
            else max(
                (
                    r[0]
                    for r in open_duckdb(str(warehouse), read_only=True)
                    .execute("SELECT max(snapshot_date)::VARCHAR FROM analytics.event_snapshots")
                    .fetchall()
                ),
                default="none",
            )
        )
        run_clean(env, day)
        got = tables(warehouse)
        diff = differences(got, want[mode])
        with open_duckdb(str(warehouse), read_only=True) as con:
            invalid = con.execute("SELECT count(*) FROM analytics.goal_status WHERE status = 'invalid'").fetchone()[0]
        ok = not diff and invalid == 0
        recovered += ok
        print(
            f"{trial:>5} {mode:<12} {kill_at:>7.1f}s {published + ' (' + state + ')':<22} "
            f"{'identical' if ok else 'DIFFERENT':<10} {invalid}"
        )
        for line in diff:
            print(f"        {line}")
    print(f"recovered to the never-killed tables: {recovered} of {args.trials}")
    if args.keep:
        print(f"work folder: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(0 if recovered == args.trials else 1)


if __name__ == "__main__":
    main()
