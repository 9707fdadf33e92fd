"""Benchmark: 20 varied past segments for one day over 10M events / 500k users.

Prints the time of the segment evaluation next to a baseline measured in the same
run on the same events: one DuckDB query computing, per user and event type, the
7/30/90-day counts. Target (issue 3): segments within 3x the baseline, peak memory
under 6 GB.

    .venv/bin/python scripts/benchmark_segments.py [--events 10000000] [--users 500000] [--copies 1] [--chunk-size 100]

``--copies N`` evaluates N renamed copies of the 20 segments (time frames shifted by
up to 6 days so their counts differ): 100 copies are 2,000 segments, in chunks.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np

from segment_pipeline.config.segments import load_segments_text
from segment_pipeline.rules.compiler import CHUNK_SIZE, compile_past_segment_chunks, read_profile_columns
from segment_pipeline.storage import warehouse

AS_OF = date(2026, 6, 30)
EVENT_TYPES = [
    "app_launch",
    "login",
    "item_viewed",
    "add_to_cart",
    "checkout_viewed",
    "charged",
    "search",
    "notification_opened",
    "campaign_sent",
    "rating_given",
    "uninstall",
    "subscription_renewed",
]
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
        (
            "charged 3 times",
            1,
            90,
            "      - {eventType: charged, expTimeframe: 0, actionInaction: action, minCount: 3}",
            "",
        ),
        (
            "added to cart 5 times",
            1,
            60,
            "      - {eventType: add_to_cart, expTimeframe: 0, actionInaction: action, minCount: 5}",
            "",
        ),
        (
            "visa buyers",
            1,
            60,
            "      - {eventType: charged, expTimeframe: 0, actionInaction: action, minCount: 2, eventProperties: {payment_method: visa}}",
            "",
        ),
        (
            "concert buyers",
            1,
            90,
            "      - {eventType: charged, expTimeframe: 0, actionInaction: action, eventProperties: {category: concert}}",
            "",
        ),
        (
            "big spenders",
            1,
            90,
            "      - {eventType: charged, expTimeframe: 0, actionInaction: action, eventProperties: {items: 3}}",
            "",
        ),
        (
            "view cart buy",
            1,
            30,
            "      - {eventType: item_viewed, expTimeframe: 0, actionInaction: action}\n      - {eventType: add_to_cart, expTimeframe: 0, actionInaction: action}\n      - {eventType: charged, expTimeframe: 0, actionInaction: action}",
            "",
        ),
        (
            "concert funnel",
            1,
            60,
            "      - {eventType: item_viewed, expTimeframe: 0, actionInaction: action, eventProperties: {category: concert}}\n      - {eventType: add_to_cart, expTimeframe: 0, actionInaction: action, eventProperties: {category: concert}}\n      - {eventType: checkout_viewed, expTimeframe: 0, actionInaction: action}",
            "",
        ),
        (
            "search then view twice",
            1,
            14,
            "      - {eventType: search, expTimeframe: 0, actionInaction: action}\n      - {eventType: item_viewed, expTimeframe: 0, actionInaction: action, minCount: 2}",
            "",
        ),
        (
            "checkout no buy",
            2,
            30,
            "      - {eventType: checkout_viewed, expTimeframe: 0, actionInaction: action}\n      - {eventType: charged, expTimeframe: 0, actionInaction: inaction}",
            "",
        ),
        (
            "campaign no open",
            2,
            21,
            "      - {eventType: campaign_sent, expTimeframe: 0, actionInaction: action}\n      - {eventType: notification_opened, expTimeframe: 0, actionInaction: inaction}",
            "",
        ),
        (
            "cart abandoners",
            2,
            14,
            "      - {eventType: add_to_cart, expTimeframe: 0, actionInaction: action, minCount: 2}\n      - {eventType: charged, expTimeframe: 0, actionInaction: inaction}",
            "",
        ),
        (
            "viewers no launch 7d",
            2,
            7,
            "      - {eventType: item_viewed, expTimeframe: 0, actionInaction: action}\n      - {eventType: rating_given, expTimeframe: 0, actionInaction: inaction}",
            "",
        ),
        (
            "sf users",
            3,
            90,
            "      - {eventType: app_launch, expTimeframe: 0, actionInaction: action}",
            "    profilePropertyName: city\n    profilePropertyValue: San Francisco\n",
        ),
        (
            "premium buyers",
            3,
            60,
            "      - {eventType: charged, expTimeframe: 0, actionInaction: action}",
            "    profilePropertyName: plan\n    profilePropertyValue: premium\n",
        ),
        (
            "sf cart no buy",
            4,
            30,
            "      - {eventType: add_to_cart, expTimeframe: 0, actionInaction: action}\n      - {eventType: charged, expTimeframe: 0, actionInaction: inaction}",
            "    profilePropertyName: city\n    profilePropertyValue: San Francisco\n",
        ),
        (
            "older premium launchers",
            3,
            30,
            "      - {eventType: app_launch, expTimeframe: 0, actionInaction: action, minCount: 3}",
            "    profilePropertyName: plan\n    profilePropertyValue: premium\n    profileProperties: {age: 45}\n",
        ),
        (
            "renewed then rated",
            1,
            90,
            "      - {eventType: subscription_renewed, expTimeframe: 0, actionInaction: action}\n      - {eventType: rating_given, expTimeframe: 0, actionInaction: action}",
            "",
        ),
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


def generate(con, n_events: int, n_users: int, seed: float = 0.42) -> None:
    """Events generated inside DuckDB (seeded), so the generator's memory does not count."""
    cumulative = np.cumsum(WEIGHTS / WEIGHTS.sum())
    pick = (
        "CASE "
        + " ".join(
            f"WHEN r_type < {c:.6f} THEN '{name}'" for c, name in zip(cumulative[:-1], EVENT_TYPES[:-1], strict=True)
        )
        + f" ELSE '{EVENT_TYPES[-1]}' END"
    )
    categories = "['" + "','".join(CATEGORIES) + "']"
    payments = "['" + "','".join(PAYMENTS) + "']"
    end = datetime.combine(AS_OF + timedelta(days=1), datetime.min.time())
    con.execute("SELECT setseed(?)", [seed])
    con.execute(
        f"""CREATE TABLE analytics.event_snapshots AS
        WITH r AS (
            SELECT i, random() AS r_user, random() AS r_type, random() AS r_ts, random() AS r_a, random() AS r_b
            FROM range(?) t(i)
        ), typed AS (
            SELECT *, {pick} AS event_name FROM r
        )
        SELECT 'e' || i AS event_id,
               -- squaring skews activity: a few heavy users, a long tail of light ones
               'u' || CAST(floor(? * r_user * r_user) AS BIGINT) AS user_id,
               event_name,
               CAST(? AS TIMESTAMP) - to_microseconds(CAST(r_ts * 120 * 86400e6 AS BIGINT)) AS ts,
               CAST(CASE
                   WHEN event_name IN ('item_viewed', 'add_to_cart')
                       THEN json_object('category', {categories}[1 + CAST(floor(r_a * 5) AS INT)])
                   WHEN event_name = 'charged'
                       THEN json_object('category', {categories}[1 + CAST(floor(r_a * 5) AS INT)],
                                        'payment_method', {payments}[1 + CAST(floor(r_b * 4) AS INT)],
                                        'items', 1 + CAST(floor(r_b * 16) AS INT) % 4)
                   ELSE '{{}}' END AS JSON) AS properties,
               DATE '2026-06-30' AS snapshot_date
        FROM typed ORDER BY ts""",
        [n_events, n_users, end],
    )
    con.execute(
        """CREATE TABLE analytics.profiles AS
        SELECT 'u' || i AS user_id,
               CASE WHEN random() < 0.14 THEN 'San Francisco' ELSE 'Elsewhere' END AS city,
               ['free', 'plus', 'premium'][1 + CAST(floor(random() * 3) AS INT)] AS plan,
               18 + CAST(floor(random() * 52) AS BIGINT) AS age
        FROM range(?) t(i)""",
        [n_users],
    )


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--users", type=int, default=500_000)
    parser.add_argument("--copies", type=int, default=1)
    parser.add_argument("--chunk-size", type=int, default=CHUNK_SIZE, help="segments per query")
    args = parser.parse_args()
    segments = load_segments_text(SEGMENTS_YAML, "benchmark").past
    assert len(segments) == 20
    segments = [
        s if c == 0 else s.model_copy(update={"name": f"{s.name} #{c}", "timeframe_days": s.timeframe_days + c % 7})
        for c in range(args.copies)
        for s in segments
    ]
    with tempfile.TemporaryDirectory() as tmp, warehouse.connect(Path(tmp) / "bench.duckdb") as con:
        gen = timed(lambda: generate(con, args.events, args.users))
        print(f"generated {args.events:,} events for {args.users:,} users in {gen:.1f} s")
        cutoff = datetime.combine(AS_OF + timedelta(days=1), datetime.min.time())
        queries = compile_past_segment_chunks(
            segments,
            as_of=AS_OF,
            profile_columns=read_profile_columns(con),
            include_all_users=True,
            chunk_size=args.chunk_size,
        )

        def evaluate() -> None:
            con.execute("CREATE OR REPLACE TEMP TABLE _s (segment_name VARCHAR, user_id VARCHAR)")
            for query in queries:
                con.execute(f"INSERT INTO _s {query.sql}", query.params)

        results = {}
        for _attempt in range(2):  # the first pass warms the file cache for both
            results["baseline"] = timed(
                lambda: con.execute(f"CREATE OR REPLACE TEMP TABLE _b AS {BASELINE_SQL}", [cutoff] * 4)
            )
            results["segments"] = timed(evaluate)
        sizes = con.execute("SELECT segment_name, count(*) FROM _s GROUP BY 1 ORDER BY 1").fetchall()
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    for name, n in sizes[:21]:
        print(f"  {name:<26} {n:>9,}")
    print(f"baseline (7/30/90-day counts per user and event type): {results['baseline']:.2f} s")
    label = f"{len(segments)} segments + All Users ({len(queries)} queries):"
    print(f"{label:<55}{results['segments']:.2f} s")
    print(f"ratio segments / baseline: {results['segments'] / results['baseline']:.2f}x (target <= 3x)")
    print(f"peak RSS: {peak_gb:.2f} GB (target < 6 GB)")


if __name__ == "__main__":
    main()
