"""Webhook delivery you can leave running for days: retries over a day, re-drive, no redirects,
http(s) only, a time budget per tick, no DuckDB lock during HTTP, no double sends from
overlapping ticks, signed requests. Real HTTP servers on 127.0.0.1, real live-store files;
simulated time goes through the ``now`` argument."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import standardwebhooks

from segment_pipeline.live import store
from segment_pipeline.live.engine import process_events
from segment_pipeline.live.outbox import RETRY_SCHEDULE_S, deliver, idempotency_key, redrive
from segment_pipeline.settings import SettingsError, load_settings
from segment_pipeline.storage.connections import open_duckdb
from segment_pipeline_tests.live.receivers import Receiver, Request, free_port
from segment_pipeline_tests.live.test_engine import VISA, events, minutes

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def receivers():
    started: list[Receiver] = []

    def make(**kwargs) -> Receiver:
        receiver = Receiver(**kwargs)
        started.append(receiver)
        return receiver

    yield make
    for receiver in started:
        receiver.stop()


def enqueue_logins(path: Path, n: int, segment=VISA) -> None:
    with store.connect(path) as con:
        process_events(
            con,
            [segment],
            events(*[(f"e{i}", f"u{i}", "login", i, {"payment_method": "visa"}) for i in range(n)]),
            now=minutes(n),
        )


def outbox(path: Path) -> list[tuple]:
    with store.connect(path) as con:
        return con.execute(
            "SELECT user_id, status, attempts, delivered_at, last_error FROM pipeline_state.live_outbox ORDER BY user_id"
        ).fetchall()


def test_the_retry_schedule_spans_more_than_a_day():
    assert RETRY_SCHEDULE_S[0] == 0 and sum(RETRY_SCHEDULE_S) >= 24 * 3600


@pytest.mark.slow
def test_a_receiver_refusing_connections_for_an_hour_loses_no_entry(tmp_path, receivers):
    path = tmp_path / "live.duckdb"
    enqueue_logins(path, 20)
    port = free_port()
    url = f"http://127.0.0.1:{port}/hook"
    receiver = None
    now, start = minutes(20), minutes(20)
    while now <= start + timedelta(hours=4):
        if receiver is None and now >= start + timedelta(hours=1):
            receiver = receivers().start(port)  # the receiver comes back after an hour
        result = deliver(path, url, now=now, timeout_s=2)
        assert result.dead == []
        now += timedelta(minutes=1)
    rows = outbox(path)
    assert [status for _, status, *_ in rows] == ["delivered"] * 20
    assert all(delivered_at >= start + timedelta(hours=1) for *_, delivered_at, _ in rows)
    # tries at once, +5 s, +5 min, +30 min (all refused), then +2 h: delivered
    assert {attempts for _, _, attempts, *_ in rows} == {5}
    assert receiver.keys() == Counter({idempotency_key("visa login", f"u{i}", minutes(i)): 1 for i in range(20)})


@pytest.mark.slow
def test_dead_letter_after_a_day_of_failures_then_redrive_delivers(tmp_path, receivers):
    path = tmp_path / "live.duckdb"
    enqueue_logins(path, 2)
    receiver = receivers(status=503).start()
    now = minutes(2)
    while now <= minutes(2) + timedelta(hours=36):  # 27.6 h of waits, +10% jitter at most
        deliver(path, receiver.url, now=now)
        now += timedelta(minutes=10)
    assert set(receiver.keys().values()) == {len(RETRY_SCHEDULE_S)}
    assert {(status, attempts) for _, status, attempts, *_ in outbox(path)} == {("dead", 8)}
    with store.connect(path) as con:
        spans = con.execute("SELECT last_attempt_at - created_at FROM pipeline_state.live_outbox").fetchall()
    assert all(span >= timedelta(hours=24) for (span,) in spans)
    assert deliver(path, receiver.url, now=now + timedelta(days=3)).retrying == []  # dead stays dead

    receiver.status = 200
    with store.connect(path) as con:
        assert redrive(con, now=now, segment="visa login") == 2
    assert len(deliver(path, receiver.url, now=now).delivered) == 2
    assert {(status, attempts) for _, status, attempts, *_ in outbox(path)} == {("delivered", 9)}


def test_redrive_command_by_segment_and_time(tmp_path, receivers):
    path = tmp_path / "live.duckdb"
    enqueue_logins(path, 3)
    with store.connect(path) as con:
        con.execute("UPDATE pipeline_state.live_outbox SET status = 'dead', retry_step = 8, attempts = 8")

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "segment_pipeline.live.redrive", "--store", str(path), *args],
            capture_output=True,
            text=True,
            cwd=PROJECT_ROOT,
            timeout=120,
        )

    other = run("--segment", "no such segment")
    assert other.returncode == 0 and "re-drove 0 dead-lettered entries" in other.stdout
    since = run("--segment", "visa login", "--since", minutes(1).isoformat())
    assert since.returncode == 0 and "re-drove 2 dead-lettered entries" in since.stdout, since.stderr
    assert [status for _, status, *_ in outbox(path)] == ["dead", "pending", "pending"]
    bad = run("--since", "yesterday")
    assert bad.returncode == 2 and "ISO date" in bad.stderr and "Traceback" not in bad.stderr
    receiver = receivers().start()  # the command re-drives as of the wall clock
    assert len(deliver(path, receiver.url, now=datetime.now(UTC)).delivered) == 2


def test_a_redirect_is_a_failure_and_nothing_reaches_the_other_host(tmp_path, receivers):
    path = tmp_path / "live.duckdb"
    enqueue_logins(path, 1)
    elsewhere = receivers().start()
    redirecting = receivers(status=302, location=elsewhere.url).start()
    result = deliver(path, redirecting.url, now=minutes(1))
    assert len(result.retrying) == 1 and result.delivered == []
    assert elsewhere.requests == []
    assert [(r.method, r.headers["Idempotency-Key"]) for r in redirecting.requests] == [("POST", result.retrying[0])]
    [(_, status, attempts, delivered_at, error)] = outbox(path)
    assert (status, attempts, delivered_at, error) == ("pending", 1, None, "HTTP 302")
    with store.connect(path) as con:
        assert con.execute("SELECT delivered_at FROM analytics.live_segment_entries").fetchall() == [(None,)]


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "data:text/plain,hello", "ftp://example.com/x", "http:///nohost"]
)
def test_only_http_urls_are_accepted_at_start_up(url, tmp_path):
    with pytest.raises(SettingsError) as error:
        load_settings({"SEGMENT_PIPELINE_WEBHOOK_URL": url})
    message = str(error.value)
    assert "SEGMENT_PIPELINE_WEBHOOK_URL" in message and url in message and "\n" not in message
    # and deliver refuses it too, before sending or changing anything
    path = tmp_path / "live.duckdb"
    enqueue_logins(path, 1)
    with pytest.raises(ValueError, match="SEGMENT_PIPELINE_WEBHOOK_URL"):
        deliver(path, url, now=minutes(1))
    assert [(status, attempts) for _, status, attempts, *_ in outbox(path)] == [("pending", 0)]


def test_loading_the_definitions_with_a_file_url_fails_with_one_clear_line():
    env = {**os.environ, "SEGMENT_PIPELINE_WEBHOOK_URL": "file:///etc/passwd"}
    loaded = subprocess.run(
        [sys.executable, "-c", "from segment_pipeline.definitions import defs; defs()"],
        capture_output=True,
        text=True,
        env=env,
        cwd=PROJECT_ROOT,
        timeout=300,
    )
    assert loaded.returncode != 0
    assert loaded.stderr.startswith("Error: SEGMENT_PIPELINE_WEBHOOK_URL='file:///etc/passwd' is not an http(s) URL")
    assert loaded.stderr.count("\n") == 1  # one line, no traceback


def test_a_slow_receiver_the_tick_keeps_its_budget_and_holds_no_lock_while_sending(tmp_path, receivers):
    path = tmp_path / "live.duckdb"
    enqueue_logins(path, 12)
    readable: list[int] = []

    def read_the_store_from_another_process(request: Request) -> None:
        if not readable:  # what the nightly copy does: open the live store read-only meanwhile
            probe = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    "import duckdb, sys; duckdb.connect(sys.argv[1], read_only=True).execute("
                    "'SELECT count(*) FROM pipeline_state.live_outbox').fetchall()",
                    str(path),
                ],
                capture_output=True,
                timeout=120,
            )
            readable.append(probe.returncode)

    slow = receivers(delay_s=0.5, on_request=read_the_store_from_another_process).start()
    sent_per_tick = []
    for tick in range(20):
        result = deliver(path, slow.url, now=minutes(20 + tick), deadline=time.monotonic() + 1.2)
        sent_per_tick.append(len(result.delivered))
        if not result.deferred:
            break
    assert readable == [0]
    # no request starts once the budget is spent: at most ceil(1.2 / 0.5) per tick (the first
    # one also waits for the probe), the rest waits for the next tick and is not lost
    assert max(sent_per_tick) <= 3 and len(sent_per_tick) >= 4
    assert sum(sent_per_tick) == 12 and all(n == 1 for n in slow.keys().values())


_TICK = """
import sys
from datetime import datetime
from segment_pipeline.live.tick import run_tick
from segment_pipeline_tests.live.test_engine import VISA
result = run_tick(sys.argv[1], [VISA], [], url=sys.argv[2], now=datetime(2026, 3, 1, 13, 0), late_tolerance_seconds=30)
print(result.summary(sys.argv[2]), flush=True)
"""


def test_two_overlapping_ticks_do_not_send_twice(tmp_path, receivers):
    path = tmp_path / "live.duckdb"
    enqueue_logins(path, 8)
    slow = receivers(delay_s=0.4).start()
    ticks = [
        subprocess.Popen(
            [sys.executable, "-c", _TICK, str(path), slow.url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=PROJECT_ROOT,
        )
        for _ in range(2)
    ]
    outputs = [tick.communicate(timeout=120) for tick in ticks]
    assert all(tick.returncode == 0 for tick in ticks), outputs
    assert any("still running; skipped" in out for out, _ in outputs), outputs
    assert len(slow.requests) == 8 and all(n == 1 for n in slow.keys().values())


def _hmac_key_cases() -> list[tuple[str, standardwebhooks.Webhook]]:
    raw = bytes(range(32))
    padded = base64.b64encode(raw).decode()
    return [
        ("whsec_" + padded, standardwebhooks.Webhook("whsec_" + padded)),
        ("whsec_" + padded.rstrip("="), standardwebhooks.Webhook(raw)),
        ("plain text secret", standardwebhooks.Webhook(b"plain text secret")),
    ]


@pytest.mark.parametrize(("secret", "verifier"), _hmac_key_cases())
def test_requests_are_signed_the_standard_webhooks_way(tmp_path, receivers, secret, verifier):
    path = tmp_path / "live.duckdb"
    enqueue_logins(path, 2)
    receiver = receivers().start()
    assert len(deliver(path, receiver.url, now=minutes(3), secret=secret).delivered) == 2
    for request in receiver.requests:
        headers = {k.lower(): v for k, v in request.headers.items()}
        assert headers["webhook-id"] == headers["idempotency-key"]
        assert abs(int(headers["webhook-timestamp"]) - time.time()) < 60
        payload = verifier.verify(request.body, headers)  # raises unless the signature matches
        assert payload == json.loads(request.body) and payload["segment"] == "visa login"
        with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
            verifier.verify(request.body.replace(b"visa login", b"visa logout"), headers)


def test_without_a_secret_requests_are_unsigned(tmp_path, receivers):
    path = tmp_path / "live.duckdb"
    enqueue_logins(path, 1)
    receiver = receivers().start()
    deliver(path, receiver.url, now=minutes(3))
    headers = {k.lower() for k in receiver.requests[0].headers}
    assert "idempotency-key" in headers and not headers & {"webhook-id", "webhook-signature", "webhook-timestamp"}


def test_a_whsec_secret_that_is_not_base64_is_refused_at_start_up():
    with pytest.raises(SettingsError, match="SEGMENT_PIPELINE_WEBHOOK_SECRET"):
        load_settings({"SEGMENT_PIPELINE_WEBHOOK_SECRET": "whsec_not base64!"})
    assert load_settings({"SEGMENT_PIPELINE_WEBHOOK_SECRET": "anything else"}).webhook_secret == "anything else"


def test_the_live_store_sits_next_to_the_warehouse_unless_set(tmp_path):
    settings = load_settings({"SEGMENT_PIPELINE_WAREHOUSE": str(tmp_path / "dw" / "prod.duckdb")})
    assert settings.live_store == tmp_path / "dw" / "prod.live.duckdb"
    custom = load_settings({"SEGMENT_PIPELINE_LIVE_STORE": str(tmp_path / "live" / "state.duckdb")})
    assert custom.live_store == tmp_path / "live" / "state.duckdb"
    with pytest.raises(SettingsError, match="SEGMENT_PIPELINE_LIVE_STORE"):
        load_settings(
            {
                "SEGMENT_PIPELINE_WAREHOUSE": str(tmp_path / "w.duckdb"),
                "SEGMENT_PIPELINE_LIVE_STORE": str(tmp_path / "w.duckdb"),
            }
        )


def test_the_store_is_plain_duckdb_readable_by_anyone_between_ticks(tmp_path):
    path = tmp_path / "live.duckdb"
    enqueue_logins(path, 1)
    with open_duckdb(str(path), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM analytics.live_segment_entries").fetchone()[0] == 1


def test_overlapping_ticks_in_one_process_do_not_send_twice(tmp_path, receivers):
    """Dagster may start a tick in another thread of the code server while a slow one still runs."""
    import threading

    from segment_pipeline.live.tick import run_tick

    path = tmp_path / "live.duckdb"
    enqueue_logins(path, 6)
    slow = receivers(delay_s=0.3).start()
    summaries: list[str] = []

    def one_tick() -> None:
        result = run_tick(path, [VISA], [], url=slow.url, now=minutes(10), late_tolerance_seconds=30)
        summaries.append(result.summary(slow.url))

    threads = [threading.Thread(target=one_tick) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(summaries) == 2 and any("still running; skipped" in s for s in summaries), summaries
    assert len(slow.requests) == 6 and all(n == 1 for n in slow.keys().values())


def test_concurrent_sends_keep_to_the_limit_and_the_budget_and_send_each_entry_once(tmp_path, receivers):
    import threading

    path = tmp_path / "live.duckdb"
    enqueue_logins(path, 30)
    in_flight, most, lock = [0], [0], threading.Lock()

    def count(request: Request) -> None:
        with lock:
            in_flight[0] += 1
            most[0] = max(most[0], in_flight[0])
        time.sleep(0.3)
        with lock:
            in_flight[0] -= 1

    slow = receivers(on_request=count).start()
    first = deliver(path, slow.url, now=minutes(40), deadline=time.monotonic() + 0.5, concurrency=4)
    # four requests start at once; more only as earlier ones end inside the budget
    assert 4 <= len(first.delivered) <= 8 and first.deferred == 30 - len(first.delivered)
    deliver(path, slow.url, now=minutes(41), concurrency=4)
    assert most[0] == 4
    assert len(slow.requests) == 30 and all(n == 1 for n in slow.keys().values())
    assert {status for _, status, *_ in outbox(path)} == {"delivered"}
