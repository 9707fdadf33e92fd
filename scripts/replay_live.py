"""Replay a stream with known answers through the live-segment engine and a real local webhook.

Simulated time advances one sensor tick at a time; each tick lands the events that
arrived since the last one as a new NDJSON file, then runs what the live_segments
sensor runs (``live.tick.run_tick`` on a live store file) with ``now`` = the simulated
clock. A first tick before any file lands starts the store's watermark. The
webhook on 127.0.0.1 answers 503 for part of the run. Prints whether every expected
entry arrived exactly once (and nothing else), the latency from each entry's time
(the action for subtype 1, the deadline for subtype 2) to its delivery, and the
throughput of the tick work in events per second.

    .venv/bin/python scripts/replay_live.py [--users 3000] [--tick 30] [--tolerance 30] [--receiver-delay 0]

With ``--receiver-delay 2`` the webhook takes 2 s per answer: each tick stops sending at
its 20 s budget and leaves the rest to the next one (the longest tick is printed).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import threading
import time
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from segment_pipeline.config.segments import load_segments_text
from segment_pipeline.ingest.sources import SourceError, discover
from segment_pipeline.live.outbox import RETRY_SCHEDULE_S
from segment_pipeline.live.tick import run_tick

SEGMENTS = load_segments_text("""
kind: segments
segmentDefinitions:
  - {segmentName: app launched now, segmentType: live, segmentSubtype: 1, segmentTimeframe: 0,
     eventSequence: [{eventType: app_launch, expTimeframe: 0, actionInaction: action}]}
  - segmentName: checkout abandoned
    segmentType: live
    segmentSubtype: 2
    segmentTimeframe: 0
    eventSequence:
      - {eventType: checkout_viewed, expTimeframe: 5, actionInaction: action}
      - {eventType: charged, expTimeframe: 0, actionInaction: inaction}
""").live
START = datetime(2026, 11, 23, 12, 0)
WINDOW = timedelta(minutes=5)


def stream(users: int, span_min: int, rng: random.Random) -> tuple[list[dict], dict[tuple[str, str], datetime]]:
    """Events (with arrival times) and the expected entries: key -> entry time."""
    events, expected = [], {}
    for u in range(users):
        user = f"u{u}"
        t0 = START + timedelta(seconds=rng.uniform(0, span_min * 60))
        events.append({"user_id": user, "event_name": "app_launch", "ts": t0})
        expected[("app launched now", user)] = t0
        if rng.random() < 0.6:
            seen = t0 + timedelta(seconds=rng.uniform(5, 60))
            events.append({"user_id": user, "event_name": "checkout_viewed", "ts": seen})
            fate = rng.random()
            if fate < 0.4:  # buys within the window: no entry
                events.append(
                    {"user_id": user, "event_name": "charged", "ts": seen + timedelta(seconds=rng.uniform(10, 280))}
                )
            elif fate < 0.7:  # buys after the window: entry at the deadline all the same
                events.append(
                    {"user_id": user, "event_name": "charged", "ts": seen + timedelta(seconds=rng.uniform(320, 900))}
                )
                expected[("checkout abandoned", user)] = seen + WINDOW
            else:
                expected[("checkout abandoned", user)] = seen + WINDOW
    for i, e in enumerate(events):
        e["event_id"] = f"e{i}"
        # Most events land within seconds; some arrive up to 20 s late, out of order.
        e["arrives"] = e["ts"] + timedelta(seconds=rng.choice([1, 2, 5, 20]))
    return events, expected


class Webhook:
    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.down = False
        self.received: dict[tuple[str, str], list[datetime]] = {}
        self.clock = START
        self.lock = threading.Lock()

    def serve(self) -> tuple[ThreadingHTTPServer, str]:
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                time.sleep(hook.delay_s)
                with hook.lock:
                    if not hook.down:
                        hook.received.setdefault((body["segment"], body["user_id"]), []).append(hook.clock)
                self.send_response(503 if hook.down else 204)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server, f"http://127.0.0.1:{server.server_address[1]}/hook"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=3000)
    parser.add_argument("--minutes", type=int, default=30, help="span of simulated time with new users")
    parser.add_argument("--tick", type=int, default=30, help="sensor interval, seconds")
    parser.add_argument("--tolerance", type=int, default=30, help="late-event tolerance, seconds")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--receiver-delay", type=float, default=0.0, help="seconds the webhook takes per answer")
    args = parser.parse_args()
    events, expected = stream(args.users, args.minutes, random.Random(args.seed))
    hook = Webhook(args.receiver_delay)
    server, url = hook.serve()
    down_from, down_to = START + timedelta(minutes=10), START + timedelta(minutes=14)
    busy_s, longest_s, processed, ticks, deferred = 0.0, 0.0, 0, 0, 0
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "events"
        folder.mkdir()
        clock = START
        end = START + timedelta(minutes=args.minutes + 25)
        live_store = Path(tmp) / "warehouse.live.duckdb"
        run_tick(live_store, SEGMENTS, [], url=url, now=clock, late_tolerance_seconds=args.tolerance)
        while clock <= end:
            previous, clock = clock, clock + timedelta(seconds=args.tick)
            batch = [e for e in events if previous < e["arrives"] <= clock]
            if batch:
                (folder / f"tick_{ticks:05d}.ndjson").write_text(
                    "".join(
                        json.dumps(
                            {
                                k: (v.isoformat() if isinstance(v, datetime) else v)
                                for k, v in e.items()
                                if k != "arrives"
                            }
                        )
                        + "\n"
                        for e in batch
                    )
                )
            hook.clock, hook.down = clock, down_from <= clock < down_to
            started = time.perf_counter()
            try:
                files = discover(str(folder / "*.ndjson"), env_var="replay")
            except SourceError:
                files = []
            result = run_tick(live_store, SEGMENTS, files, url=url, now=clock, late_tolerance_seconds=args.tolerance)
            busy_s += time.perf_counter() - started
            longest_s = max(longest_s, time.perf_counter() - started)
            deferred += result.delivery.deferred
            processed += len(batch)
            ticks += 1
    server.shutdown()
    got = set(hook.received)
    duplicates = sum(len(v) - 1 for v in hook.received.values())
    latencies = {k: (hook.received[k][0] - t).total_seconds() for k, t in expected.items() if k in hook.received}
    # an entry first tried during the outage waits for its third try: 5 s, then 5 min later
    recovered_by = down_to + timedelta(seconds=RETRY_SCHEDULE_S[1] + RETRY_SCHEDULE_S[2] + 2 * args.tick)
    outside = [v for k, v in latencies.items() if not (down_from <= expected[k] + timedelta(seconds=v) <= recovered_by)]
    print(
        f"events {len(events):,}, ticks {ticks}, expected entries {len(expected):,} "
        f"({sum(1 for s, _ in expected if s == 'checkout abandoned'):,} subtype 2)"
    )
    print(
        f"delivered {len(got & set(expected)):,} of {len(expected):,}; unexpected {len(got - set(expected))}; duplicates {duplicates}"
    )
    print(f"webhook down {down_from:%H:%M}-{down_to:%H:%M} simulated")
    print(
        f"latency entry time -> delivery (s): all: median {statistics.median(latencies.values()):.0f}, "
        f"max {max(latencies.values()):.0f}; outside the outage: median {statistics.median(outside):.0f}, "
        f"max {max(outside):.0f} (tick {args.tick} s + tolerance {args.tolerance} s = {args.tick + args.tolerance} s bound)"
    )
    print(
        f"throughput: {processed:,} events in {busy_s:.1f} s of tick work = {processed / busy_s:,.0f} events/s "
        f"(mean tick {busy_s / ticks * 1000:.0f} ms, longest {longest_s:.1f} s; "
        f"{deferred} sends left to a later tick by the time budget)"
    )


if __name__ == "__main__":
    main()
