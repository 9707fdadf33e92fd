"""Webhook delivery against a real HTTP server on 127.0.0.1: retries, timeouts, dead
letters, crashes between deciding and sending, and exactly-once per idempotency key."""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from segment_pipeline.live.engine import process_events
from segment_pipeline.live.outbox import deliver, idempotency_key
from segment_pipeline.storage.warehouse import connect
from segment_pipeline_tests.live.test_engine import ABANDONED, VISA, events, minutes


class Receiver:
    """A webhook receiver that fails the first ``fail_first`` requests with 500, sleeps
    ``delay_s`` before answering, and records every request it answered with 2xx."""

    def __init__(self) -> None:
        self.fail_first = 0
        self.delay_s = 0.0
        self.requests = 0
        self.accepted: list[tuple[str, dict]] = []
        self.lock = threading.Lock()

    def keys(self) -> Counter:
        return Counter(key for key, _ in self.accepted)


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with state.lock:
                state.requests += 1
                failing = state.requests <= state.fail_first
            time.sleep(state.delay_s)
            if not failing:
                with state.lock:
                    state.accepted.append((self.headers["Idempotency-Key"], body))
            self.send_response(500 if failing else 204)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def outbox(con) -> list[tuple]:
    return con.execute(
        "SELECT user_id, status, attempts FROM pipeline_state.live_outbox ORDER BY entered_at, user_id"
    ).fetchall()


def logins(n: int):
    return events(*[(f"e{i}", f"u{i}", "login", i, {"payment_method": "visa"}) for i in range(n)])


def test_delivers_payload_with_idempotency_key(con, receiver):
    state, url = receiver
    process_events(con, [ABANDONED], events(("a1", "u1", "added_to_cart", 0, {"sku": "x"})), now=minutes(60))
    result = deliver(con, url, now=minutes(61))
    key = idempotency_key("abandoned cart", "u1", minutes(30))
    assert result.delivered == [key]
    assert state.accepted == [
        (
            key,
            {
                "segment": "abandoned cart",
                "user_id": "u1",
                "entered_at": "2026-03-01T12:30:00+00:00",
                "triggering_event": {
                    "event_id": "a1",
                    "event_name": "added_to_cart",
                    "ts": "2026-03-01T12:00:00+00:00",
                    "properties": {"sku": "x"},
                },
            },
        )
    ]
    row = con.execute("SELECT * FROM analytics.live_segment_entries").fetchall()
    assert row == [("abandoned cart", "u1", minutes(30), minutes(61), 1)]
    assert deliver(con, url, now=minutes(62)).delivered == []


def test_entries_table_has_the_contract_columns(con):
    process_events(con, [VISA], logins(1), now=minutes(1))
    columns = [r[0] for r in con.execute("DESCRIBE analytics.live_segment_entries").fetchall()]
    assert columns == ["segment_name", "user_id", "entered_at", "delivered_at", "attempts"]


def test_no_url_keeps_entries_unsent(con):
    process_events(con, [VISA], logins(2), now=minutes(5))
    result = deliver(con, None, now=minutes(5))
    assert result.skipped == 2 and outbox(con) == [("u0", "pending", 0), ("u1", "pending", 0)]


def test_failing_server_that_recovers_gets_each_entry_exactly_once(con, receiver):
    state, url = receiver
    state.fail_first = 7
    process_events(con, [VISA], logins(5), now=minutes(5))
    now = minutes(5)
    for _ in range(10):
        deliver(con, url, now=now, schedule=(0, 1, 2, 4, 8), rng=random.Random(1))
        now += timedelta(minutes=1)  # past any backoff of the first attempts
    assert state.keys() == Counter({idempotency_key("visa login", f"u{i}", minutes(i)): 1 for i in range(5)})
    assert all(status == "delivered" for _, status, _ in outbox(con))
    attempts = con.execute("SELECT sum(attempts) FROM analytics.live_segment_entries").fetchone()[0]
    assert attempts == state.requests == 12


def test_retry_waits_for_the_backoff(con, receiver):
    state, url = receiver
    state.fail_first = 1
    process_events(con, [VISA], logins(1), now=minutes(0))
    deliver(con, url, now=minutes(0), schedule=(0, 10), rng=random.Random(7))
    next_at = con.execute("SELECT next_attempt_at, last_error FROM pipeline_state.live_outbox").fetchone()
    # jitter only lengthens the wait, by up to 10%
    assert minutes(0) + timedelta(seconds=10) <= next_at[0] < minutes(0) + timedelta(seconds=11)
    assert next_at[1] == "HTTP 500"
    assert deliver(con, url, now=next_at[0] - timedelta(seconds=1)).delivered == []
    assert len(deliver(con, url, now=next_at[0]).delivered) == 1


def test_timeout_counts_as_a_failed_attempt(con, receiver):
    state, url = receiver
    state.delay_s = 0.5
    process_events(con, [VISA], logins(1), now=minutes(0))
    result = deliver(con, url, now=minutes(0), timeout_s=0.1)
    assert len(result.retrying) == 1
    status, attempts, error = con.execute(
        "SELECT status, attempts, last_error FROM pipeline_state.live_outbox"
    ).fetchone()
    assert (status, attempts) == ("pending", 1) and "timed out" in error.lower()


def test_dead_letter_after_max_attempts(con, receiver):
    state, url = receiver
    state.fail_first = 10**6
    process_events(con, [VISA], logins(1), now=minutes(0))
    now, outcomes = minutes(0), []
    for _ in range(5):
        result = deliver(con, url, now=now, schedule=(0, 0.01, 0.01))
        outcomes.append((len(result.retrying), len(result.dead)))
        now += timedelta(seconds=10)
    assert outcomes == [(1, 0), (1, 0), (0, 1), (0, 0), (0, 0)]
    assert outbox(con) == [("u0", "dead", 3)] and state.requests == 3
    assert con.execute("SELECT delivered_at, attempts FROM analytics.live_segment_entries").fetchall() == [(None, 3)]


def test_unreachable_server_is_a_failed_attempt(con):
    process_events(con, [VISA], logins(1), now=minutes(0))
    result = deliver(con, "http://127.0.0.1:9/closed", now=minutes(0), timeout_s=0.5)
    assert len(result.retrying) == 1


def test_crash_between_writing_and_sending_loses_nothing(warehouse_path, receiver):
    state, url = receiver
    with connect(warehouse_path) as con:
        process_events(con, [VISA, ABANDONED], logins(3), now=minutes(5))
    # the process dies here; a new one opens the warehouse and delivers
    with connect(warehouse_path) as con:
        assert len(deliver(con, url, now=minutes(6)).delivered) == 3
    assert len(state.keys()) == 3


def test_crash_after_sending_resends_with_the_same_key(warehouse_path, receiver):
    state, url = receiver
    with connect(warehouse_path) as con:
        process_events(con, [VISA], logins(1), now=minutes(5))

    def send_then_crash(*args):
        from segment_pipeline.live.outbox import urllib_send

        urllib_send(*args)
        raise SystemExit("crash after the POST, before recording it")

    with connect(warehouse_path) as con, pytest.raises(SystemExit):
        deliver(con, url, now=minutes(6), send=send_then_crash)
    with connect(warehouse_path) as con:
        assert outbox(con) == [("u0", "pending", 0)]
        deliver(con, url, now=minutes(7))
    # at-least-once: sent twice, with one key, so the receiver can drop the duplicate
    assert len(state.accepted) == 2 and len(state.keys()) == 1


def test_reprocessing_does_not_resend(con, receiver):
    state, url = receiver
    process_events(con, [VISA], logins(2), now=minutes(5))
    deliver(con, url, now=minutes(5))
    process_events(con, [VISA], logins(2), now=minutes(6))
    deliver(con, url, now=minutes(6))
    assert state.requests == 2


def test_a_failure_after_writing_the_outbox_rolls_everything_back(con, monkeypatch):
    from segment_pipeline.live import engine

    real_enqueue = engine.enqueue

    def enqueue_then_fail(*args, **kwargs):
        real_enqueue(*args, **kwargs)
        raise RuntimeError("crash before commit")

    batch = logins(1)
    monkeypatch.setattr(engine, "enqueue", enqueue_then_fail)
    with pytest.raises(RuntimeError):
        process_events(con, [VISA], batch, now=minutes(0))
    monkeypatch.setattr(engine, "enqueue", real_enqueue)
    assert con.execute("SELECT count(*) FROM pipeline_state.live_outbox").fetchone()[0] == 0
    assert con.execute("SELECT count(*) FROM analytics.live_segment_entries").fetchone()[0] == 0
    # the event was not marked processed either, so processing it again enters the user once
    assert len(process_events(con, [VISA], batch, now=minutes(1)).entries) == 1
    assert len(process_events(con, [VISA], batch, now=minutes(2)).entries) == 0


_CRASHING_WORKER = """
import sys, time
from datetime import datetime
import polars as pl
from segment_pipeline.live.engine import process_events
from segment_pipeline.live import store
from segment_pipeline.live.outbox import deliver
from segment_pipeline_tests.live.test_engine import VISA, events

with store.connect(sys.argv[1]) as con:
    process_events(con, [VISA], events(*[(f"e{i}", f"u{i}", "login", i, {"payment_method": "visa"}) for i in range(5)]),
                   now=datetime(2026, 3, 1, 13, 0))
print("written", flush=True)

def hang(url, body, headers, timeout_s):
    print("sending", flush=True)
    time.sleep(600)  # killed here: after the outbox write, during the first POST
    return 204

deliver(sys.argv[1], sys.argv[2], now=datetime(2026, 3, 1, 13, 0), send=hang)
"""


def test_a_process_killed_between_writing_and_sending_loses_nothing(tmp_path, receiver):
    """A real SIGKILL of the worker mid-delivery: a new process delivers every entry."""
    import subprocess
    import sys

    server, url = receiver
    path = tmp_path / "w.duckdb"
    worker = subprocess.Popen(
        [sys.executable, "-c", _CRASHING_WORKER, str(path), url], stdout=subprocess.PIPE, text=True
    )
    try:
        assert worker.stdout.readline().strip() == "written"
        assert worker.stdout.readline().strip() == "sending"
    finally:
        worker.kill()
        worker.wait(timeout=30)
    from datetime import datetime

    result = deliver(path, url, now=datetime(2026, 3, 1, 13, 1))
    assert len(result.delivered) == 5
    assert sorted(body["user_id"] for _, body in server.accepted) == [f"u{i}" for i in range(5)]
    assert all(n == 1 for n in server.keys().values())
