"""One live tick, as the live_segments sensor runs it: evaluate new files, then deliver.

Holds the live store's tick lock throughout (a second, overlapping tick skips), the
store's DuckDB file only while evaluating and for the short writes of answers (never
during an HTTP call), and stops starting requests once ``budget_s`` is spent, so a
tick ends well inside Dagster's 60-second sensor deadline even with a slow receiver.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from segment_pipeline.config.segments import SegmentDefinition
from segment_pipeline.ingest.sources import SourceFile
from segment_pipeline.live import store
from segment_pipeline.live.engine import ProcessResult, StartResult, process_files, start_watermark
from segment_pipeline.live.outbox import OUTBOX, RETRY_SCHEDULE_S, DeliveryResult, Sender, deliver, urllib_send
from segment_pipeline.storage.warehouse import scalar


@dataclass
class TickResult:
    skipped: str | None = None  # why nothing was done
    started: StartResult | None = None  # set on the first tick of a new live store
    processed: ProcessResult = field(default_factory=ProcessResult)
    delivery: DeliveryResult = field(default_factory=DeliveryResult)
    outbox: dict[str, int] = field(default_factory=dict)  # status -> rows
    rejected_total: int = 0

    def summary(self, url: str | None) -> str:
        if self.skipped:
            return self.skipped
        p, d = self.processed, self.delivery
        first = ""
        if self.started is not None:
            first = (
                f"first start: {self.started.files_present} file(s) already present and events before "
                f"{self.started.history_until:%Y-%m-%d %H:%M:%S} UTC taken as history, not live; "
            )
        return (
            f"{first}{p.events_new} new events, {len(p.entries)} entries, {p.pending} pending, "
            f"{p.rejected} rejected ({self.rejected_total} in all); delivered {len(d.delivered)}, "
            f"retrying {len(d.retrying)}, dead {len(d.dead)}, left for next tick {d.deferred}; outbox {self.outbox}"
            + ("" if url else " (no SEGMENT_PIPELINE_WEBHOOK_URL: kept, not sent)")
        )


def run_tick(
    store_path: Path | str,
    segments: list[SegmentDefinition],
    files: list[SourceFile],
    *,
    url: str | None,
    now: datetime,
    late_tolerance_seconds: float,
    secret: str | None = None,
    timeout_s: float = 5.0,
    budget_s: float = 20.0,
    schedule: Sequence[float] = RETRY_SCHEDULE_S,
    send: Sender = urllib_send,
    concurrency: int = 4,
) -> TickResult:
    """Raises ``duckdb.IOException`` when another process holds the store (the nightly copy
    reading it): nothing was changed, the next tick tries again."""
    deadline = time.monotonic() + budget_s
    with store.tick_lock(store_path) as held:
        if not held:
            return TickResult(skipped="another live tick on this live store is still running; skipped")
        result = TickResult()
        with store.connect(store_path, busy_retries=3) as con:
            result.started = start_watermark(con, files, now=now, late_tolerance_seconds=late_tolerance_seconds)
            result.processed = process_files(
                con, segments, files, now=now, late_tolerance_seconds=late_tolerance_seconds
            )
        result.delivery = deliver(
            store_path,
            url,
            now=now,
            schedule=schedule,
            timeout_s=timeout_s,
            deadline=deadline,
            secret=secret,
            send=send,
            concurrency=concurrency,
        )
        with store.connect(store_path, busy_retries=3) as con:
            result.outbox = dict(con.execute(f"SELECT status, count(*) FROM {OUTBOX} GROUP BY 1 ORDER BY 1").fetchall())
            result.rejected_total = scalar(con, "SELECT count(*) FROM pipeline_state.live_rejected")
    return result
