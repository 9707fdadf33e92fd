"""At-least-once delivery of live-segment entries to a webhook, through a transactional outbox.

An entry is written to ``analytics.live_segment_entries`` (contract columns) and to
``pipeline_state.live_outbox`` (delivery state, keyed by an idempotency key) in the
same transaction that decided it, so a crash between deciding and sending loses
nothing: ``deliver`` later sends every pending row. A row is marked delivered only
after a 2xx answer, so a crash after sending sends it again, with the same
``Idempotency-Key`` header: receivers deduplicate by that key.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import random
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import polars as pl

from segment_pipeline.storage.warehouse import transaction

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
    attempts INTEGER NOT NULL,
    next_attempt_at TIMESTAMP NOT NULL,
    last_error VARCHAR,
    payload JSON NOT NULL,
    created_at TIMESTAMP NOT NULL,
    delivered_at TIMESTAMP
);
"""

# send(url, body, headers, timeout_s) -> HTTP status; raises OSError (timeouts included) when no answer.
Sender = Callable[[str, bytes, dict[str, str], float], int]


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
        f"INSERT INTO {OUTBOX} SELECT k, s, u, t, 'pending', 0, $now, NULL, p, $now, NULL FROM _outbox_new",
        {"now": now},
    )
    con.execute(f"INSERT INTO {ENTRIES} SELECT s, u, t, NULL, 0 FROM _outbox_new ORDER BY t, s, u")
    new = {row[0] for row in con.execute("SELECT k FROM _outbox_new").fetchall()}
    return [entry for key, entry in fresh.items() if key in new]


def urllib_send(url: str, body: bytes, headers: dict[str, str], timeout_s: float) -> int:
    """POST with the standard library; an HTTP error answer is a status, not an exception."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


@dataclass
class DeliveryResult:
    delivered: list[str] = field(default_factory=list)  # idempotency keys
    retrying: list[str] = field(default_factory=list)
    dead: list[str] = field(default_factory=list)
    skipped: int = 0  # due rows not sent because no URL is configured


def backoff(attempts_before: int, base_delay_s: float, rng: random.Random) -> timedelta:
    """base * 2**attempts, with jitter in [0.5, 1.5) so failed receivers are not hit in lockstep."""
    return timedelta(seconds=base_delay_s * 2**attempts_before * rng.uniform(0.5, 1.5))


def deliver(
    con: duckdb.DuckDBPyConnection,
    url: str | None,
    *,
    now: datetime,
    max_attempts: int = 8,
    base_delay_s: float = 2.0,
    timeout_s: float = 5.0,
    send: Sender = urllib_send,
    limit: int = 1000,
    rng: random.Random | None = None,
) -> DeliveryResult:
    """POST every due pending entry once (oldest first, at most ``limit``).

    Each outcome is committed on its own right after its request, so a crash mid-way
    re-sends at most the entry in flight. 2xx: delivered. Anything else (other status,
    connection error, timeout): one more attempt, retried after ``backoff``; the
    ``max_attempts``-th failure makes the row ``dead`` (kept, with its last error).
    With no URL, entries are kept pending and untouched (contract section 2).
    """
    ensure_tables(con)
    now = utc_naive(now)
    rng = rng or random.Random()
    result = DeliveryResult()
    due = con.execute(
        f"""SELECT idempotency_key, segment_name, user_id, entered_at, attempts, CAST(payload AS VARCHAR)
            FROM {OUTBOX} WHERE status = 'pending' AND next_attempt_at <= ?
            ORDER BY entered_at, idempotency_key LIMIT ?""",
        [now, limit],
    ).fetchall()
    if url is None:
        result.skipped = len(due)
        return result
    for key, segment_name, user_id, entered_at, attempts, payload in due:
        headers = {"Content-Type": "application/json", "Idempotency-Key": key}
        try:
            status = send(url, payload.encode(), headers, timeout_s)
            error = None if 200 <= status < 300 else f"HTTP {status}"
        except (OSError, ValueError, http.client.HTTPException) as exc:  # URLError and timeouts are OSErrors
            error = f"{type(exc).__name__}: {exc}"
        where = [segment_name, user_id, entered_at]
        with transaction(con):
            if error is None:
                con.execute(
                    f"UPDATE {OUTBOX} SET status = 'delivered', attempts = attempts + 1, delivered_at = ?, "
                    "last_error = NULL WHERE idempotency_key = ?",
                    [now, key],
                )
                con.execute(
                    f"UPDATE {ENTRIES} SET delivered_at = ?, attempts = attempts + 1 "
                    "WHERE segment_name = ? AND user_id = ? AND entered_at = ?",
                    [now, *where],
                )
                result.delivered.append(key)
                continue
            dead = attempts + 1 >= max_attempts
            con.execute(
                f"UPDATE {OUTBOX} SET status = ?, attempts = attempts + 1, next_attempt_at = ?, last_error = ? "
                "WHERE idempotency_key = ?",
                ["dead" if dead else "pending", now + backoff(attempts, base_delay_s, rng), error, key],
            )
            con.execute(
                f"UPDATE {ENTRIES} SET attempts = attempts + 1 WHERE segment_name = ? AND user_id = ? AND entered_at = ?",
                where,
            )
            (result.dead if dead else result.retrying).append(key)
    return result
