"""Benchmark: 20 varied past segments for one day over 10M events / 500k users.

Prints the time of the segment evaluation next to a baseline measured in the same
run on the same events: one DuckDB query computing, per user and event type, the
7/30/90-day counts. Target (issue 3): segments within 3x the baseline, peak memory
under 6 GB.

    .venv/bin/python scripts/benchmark_segments.py [--events 10000000] [--users 500000]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa

from segment_pipeline.config.segments import load_segments_text
from segment_pipeline.rules.compiler import compile_past_segments, read_profile_columns
from segment_pipeline.storage import warehouse

AS_OF = date(2026, 6, 30)
EVENT_TYPES = ["app_launch", "login", "item_viewed", "add_to_cart", "checkout_viewed", "charged",
               "search", "notification_opened", "campaign_sent", "rating_given", "uninstall", "subscription_renewed"]
WEIGHTS = np.array([18, 6, 35, 8, 4, 3, 10, 3, 8, 2, 0.5, 1.5])
CATEGORIES = ["concert", "sports", "theatre", "comedy", "festival"]
PAYMENTS = ["visa", "mastercard", "paypal", "apple_pay"]

SEGMENTS_YAML = """
kind: segments
segmentDefinitions:
""" + "".join(
    f"""
  - segmentName: {name}
    segmentType: past
    segmentSubtype: {subtype}
    segmentTimeframe: {days}
    eventSequence:
{steps}
{profile}"""
    for name, subtype, days, steps, profile in [
        ("launched app", 1, 30, "      - {eventType: app_launch, expTimeframe: 0, actionInaction: action}", ""),
        ("launched app 7d", 1, 7, "      - {eventType: app_launch, expTimeframe: 0, actionInaction: action}", ""),
        ("charged once", 1, 30, "      - {eventType: charged, expTimeframe: 0, actionInaction: action}", ""),
        ("charged 3 times", 1, 90, "      - {eventType: charged, expTimeframe: 0, actionInaction: action, minCount: 3}", ""),
        ("added to cart 5 times", 1, 60, "      - {eventType: add_to_cart, expTimeframe: 0, actionInaction: action, minCount: 5}", ""),
        ("visa buyers", 1, 60, "      - {eventType: charged, expTimeframe: 0, actionInaction: action, minCount: 2, eventProperties: {payment_method: visa}}", ""),
        ("concert buyers", 1, 90, "      - {eventType: charged, expTimeframe: 0, actionInaction: action, eventProperties: {category: concert}}", ""),
        ("big spenders", 1, 90, "      - {eventType: charged, expTimeframe: 0, actionInaction: action, eventProperties: {items: 3}}", ""),
        ("view cart buy", 1, 30, "      - {eventType: item_viewed, expTimeframe: 0, actionInaction: action}\n      - {eventType: add_to_cart, expTimeframe: 0, actionInaction: action}\n      - {eventType: charged, expTimeframe: 0, actionInaction: action}", ""),
        ("concert funnel", 1, 60, "      - {eventType: item_viewed, expTimeframe: 0, actionInaction: action, eventProperties: {category: concert}}\n      - {eventType: add_to_cart, expTimeframe: 0, actionInaction: action, eventProperties: {category: concert}}\n      - {eventType: checkout_viewed, expTimeframe: 0, actionInaction: action}", ""),
        ("search then view twice", 1, 14, "      - {eventType: search, expTimeframe: 0, actionInaction: action}\n      - {eventType: item_viewed, expTimeframe: 0, actionInaction: action, minCount: 2}", ""),
        ("checkout no buy", 2, 30, "      - {eventType: checkout_viewed, expTimeframe: 0, actionInaction: action}\n      - {eventType: charged, expTimeframe: 0, actionInaction: inaction}", ""),
        ("campaign no open", 2, 21, "      - {eventType: campaign_sent, expTimeframe: 0, actionInaction: action}\n      - {eventType: notification_opened, expTimeframe: 0, actionInaction: inaction}", ""),
        ("cart abandoners", 2, 14, "      - {eventType: add_to_cart, expTimeframe: 0, actionInaction: action, minCount: 2}\n      - {eventType: charged, expTimeframe: 0, actionInaction: inaction}", ""),
        ("viewers no launch 7d", 2, 7, "      - {eventType: item_viewed, expTimeframe: 0, actionInaction: action}\n      - {eventType: rating_given, expTimeframe: 0, actionInaction: inaction}", ""),
        ("sf users", 3, 90, "      - {eventType: app_launch, expTimeframe: 0, actionInaction: action}", "    profilePropertyName: city\n    profilePropertyValue: San Francisco\n"),
        ("premium buyers", 3, 60, "      - {eventType: charged, expTimeframe: 0, actionInaction: action}", "    profilePropertyName: plan\n    profilePropertyValue: premium\n"),
        ("sf cart no buy", 4, 30, "      - {eventType: add_to_cart, expTimeframe: 0, actionInaction: action}\n      - {eventType: charged, expTimeframe: 0, actionInaction: inaction}", "    profilePropertyName: city\n    profilePropertyValue: San Francisco\n"),
        ("older premium launchers", 3, 30, "      - {eventType: app_launch, expTimeframe: 0, actionInaction: action, minCount: 3}", "    profilePropertyName: plan\n    profilePropertyValue: premium\n    profileProperties: {age: 45}\n"),
        ("renewed then rated", 1, 90, "      - {eventType: subscription_renewed, expTimeframe: 0, actionInaction: action}\n      - {eventType: rating_given, expTimeframe: 0, actionInaction: action}", ""),
    ]
)

BASELINE_SQL = """
SELECT user_id, event_name,
       count(*) FILTER (WHERE ts >= ?::TIMESTAMP - INTERVAL 7 DAY) AS n7,
       count(*) FILTER (WHERE ts >= ?::TIMESTAMP - INTERVAL 30 DAY) AS n30,
       count(*) AS n90
FROM analytics.event_snapshots
WHERE ts >= ?::TIMESTAMP - INTERVAL 90 DAY AND ts < ?
GROUP BY user_id, event_name
"""


def generate(con, n_events: int, n_users: int, seed: int = 1) -> None:
    rng = np.random.default_rng(seed)
    end = datetime.combine(AS_OF + timedelta(days=1), datetime.min.time())
    activity = rng.lognormal(0.0, 1.0, n_users)  # a few heavy users, a long tail of light ones
    users = rng.choice(n_users, n_events, p=activity / activity.sum())
    names = rng.choice(len(EVENT_TYPES), n_events, p=WEIGHTS / WEIGHTS.sum())
    offsets = rng.integers(0, 120 * 86_400_000_000, n_events)
    ts = np.datetime64(end, "us") - offsets.astype("timedelta64[us]")
    cats = rng.integers(0, len(CATEGORIES), n_events)
    pays = rng.integers(0, len(PAYMENTS), n_events)
    items = rng.integers(1, 5, n_events)
    props = np.where(
        np.isin(names, [2, 3]),
        np.char.add(np.char.add('{"category":"', np.array(CATEGORIES)[cats]), '"}'),
        np.where(
            names == 5,
            np.char.add(np.char.add(np.char.add(np.char.add('{"category":"', np.array(CATEGORIES)[cats]), '","payment_method":"'),
                                    np.array(PAYMENTS)[pays]), np.char.add(np.char.add('","items":', items.astype(str)), "}")),
            "{}",
        ),
    )
    pa.table({
        "event_id": pa.array(np.char.add("e", np.arange(n_events).astype(str))),
        "user_id": pa.array(np.char.add("u", users.astype(str))),
        "event_name": pa.array(np.array(EVENT_TYPES)[names]),
        "ts": pa.array(ts),
        "properties": pa.array(props),
    })
    con.execute("CREATE TABLE analytics.event_snapshots AS SELECT event_id, user_id, event_name, ts, "
                "CAST(properties AS JSON) AS properties, DATE '2026-06-30' AS snapshot_date FROM events ORDER BY ts")
    pa.table({
        "user_id": pa.array(np.char.add("u", np.arange(n_users).astype(str))),
        "city": pa.array(np.where(rng.random(n_users) < 0.14, "San Francisco", "Elsewhere")),
        "plan": pa.array(rng.choice(["free", "plus", "premium"], n_users)),
        "age": pa.array(rng.integers(18, 70, n_users)),
    })
    con.execute("CREATE TABLE analytics.profiles AS SELECT * FROM profiles")


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--users", type=int, default=500_000)
    args = parser.parse_args()
    segments = load_segments_text(SEGMENTS_YAML, "benchmark").past
    assert len(segments) == 20
    with tempfile.TemporaryDirectory() as tmp, warehouse.connect(Path(tmp) / "bench.duckdb") as con:
        gen = timed(lambda: generate(con, args.events, args.users))
        print(f"generated {args.events:,} events for {args.users:,} users in {gen:.1f} s")
        cutoff = datetime.combine(AS_OF + timedelta(days=1), datetime.min.time())
        query = compile_past_segments(segments, as_of=AS_OF, profile_columns=read_profile_columns(con), include_all_users=True)
        results = {}
        for _attempt in range(2):  # the first pass warms the file cache for both
            results["baseline"] = timed(lambda: con.execute(f"CREATE OR REPLACE TEMP TABLE _b AS {BASELINE_SQL}", [cutoff] * 4))
            results["segments"] = timed(lambda: con.execute(f"CREATE OR REPLACE TEMP TABLE _s AS {query.sql}", query.params))
        sizes = con.execute("SELECT segment_name, count(*) FROM _s GROUP BY 1 ORDER BY 1").fetchall()
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    for name, n in sizes:
        print(f"  {name:<26} {n:>9,}")
    print(f"baseline (7/30/90-day counts per user and event type): {results['baseline']:.2f} s")
    print(f"20 segments + All Users:                               {results['segments']:.2f} s")
    print(f"ratio segments / baseline: {results['segments'] / results['baseline']:.2f}x (target <= 3x)")
    print(f"peak RSS: {peak_gb:.2f} GB (target < 6 GB)")


if __name__ == "__main__":
    main()
