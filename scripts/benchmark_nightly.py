"""Benchmark: a first night and a next night of `nightly_refresh` on a generated history, and the lower bound.

Generates, inside DuckDB, one Parquet file per day of events (heavy-tailed users: a few
users make most events; 16 event types with properties) and a profiles file; the config
is the demo's (segments, 3 goals, 2 score trees) plus simple segments up to 20 past ones.
Then it runs `dg launch --job nightly_refresh` for the day before the last (the first
night: the whole history) and, after writing the last day's file, for the last day (the
next night), each with a temporary DAGSTER_HOME, and reports wall time, the peak RSS of
the `dg` process tree (polled from /proc, with its CPU seconds) and each step's time (from the Dagster
event log), CPU seconds and peak RSS (the polled values while the step ran).
The lower bound, in the same run: one DuckDB pass of per (user, event type) 7/30/90-day
counts plus an XGBoost `hist` fit of users x 70 features, 200 rounds.

    .venv/bin/python scripts/benchmark_nightly.py --events 10000000 --users 200000 [--days 120] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date, datetime, timedelta
from pathlib import Path

from segment_pipeline.storage.connections import open_duckdb

# As the pipeline does (goals/training.py): OpenMP threads that spin while waiting make
# XGBoost 10-30x slower whenever another process shares the cores, which would inflate the bound.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
LAST_DAY = date(2026, 6, 20)  # the demo goals' window (created 2026-05-10..06-05)
EVENT_TYPES = [  # the demo config's types first, then others up to 16
    "app_launch",
    "item_viewed",
    "add_to_cart",
    "checkout_viewed",
    "charged",
    "rating_given",
    "subscription_renewed",
    "campaign_sent",
    "uninstall",
    "search",
    "share",
    "wishlist_added",
    "coupon_applied",
    "notification_opened",
    "profile_updated",
    "logout",
]
EXTRA_SEGMENT = """
  - segmentName: did {event} in 7 days
    segmentType: past
    segmentSubtype: 1
    segmentTimeframe: 7
    eventSequence:
      - eventType: {event}
        expTimeframe: 0
        actionInaction: action
        minCount: 2
"""
# --same-work: goals whose whole training needs fit in 60 days of history, so a night at 60
# days and one at 180 do the same work (the demo goals need about 150 days: at 60 they are
# insufficient_history, neither trained nor scored). 14-day windows (anchors 7 days apart);
# history needed before createdOn = lookbackDays + 14 + 7 <= 51 days, and at 60 days of
# history the first event day is 2026-04-22. The first night (06-19) trains each goal at
# creation; "retrainEveryDays: 7" also retrains two of them that night (as the demo goals do at
# 180 days); the next night (06-20) scores the three without training.
SAME_WORK_GOALS = """kind: goals
maxActiveGoals: 5
goals:
  - goalName: sell concert tickets
    segment: Users in San Francisco
    createdOn: 2026-06-12
    endDate: 2026-06-25
    objective: maximize
    events:
      - eventType: charged
        eventProperties: {category: concert}
    controlGroupPercent: 5
    lookbackDays: 28
    retrainEveryDays: 7
    valueProperty: amount
  - goalName: prevent uninstalls
    segment: fading users
    createdOn: 2026-06-12
    endDate: 2026-06-25
    objective: minimize
    events:
      - eventType: uninstall
    controlGroupPercent: 10
    lookbackDays: 21
    retrainEveryDays: 7
  - goalName: premium upsell
    segment: engaged plus members
    createdOn: 2026-06-15
    endDate: 2026-06-28
    objective: maximize
    events:
      - eventType: subscription_renewed
        eventProperties: {plan: premium}
    controlGroupPercent: 5
    lookbackDays: 30
"""
SAME_WORK_MAX_TIMEFRAME = 60  # segment look-backs capped so that 60 days of history hold them


def generate(work: Path, events: int, users: int, days: int) -> None:
    """History up to the day before LAST_DAY (the last day's file is written before night 2)."""
    (work / "events").mkdir(parents=True)
    con = open_duckdb()
    con.execute("SET memory_limit = '4GB'; SELECT setseed(0.42)")
    names = "[" + ", ".join(f"'{n}'" for n in EVENT_TYPES) + "]"
    con.execute(
        """COPY (SELECT 'u' || i AS user_id,
                        ['San Francisco', 'Berlin', 'Istanbul', 'London', 'Lagos'][1 + i % 5] AS city,
                        ['basic', 'plus', 'premium'][1 + (i // 5) % 3] AS plan,
                        ['ios', 'android', 'web'][1 + (i // 15) % 3] AS os
                 FROM range(?) t(i)) TO '"""
        + str(work / "profiles.parquet")
        + "' (FORMAT parquet)",
        [users],
    )
    per_day = events // days
    for k in range(days):
        write_day(con, work, LAST_DAY - timedelta(days=days - 1 - k), k * per_day, per_day, users, names)


def write_day(con, work: Path, day: date, first_id: int, n: int, users: int, names: str) -> None:
    # pow(random(), 3): user ids near 0 get most events (heavy tail); pow(random(), 1.6) makes
    # the first event types the common ones.
    con.execute(
        f"""COPY (SELECT 'e' || (? + i) AS event_id,
                        'u' || CAST(floor(pow(random(), 3) * ?) AS BIGINT) AS user_id,
                        {names}[1 + CAST(floor(pow(random(), 1.6) * 16) AS INTEGER)] AS event_name,
                        CAST(? AS TIMESTAMP) + to_seconds(CAST(floor(random() * 86400) AS BIGINT)) AS ts,
                        CAST(json_object(
                            'category', ['concert', 'sports', 'theatre', 'film'][1 + CAST(floor(random() * 4) AS INTEGER)],
                            'payment_method', ['visa', 'mastercard', 'paypal'][1 + CAST(floor(random() * 3) AS INTEGER)],
                            'stars', 1 + CAST(floor(random() * 5) AS INTEGER),
                            'push_enabled', random() < 0.5,
                            'plan', ['plus', 'premium', 'basic'][1 + CAST(floor(random() * 3) AS INTEGER)],
                            'amount', round(random() * 100, 2)) AS VARCHAR) AS properties
                 FROM range(?) t(i) ORDER BY ts) TO '{work / "events" / f"{day}.parquet"}' (FORMAT parquet)""",
        [first_id, users, datetime.combine(day, datetime.min.time()), n],
    )


def reset(work: Path) -> None:
    """Remove what a run wrote (and the next night's file) so a kept history is run again as new."""
    (work / "events" / f"{LAST_DAY}.parquet").unlink(missing_ok=True)
    for path in work.iterdir():
        if path.name.startswith(("warehouse.duckdb", "dagster_home_", "launch_", "mlruns", "reports", "config")):
            shutil.rmtree(path) if path.is_dir() else path.unlink()


def write_config(work: Path, same_work: bool = False) -> Path:
    config = work / "config"
    shutil.copytree(ROOT / "segment_pipeline" / "demo" / "config", config)
    text = (config / "segments.yaml").read_text()
    past = text.count("segmentType: past")
    extra = [EXTRA_SEGMENT.format(event=e) for e in EVENT_TYPES[9 : 9 + max(0, 20 - past)]]
    text = text.rstrip("\n") + "\n" + "".join(extra)
    if same_work:
        text = re.sub(
            r"segmentTimeframe: (\d+)",
            lambda m: f"segmentTimeframe: {min(int(m.group(1)), SAME_WORK_MAX_TIMEFRAME)}",
            text,
        )
        (config / "goals.yaml").write_text(SAME_WORK_GOALS)
    (config / "segments.yaml").write_text(text)
    return config


def dagster_home(work: Path, name: str) -> Path:
    home = work / name
    home.mkdir()
    text = (ROOT / "dagster.yaml").read_text().replace(".dagster_home", str(home))
    (home / "dagster.yaml").write_text(text.split("run_monitoring:")[0])
    return home


def tree_usage(root_pid: int) -> tuple[int, float]:
    """(RSS bytes, CPU seconds so far) of the process tree under ``root_pid``."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    cpu: dict[int, float] = {}
    ticks = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(entry.name))
            rss[int(entry.name)] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
            cpu[int(entry.name)] = (int(fields[11]) + int(fields[12])) / ticks
        except (OSError, IndexError, ValueError):
            continue
    total, seconds, todo = 0, 0.0, [root_pid]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        seconds += cpu.get(pid, 0.0)
        todo.extend(children.get(pid, []))
    return total, seconds


def launch(
    env: dict[str, str], day: date, log: Path, samples: list[tuple[float, int, float]]
) -> tuple[float, int, int, float, float]:
    """(seconds, peak RSS of the process tree, return code, wall-clock start, CPU seconds of the
    process tree) of one `dg launch`; ``samples`` gets (time, RSS, CPU seconds) every half second. CPU seconds
    move less than wall time on a shared machine."""
    wall_start = time.time()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [str(BIN / "dg"), "launch", "--job", "nightly_refresh", "--partition", day.isoformat()],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        peak = [0]

        def poll() -> None:
            while proc.poll() is None:
                rss, cpu_s = tree_usage(proc.pid)
                peak[0] = max(peak[0], rss)
                samples.append((time.time(), rss, cpu_s))
                time.sleep(0.5)

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        code = proc.wait()
        poller.join()
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return seconds, peak[0], code, wall_start, cpu


def cpu_between(samples: list[tuple[float, int, float]], start: float, end: float) -> float:
    """CPU seconds of the process tree from ``start`` to ``end``, read off the half-second samples
    nearest to each (steps overlap nothing here: the job runs them one by one in one process)."""
    if not samples:
        return 0.0

    def at(moment: float) -> float:
        return min(samples, key=lambda sample: abs(sample[0] - moment))[2]

    return max(0.0, at(end) - at(start))


def step_times(home: Path, spans: dict[str, tuple[float, float]] | None = None) -> dict[str, float]:
    """Seconds per step of the home's one run, from the Dagster event log; ``spans`` gets each
    step's (start, end) wall-clock times."""
    import dagster as dg

    os.environ["DAGSTER_HOME"] = str(home)
    with dg.DagsterInstance.get() as instance:
        [run] = instance.get_runs(limit=1)
        starts: dict[str, float] = {}
        times: dict[str, float] = {}
        for record in instance.all_logs(run.run_id):
            event = record.dagster_event
            if event is None or event.step_key is None:
                continue
            if event.event_type == dg.DagsterEventType.STEP_START:
                starts[event.step_key] = record.timestamp
            elif event.event_type in (dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE):
                times[event.step_key] = record.timestamp - starts.get(event.step_key, record.timestamp)
                if spans is not None:
                    spans[event.step_key] = (starts.get(event.step_key, record.timestamp), record.timestamp)
        stats = instance.get_run_stats(run.run_id)
        times["(steps: first start to last end)"] = (stats.end_time or 0) - min(starts.values(), default=0)
        times["(run start)"] = stats.start_time or 0.0
        times["(first step start)"] = min(starts.values(), default=0.0)
        return times


def lower_bound(warehouse: Path, as_of: date) -> dict[str, float]:
    """One DuckDB pass of per (user, event type) 7/30/90-day counts, then XGBoost hist, users x 70."""
    import numpy as np
    import xgboost as xgb

    cutoff = datetime.combine(as_of + timedelta(days=1), datetime.min.time())
    con = open_duckdb(str(warehouse), read_only=True)
    con.execute("SET memory_limit = '9GB'")
    started, cpu_started = time.perf_counter(), time.process_time()
    counts = con.execute(
        """SELECT user_id, event_name,
                  count(*) FILTER (WHERE ts >= ? - INTERVAL 7 DAY) AS c7,
                  count(*) FILTER (WHERE ts >= ? - INTERVAL 30 DAY) AS c30,
                  count(*) AS c90
           FROM analytics.event_snapshots WHERE ts >= ? - INTERVAL 90 DAY AND ts < ?
           GROUP BY ALL""",
        [cutoff, cutoff, cutoff, cutoff],
    ).fetchnumpy()
    sql_s, sql_cpu = time.perf_counter() - started, time.process_time() - cpu_started
    con.close()
    started, cpu_started = time.perf_counter(), time.process_time()
    users, user_index = np.unique(counts["user_id"], return_inverse=True)
    types, type_index = np.unique(counts["event_name"], return_inverse=True)
    features = np.zeros((len(users), 70), dtype=np.float32)
    for j, column in enumerate(("c7", "c30", "c90")):
        features[user_index, j * len(types) + type_index] = counts[column]
    filled = 3 * len(types)
    rng = np.random.default_rng(0)
    features[:, filled:] = rng.random((len(users), 70 - filled), dtype=np.float32)
    label = (features[:, : len(types)].sum(axis=1) > np.median(features[:, : len(types)].sum(axis=1))).astype(
        np.float32
    )
    xgb.train(
        {"tree_method": "hist", "objective": "binary:logistic", "max_depth": 6, "nthread": os.cpu_count()},
        xgb.DMatrix(features, label=label),
        num_boost_round=200,
    )
    return {
        "xgboost_cpu_s": time.process_time() - cpu_started,
        "duckdb_counts_s": sql_s,
        "xgboost_fit_s": time.perf_counter() - started,
        "cpu_s": sql_cpu + time.process_time() - cpu_started,
        "users": len(users),
    }


def load_pass(events: list[Path], as_of: date, scratch: Path) -> dict[str, float]:
    """The first night's data floor: one plain pass of the history's Parquet files into a DuckDB
    table (no checks, ids or summaries), under the same memory limit the pipeline uses by default."""
    cutoff = datetime.combine(as_of + timedelta(days=1), datetime.min.time())
    path = scratch / "load_pass.duckdb"
    path.unlink(missing_ok=True)
    con = open_duckdb(str(path))
    con.execute(f"SET memory_limit = '{int(0.15 * os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES'))}B'")
    started, cpu_started = time.perf_counter(), time.process_time()
    con.execute(
        "CREATE TABLE events AS SELECT * FROM read_parquet(?) WHERE ts < ?",
        [[str(f) for f in events], cutoff],
    )
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    con.close()
    path.unlink()
    return {"load_s": seconds, "load_cpu_s": cpu}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--users", type=int, default=200_000)
    parser.add_argument("--days", type=int, default=120)
    parser.add_argument("--workdir", type=Path, default=None, help="kept when given; a temp folder otherwise")
    parser.add_argument(
        "--same-work",
        action="store_true",
        help="goals trainable from 60 days of history and segment look-backs of at most 60 days, so that "
        "nights at any --days >= 60 do the same work (compare the history's cost)",
    )
    parser.add_argument(
        "--next-night-only",
        action="store_true",
        help="with a kept --workdir whose first night has run: only run the next night again (its partition "
        "re-materialized on the same warehouse, no new file), to re-measure a noisy next night",
    )
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="benchmark_nightly_"))
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    if args.next_night_only:
        if not (work / f"dagster_home_{LAST_DAY}").is_dir():
            sys.exit(f"--next-night-only needs a --workdir whose next night ({LAST_DAY}) has run")
        shutil.rmtree(work / "config")  # written again below, as the first run wrote it
        print(f"re-running the next night ({LAST_DAY}) on the warehouse in {work}", flush=True)
    elif (work / "events").is_dir():
        # A kept workdir: the same history again, from a fresh warehouse and Dagster homes.
        reset(work)
        print(f"reusing the history generated in {work}", flush=True)
    else:
        generate(work, args.events, args.users, args.days)
        print(
            f"generated {args.events:,} events of {args.users:,} users over {args.days} days in "
            f"{time.perf_counter() - started:.0f} s: {work}",
            flush=True,
        )
    config = write_config(work, args.same_work)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SEGMENT_PIPELINE_", "DAGSTER_"))}
    env = {
        **base,
        "SEGMENT_PIPELINE_EVENTS": str(work / "events" / "*.parquet"),
        "SEGMENT_PIPELINE_PROFILES": str(work / "profiles.parquet"),
        "SEGMENT_PIPELINE_CONFIG": str(config),
        "SEGMENT_PIPELINE_WAREHOUSE": str(work / "warehouse.duckdb"),
        "SEGMENT_PIPELINE_REPORTS_DIR": str(work / "reports"),
        "SEGMENT_PIPELINE_START_DATE": (LAST_DAY - timedelta(days=args.days)).isoformat(),
        "MLFLOW_TRACKING_URI": (work / "mlruns").as_uri(),
    }
    results = []
    nights = [("first night", LAST_DAY - timedelta(days=1)), ("next night", LAST_DAY)]
    for label, day in nights[1:] if args.next_night_only else nights:
        if label == "next night" and not args.next_night_only:
            con = open_duckdb()
            con.execute("SELECT setseed(0.7)")
            names = "[" + ", ".join(f"'{n}'" for n in EVENT_TYPES) + "]"
            write_day(con, work, LAST_DAY, 10**12, args.events // args.days, args.users, names)
            con.close()
        rerun = next(k for k in range(1, 1000) if not (work / f"dagster_home_{day}_rerun{k}").exists())
        home = dagster_home(work, f"dagster_home_{day}_rerun{rerun}" if args.next_night_only else f"dagster_home_{day}")
        samples: list[tuple[float, int, float]] = []
        log = work / f"launch_{home.name.removeprefix('dagster_home_')}.log"
        seconds, peak, code, wall_start, cpu = launch(
            {**env, "DAGSTER_HOME": str(home)},
            day,
            log,
            samples,
        )
        spans: dict[str, tuple[float, float]] = {}
        steps = step_times(home, spans)
        # The peak RSS of the process tree while each step ran (steps may overlap).
        step_peaks = {
            step: max((rss for t, rss, _ in samples if start - 0.5 <= t <= end + 0.5), default=0)
            for step, (start, end) in spans.items()
        }
        step_cpu = {step: cpu_between(samples, start, end) for step, (start, end) in spans.items()}
        run_start, first_step = steps.pop("(run start)"), steps.pop("(first step start)")
        results.append((label, day, seconds, peak, code, steps, cpu))
        print(
            f"{label} ({day}): {seconds:.0f} s ({cpu:.0f} CPU s), peak RSS {peak / 2**30:.1f} GiB, exit {code}; "
            f"outside the steps: {seconds - steps['(steps: first start to last end)']:.0f} s, of which "
            f"{run_start - wall_start:.0f} s from `dg launch` to the run's start and "
            f"{first_step - run_start:.0f} s from there to the first step",
            flush=True,
        )
        for step, s in sorted(steps.items(), key=lambda kv: -kv[1]):
            rss = (
                f" ({step_cpu[step]:.1f} CPU s), peak RSS {step_peaks[step] / 2**30:.2f} GiB"
                if step in step_peaks
                else ""
            )
            print(f"    {step}: {s:.1f} s{rss}")
        if code:
            print(f"see {log}")
            sys.exit(code)
    if args.next_night_only:
        return
    bound = lower_bound(work / "warehouse.duckdb", LAST_DAY)
    goals = (config / "goals.yaml").read_text().count("goalName:")
    history = sorted((work / "events").glob("*.parquet"))
    first = load_pass(history, nights[0][1], work)
    print(
        f"lower bound: DuckDB 7/30/90-day counts {bound['duckdb_counts_s']:.1f} s + XGBoost hist "
        f"{bound['users']:,} users x 70 features, 200 rounds {bound['xgboost_fit_s']:.1f} s = "
        f"{bound['duckdb_counts_s'] + bound['xgboost_fit_s']:.1f} s ({bound['cpu_s']:.1f} CPU s)"
    )
    # The first night's own floor (the "load pass + training fits"): the history read
    # once into a table, and one such fit per goal.
    fits_s, fits_cpu = goals * bound["xgboost_fit_s"], goals * bound["xgboost_cpu_s"]
    first_floor, first_floor_cpu = first["load_s"] + fits_s, first["load_cpu_s"] + fits_cpu
    print(
        f"first-night bound: plain load pass of the history {first['load_s']:.1f} s ({first['load_cpu_s']:.1f} CPU s)"
        f" + {goals} fits {fits_s:.1f} s ({fits_cpu:.1f} CPU s) = {first_floor:.1f} s ({first_floor_cpu:.1f} CPU s)"
    )
    print(
        "| run | wall s | x lower bound | CPU s | x lower bound (CPU) | x first-night bound (wall / CPU) | peak RSS GiB |"
        "\n|---|---|---|---|---|---|---|"
    )
    floor = bound["duckdb_counts_s"] + bound["xgboost_fit_s"]
    for label, day, seconds, peak, _, _, cpu in results:
        own = f"{seconds / first_floor:.1f} / {cpu / first_floor_cpu:.1f}" if label == "first night" else ""
        print(
            f"| {label} ({day}) | {seconds:.0f} | {seconds / floor:.1f} | {cpu:.0f} | {cpu / bound['cpu_s']:.1f} "
            f"| {own} | {peak / 2**30:.1f} |"
        )


if __name__ == "__main__":
    main()
