"""At-least-once delivery of live-segment entries to a webhook, through a transactional outbox.

An entry is written to ``analytics.live_segment_entries`` (contract columns) and to
``pipeline_state.live_outbox`` (delivery state, keyed by an idempotency key) in the
same transaction that decided it, so a crash between deciding and sending loses
nothing: ``deliver`` later sends every pending row. A row is marked delivered only
after a 2xx answer, so a crash after sending sends it again, with the same
``Idempotency-Key`` (and ``webhook-id``) header: receivers deduplicate by that key.

Failures retry on ``RETRY_SCHEDULE_S`` (Svix's: over a day), then the row is dead
(kept, with its last error) until ``redrive`` puts it back in line. A redirect is a
failure: the entry is never handed to a host the URL does not name.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import random
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import duckdb
import polars as pl

from segment_pipeline.live import store
from segment_pipeline.storage.warehouse import scalar, transaction

ENTRIES = "analytics.live_segment_entries"
OUTBOX = "pipeline_state.live_outbox"

_DDL = f"""
CREATE SCHEMA IF NOT EXISTS analytics;
CREATE SCHEMA IF NOT EXISTS pipeline_state;
CREATE TABLE IF NOT EXISTS {ENTRIES} (
    segment_name VARCHAR, user_id VARCHAR, entered_at TIMESTAMP, delivered_at TIMESTAMP, attempts INTEGER
);
CREATE TABLE IF NOT EXISTS {OUTBOX} (
    idempotency_key VARCHAR PRIMARY KEY,
    segment_name VARCHAR NOT NULL, user_id VARCHAR NOT NULL, entered_at TIMESTAMP NOT NULL,
    status VARCHAR NOT NULL,            -- pending | delivered | dead
    attempts INTEGER NOT NULL,          -- every try, re-drives included (the contract's attempts)
    retry_step INTEGER NOT NULL,        -- tries since enqueued or re-driven: the place in RETRY_SCHEDULE_S
    next_attempt_at TIMESTAMP NOT NULL,
    last_attempt_at TIMESTAMP,
    last_error VARCHAR,
    payload JSON NOT NULL,
    created_at TIMESTAMP NOT NULL,
    delivered_at TIMESTAMP
);
"""

# send(url, body, headers, timeout_s) -> HTTP status; raises OSError (timeouts included) when no answer.
Sender = Callable[[str, bytes, dict[str, str], float], int]

# Seconds to wait before each try (Svix's schedule): at once, 5 s, 5 min, 30 min, 2 h, 5 h,
# 10 h, 10 h: eight tries over 27.6 hours, so a receiver down for a day loses nothing.
RETRY_SCHEDULE_S: tuple[int, ...] = (0, 5, 300, 1800, 7200, 18000, 36000, 36000)
RECORD_EVERY = 50  # answers recorded per short write (a crash re-sends at most these)


def utc_naive(moment: datetime) -> datetime:
    """Warehouse times are naive UTC (contract section 3)."""
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def iso_utc(moment: datetime) -> str:
    return utc_naive(moment).replace(tzinfo=UTC).isoformat()


def idempotency_key(segment_name: str, user_id: str, entered_at: datetime) -> str:
    """One key per (segment, user, entry time): the same entry decided twice is one entry."""
    text = json.dumps([segment_name, user_id, iso_utc(entered_at)])
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Entry:
    """A user entering a live segment, and the event that triggered it (the action)."""

    segment_name: str
    user_id: str
    entered_at: datetime
    event_id: str
    event_name: str
    event_ts: datetime
    properties: dict[str, Any] | None = None

    @property
    def key(self) -> str:
        return idempotency_key(self.segment_name, self.user_id, self.entered_at)

    def payload(self) -> dict[str, Any]:
        return {
            "segment": self.segment_name,
            "user_id": self.user_id,
            "entered_at": iso_utc(self.entered_at),
            "triggering_event": {
                "event_id": self.event_id,
                "event_name": self.event_name,
                "ts": iso_utc(self.event_ts),
                "properties": self.properties or {},
            },
        }


def ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(_DDL)


def enqueue(con: duckdb.DuckDBPyConnection, entries: Iterable[Entry], *, now: datetime) -> list[Entry]:
    """Write entries not yet in the outbox; returns the new ones. Call inside the caller's
    transaction, so the entries commit together with the state that decided them."""
    ensure_tables(con)
    now = utc_naive(now)
    fresh: dict[str, Entry] = {}
    for entry in entries:
        fresh.setdefault(entry.key, entry)
    if not fresh:
        return []
    frame = pl.DataFrame(
        [(k, e.segment_name, e.user_id, utc_naive(e.entered_at), json.dumps(e.payload())) for k, e in fresh.items()],
        schema={"k": pl.String, "s": pl.String, "u": pl.String, "t": pl.Datetime("us"), "p": pl.String},
        orient="row",
    )
    con.register("_outbox_rows", frame)
    try:
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE _outbox_new AS
                SELECT * FROM _outbox_rows WHERE k NOT IN (SELECT idempotency_key FROM {OUTBOX})"""
        )
    finally:
        con.unregister("_outbox_rows")
    con.execute(
        f"""INSERT INTO {OUTBOX} (idempotency_key, segment_name, user_id, entered_at, status, attempts, retry_step,
                                 next_attempt_at, payload, created_at)
            SELECT k, s, u, t, 'pending', 0, 0, $now, p, $now FROM _outbox_new""",
        {"now": now},
    )
    con.execute(f"INSERT INTO {ENTRIES} SELECT s, u, t, NULL, 0 FROM _outbox_new ORDER BY t, s, u")
    new = {row[0] for row in con.execute("SELECT k FROM _outbox_new").fetchall()}
    return [entry for key, entry in fresh.items() if key in new]


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    """A 3xx is the answer, not a pointer to follow: following it would hand the entry (and
    its key) to a host the URL does not name, as a body-less GET that delivers nothing."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


# Only HTTP(S): the default opener would also read file:, data: and ftp: URLs.
_OPENER = urllib.request.OpenerDirector()
for _handler in (
    urllib.request.ProxyHandler(),
    urllib.request.HTTPHandler(),
    urllib.request.HTTPSHandler(),
    urllib.request.HTTPDefaultErrorHandler(),
    urllib.request.HTTPErrorProcessor(),
    _RefuseRedirects(),
):
    _OPENER.add_handler(_handler)


def urllib_send(url: str, body: bytes, headers: dict[str, str], timeout_s: float) -> int:
    """POST with the standard library; an HTTP error or redirect answer is a status, not an exception."""
    check_url(url)
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with _OPENER.open(request, timeout=timeout_s) as response:
            return response.status
    except urllib.error.HTTPError as error:
        error.close()
        return error.code


def check_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError(f"webhook URL {url!r} is not an http(s) URL with a host (SEGMENT_PIPELINE_WEBHOOK_URL)")


def signing_key(secret: str) -> bytes:
    """Standard Webhooks: ``whsec_<base64>`` carries the key in base64; any other secret is its UTF-8 bytes."""
    if secret.startswith("whsec_"):
        encoded = secret.removeprefix("whsec_")
        return base64.b64decode(encoded + "=" * (-len(encoded) % 4))  # receivers often show it unpadded
    return secret.encode()


def signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """``v1,`` + base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}")), the Standard Webhooks signature."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(signing_key(secret), signed, hashlib.sha256).digest()).decode()


def request_headers(key: str, body: bytes, secret: str | None, timestamp: int) -> dict[str, str]:
    headers = {"Content-Type": "application/json", "Idempotency-Key": key}
    if secret:
        headers |= {
            "webhook-id": key,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature(secret, key, timestamp, body),
        }
    return headers


@dataclass
class DeliveryResult:
    delivered: list[str] = field(default_factory=list)  # idempotency keys
    retrying: list[str] = field(default_factory=list)
    dead: list[str] = field(default_factory=list)
    skipped: int = 0  # due rows not sent because no URL is configured
    deferred: int = 0  # due rows left for the next tick because the time budget was spent


def next_delay(retry_step: int, schedule: Sequence[float], rng: random.Random) -> timedelta | None:
    """The wait after the ``retry_step``-th failed try (1-based), or None: the schedule is spent.
    Jitter only lengthens a wait (up to 10%), so failed receivers are not hit in lockstep and
    the schedule's total is a floor."""
    if retry_step >= len(schedule):
        return None
    return timedelta(seconds=schedule[retry_step] * rng.uniform(1.0, 1.1))


@contextmanager
def _opened(target: duckdb.DuckDBPyConnection | Path | str) -> Iterator[duckdb.DuckDBPyConnection]:
    """A live-store path is opened for this step only (no lock held during HTTP calls); a
    connection is the caller's, used as is."""
    if isinstance(target, duckdb.DuckDBPyConnection):
        with nullcontext(target) as con:
            yield con
    else:
        with store.connect(target, busy_retries=5) as con:
            yield con


@dataclass(frozen=True)
class _Answer:
    key: str
    where: tuple[str, str, datetime]
    retry_step: int
    error: str | None


def deliver(
    target: duckdb.DuckDBPyConnection | Path | str,
    url: str | None,
    *,
    now: datetime,
    schedule: Sequence[float] = RETRY_SCHEDULE_S,
    timeout_s: float = 5.0,
    deadline: float | None = None,
    secret: str | None = None,
    send: Sender = urllib_send,
    limit: int = 1000,
    rng: random.Random | None = None,
    concurrency: int = 1,
) -> DeliveryResult:
    """POST every due pending entry once (oldest first, at most ``limit``).

    ``target`` is the live store's path (opened to read the due rows, closed during the
    POSTs, opened again for each short write of answers) or an open connection.
    ``deadline`` (a ``time.monotonic()`` value): no request starts after it; the rest stay
    due for the next call. 2xx: delivered. Anything else (3xx included, connection error,
    timeout): retried after the next wait of ``schedule``; once it is spent the row is
    ``dead``. ``secret``: sign each request (Standard Webhooks). With no URL, entries are
    kept pending and untouched (contract section 2). ``concurrency``: requests in flight at
    once (entries of one user may then arrive out of order; ``entered_at`` orders them).
    """
    now = utc_naive(now)
    rng = rng or random.Random()
    result = DeliveryResult()
    with _opened(target) as con:
        ensure_tables(con)
        due = con.execute(
            f"""SELECT idempotency_key, segment_name, user_id, entered_at, retry_step, CAST(payload AS VARCHAR)
                FROM {OUTBOX} WHERE status = 'pending' AND next_attempt_at <= ?
                ORDER BY entered_at, idempotency_key LIMIT ?""",
            [now, limit],
        ).fetchall()
    if url is None:
        result.skipped = len(due)
        return result
    check_url(url)

    def attempt(row: tuple) -> _Answer:
        key, segment_name, user_id, entered_at, retry_step, payload = row
        body = payload.encode()
        try:
            status = send(url, body, request_headers(key, body, secret, int(time.time())), timeout_s)
            error = None if 200 <= status < 300 else f"HTTP {status}"
        except (OSError, ValueError, http.client.HTTPException) as exc:  # URLError and timeouts are OSErrors
            error = f"{type(exc).__name__}: {exc}"
        return _Answer(key, (segment_name, user_id, entered_at), retry_step, error)

    answers: list[_Answer] = []
    started = 0
    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        in_flight: set = set()
        while True:
            while (
                len(in_flight) < max(1, concurrency)
                and started < len(due)
                and (deadline is None or time.monotonic() < deadline)
            ):
                in_flight.add(pool.submit(attempt, due[started]))
                started += 1
            if not in_flight:
                break
            done, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
            answers += [future.result() for future in done]
            if len(answers) >= RECORD_EVERY:
                _record(target, answers, now, schedule, rng, result)
                answers = []
    result.deferred = len(due) - started
    _record(target, answers, now, schedule, rng, result)
    return result


def _record(
    target: duckdb.DuckDBPyConnection | Path | str,
    answers: list[_Answer],
    now: datetime,
    schedule: Sequence[float],
    rng: random.Random,
    result: DeliveryResult,
) -> None:
    """One short write for a batch of answers."""
    if not answers:
        return
    with _opened(target) as con, transaction(con):
        for answer in answers:
            if answer.error is None:
                con.execute(
                    f"UPDATE {OUTBOX} SET status = 'delivered', attempts = attempts + 1, retry_step = retry_step + 1, "
                    "delivered_at = ?, last_attempt_at = ?, last_error = NULL WHERE idempotency_key = ?",
                    [now, now, answer.key],
                )
                con.execute(
                    f"UPDATE {ENTRIES} SET delivered_at = ?, attempts = attempts + 1 "
                    "WHERE segment_name = ? AND user_id = ? AND entered_at = ?",
                    [now, *answer.where],
                )
                result.delivered.append(answer.key)
                continue
            delay = next_delay(answer.retry_step + 1, schedule, rng)
            con.execute(
                f"UPDATE {OUTBOX} SET status = ?, attempts = attempts + 1, retry_step = retry_step + 1, "
                "next_attempt_at = ?, last_attempt_at = ?, last_error = ? WHERE idempotency_key = ?",
                ["dead" if delay is None else "pending", now + (delay or timedelta(0)), now, answer.error, answer.key],
            )
            con.execute(
                f"UPDATE {ENTRIES} SET attempts = attempts + 1 WHERE segment_name = ? AND user_id = ? AND entered_at = ?",
                list(answer.where),
            )
            (result.dead if delay is None else result.retrying).append(answer.key)


def redrive(
    con: duckdb.DuckDBPyConnection,
    *,
    now: datetime,
    segment: str | None = None,
    since: datetime | None = None,
) -> int:
    """Put dead-lettered entries back in line (optionally one segment's, or those entered at or
    after ``since``): due at once, with the whole retry schedule ahead of them again. Returns
    how many. ``attempts`` keeps counting every try."""
    ensure_tables(con)
    with transaction(con):
        return scalar(
            con,
            f"""UPDATE {OUTBOX} SET status = 'pending', retry_step = 0, next_attempt_at = ?
                WHERE status = 'dead' AND (CAST(? AS VARCHAR) IS NULL OR segment_name = ?)
                  AND (CAST(? AS TIMESTAMP) IS NULL OR entered_at >= ?)""",
            [utc_naive(now), segment, segment, since and utc_naive(since), since and utc_naive(since)],
        )
