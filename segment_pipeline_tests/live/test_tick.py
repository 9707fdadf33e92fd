"""A whole live tick on real files: the first start takes what is there as history, and a
poison event is rejected alone while the rest of its batch is delivered."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from segment_pipeline.ingest.sources import discover
from segment_pipeline.live.engine import MAX_PROPERTIES_BYTES, json_depth
from segment_pipeline.live.tick import run_tick
from segment_pipeline.storage.connections import open_duckdb
from segment_pipeline_tests.live.receivers import Receiver
from segment_pipeline_tests.live.test_engine import ABANDONED, VISA

NOW = datetime(2026, 11, 30, 12, 0)


@pytest.fixture
def receiver():
    running = Receiver().start()
    yield running
    running.stop()


def write_lines(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines))


def login(event_id: str, user: str, ts: datetime, properties=None) -> str:
    return json.dumps(
        {
            "event_id": event_id,
            "user_id": user,
            "event_name": "login",
            "ts": ts.isoformat(),
            "properties": properties if properties is not None else {"payment_method": "visa"},
        }
    )


def tick(tmp_path: Path, url: str, now: datetime):
    folder = tmp_path / "events"
    files = discover(str(folder), env_var="SEGMENT_PIPELINE_EVENTS") if folder.exists() else []
    return run_tick(tmp_path / "live.duckdb", [VISA, ABANDONED], files, url=url, now=now, late_tolerance_seconds=30)


def test_the_first_start_posts_no_months_old_event(tmp_path, receiver):
    months_ago = NOW - timedelta(days=120)
    write_lines(
        tmp_path / "events" / "2026-08.ndjson",
        [login(f"old{i}", f"u{i}", months_ago + timedelta(minutes=i)) for i in range(300)],
    )
    first = tick(tmp_path, receiver.url, NOW)
    assert first.started is not None and first.started.files_present == 1
    assert first.processed.entries == [] and receiver.requests == []
    assert "first start" in first.summary(receiver.url)

    # later: a backfill of old events in a new file, and old events appended to the old file: history
    write_lines(tmp_path / "events" / "backfill.ndjson", [login("bf1", "u1", months_ago)])
    with open(tmp_path / "events" / "2026-08.ndjson", "a") as handle:
        handle.write(login("old-appended", "u7", months_ago + timedelta(days=1)) + "\n")
    later = tick(tmp_path, receiver.url, NOW + timedelta(minutes=1))
    assert later.started is None and later.processed.entries == []
    assert later.processed.events_history == 302 and receiver.requests == []

    # what lands after the start is live, a little late included
    write_lines(
        tmp_path / "events" / "now.ndjson",
        [login("new1", "u1", NOW + timedelta(minutes=1, seconds=50)), login("late", "u2", NOW - timedelta(seconds=10))],
    )
    live = tick(tmp_path, receiver.url, NOW + timedelta(minutes=2))
    assert sorted(e.user_id for e in live.processed.entries) == ["u1", "u2"]
    assert len(receiver.requests) == 2


def test_a_poison_event_is_rejected_alone(tmp_path, receiver):
    tick(tmp_path, receiver.url, NOW - timedelta(hours=1))  # started an hour ago, no files yet
    # written by hand: Python's own json cannot even write 999 levels
    deep = '{"payment_method": "visa", "nested": ' + '{"k": ' * 997 + "{}" + "}" * 998
    lines = [
        login("good1", "u1", NOW),
        login("deep", "u2", NOW, {"payment_method": "visa"}).replace('{"payment_method": "visa"}', deep),
        login("huge", "u3", NOW, {"payment_method": "visa", "blob": "x" * (MAX_PROPERTIES_BYTES + 10)}),
        json.dumps(
            {
                "event_id": "notjson",
                "user_id": "u4",
                "event_name": "login",
                "ts": NOW.isoformat(),
                "properties": "{not json",
            }
        ),
        '{"event_id": "broken", "user_id": "u5", "event_name": "login", "ts": ',
        login("good2", "u6", NOW + timedelta(seconds=1)),
    ]
    write_lines(tmp_path / "events" / "batch.ndjson", lines)
    (tmp_path / "events" / "garbage.parquet").write_bytes(b"this is not parquet")
    write_lines(tmp_path / "events" / "other.ndjson", [login("good3", "u7", NOW)])

    result = tick(tmp_path, receiver.url, NOW + timedelta(minutes=1))
    assert sorted(e.user_id for e in result.processed.entries) == ["u1", "u6", "u7"]
    assert sorted(json.loads(r.body)["user_id"] for r in receiver.requests) == ["u1", "u6", "u7"]
    with open_duckdb(str(tmp_path / "live.duckdb"), read_only=True) as con:
        rejected = con.execute(
            "SELECT source, event_id, reason FROM pipeline_state.live_rejected ORDER BY 1, 2"
        ).fetchall()
    reasons = {(source.rsplit("/", 1)[-1], event_id): reason for source, event_id, reason in rejected}
    assert reasons[("live event", "deep")].startswith("properties nested 999 levels deep")
    assert reasons[("live event", "huge")].startswith("properties over 65,536 bytes")
    assert reasons[("batch.ndjson:4", None)] == "properties is not a JSON object"
    assert reasons[("batch.ndjson:5", None)] == "malformed json line"
    assert "unreadable file: not a Parquet file" in reasons[("garbage.parquet", None)]
    assert len(reasons) == 5 and result.processed.rejected == 5

    again = tick(tmp_path, receiver.url, NOW + timedelta(minutes=2))  # nothing changed: nothing re-read or re-rejected
    assert (again.processed.files_read, again.processed.rejected, again.rejected_total) == (0, 0, 5)
    assert len(receiver.requests) == 3


def test_json_depth_ignores_brackets_inside_strings():
    assert json_depth('{"a": "{{{[[[", "b": [1, {"c": "\\"{"}]}') == 3
    assert json_depth("[]") == 1 and json_depth('"x"') == 0
