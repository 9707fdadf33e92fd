"""Time live-segment evaluation on synthetic events: ``python scripts/benchmark_live.py [events] [batches]``.

Feeds the events in ``batches`` arrival-ordered batches (as a sensor would, one per tick)
to one subtype 1 and one subtype 2 segment, then flushes the remaining deadlines.
"""

from __future__ import annotations

import random
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl

from segment_pipeline.config.segments import SegmentDefinition
from segment_pipeline.live.engine import flush_deadlines, process_events
from segment_pipeline.live.store import connect

SEGMENTS = [
    SegmentDefinition.model_validate(
        {
            "segmentName": "visa login",
            "segmentType": "live",
            "segmentSubtype": 1,
            "segmentTimeframe": 0,
            "eventSequence": [
                {"eventType": "login", "actionInaction": "action", "eventProperties": {"payment_method": "visa"}}
            ],
        }
    ),
    SegmentDefinition.model_validate(
        {
            "segmentName": "abandoned cart",
            "segmentType": "live",
            "segmentSubtype": 2,
            "segmentTimeframe": 0,
            "eventSequence": [
                {"eventType": "added_to_cart", "expTimeframe": 30, "actionInaction": "action"},
                {"eventType": "charged", "actionInaction": "inaction"},
            ],
        }
    ),
]


def synthetic(n: int, start: datetime, users: int) -> pl.DataFrame:
    rng = random.Random(0)
    names = ["login", "added_to_cart", "charged", "item_viewed"]
    return pl.DataFrame(
        {
            "event_id": [f"e{i}" for i in range(n)],
            "user_id": [f"u{rng.randrange(users)}" for _ in range(n)],
            "event_name": [rng.choice(names) for _ in range(n)],
            # about a second apart, up to 5 minutes out of order
            "ts": [start + timedelta(seconds=i - rng.randrange(300)) for i in range(n)],
            "properties": [f'{{"payment_method": "{rng.choice(["visa", "amex"])}"}}' for _ in range(n)],
        }
    )


def main(n: int = 200_000, batches: int = 20) -> None:
    start = datetime(2026, 3, 1)
    frame = synthetic(n, start, users=max(n // 20, 1))
    size = -(-n // batches)
    with tempfile.TemporaryDirectory() as folder, connect(Path(folder) / "bench.duckdb") as con:
        began = time.perf_counter()
        entries = 0
        for b in range(batches):
            batch = frame.slice(b * size, size)
            now = start + timedelta(seconds=(b + 1) * size)
            entries += len(process_events(con, SEGMENTS, batch, now=now).entries)
        entries += len(flush_deadlines(con, SEGMENTS, now=start + timedelta(seconds=n, hours=2)))
        elapsed = time.perf_counter() - began
    print(f"{n} events in {batches} batches: {elapsed:.2f} s ({n / elapsed:,.0f} events/s), {entries} entries")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
