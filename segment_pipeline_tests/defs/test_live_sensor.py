"""The live_segments sensor, ticked for real: files land, users enter, the webhook receives each entry once."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import dagster as dg

from segment_pipeline.defs.live.sensors import live_segments_sensor
from segment_pipeline.defs.resources import ConfigResource, EventSourcesResource, LiveResource
from segment_pipeline.live import store
from segment_pipeline.live.engine import start_watermark
from segment_pipeline.storage.connections import open_duckdb
from segment_pipeline_tests.live.test_outbox import receiver  # noqa: F401 (pytest fixture: a real HTTP server)

SEGMENTS_YAML = """
kind: segments
segmentDefinitions:
  - segmentName: app launched now
    segmentType: live
    segmentSubtype: 1
    segmentTimeframe: 0
    eventSequence:
      - {eventType: app_launch, expTimeframe: 0, actionInaction: action}
  - segmentName: checkout abandoned
    segmentType: live
    segmentSubtype: 2
    segmentTimeframe: 0
    eventSequence:
      - {eventType: checkout_viewed, expTimeframe: 5, actionInaction: action}
      - {eventType: charged, expTimeframe: 0, actionInaction: inaction}
"""


def write(path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def tick(resources: dict) -> str:
    with dg.build_sensor_context(resources=resources, instance=dg.DagsterInstance.ephemeral()) as context:
        result = live_segments_sensor(tick_seconds=30)(context)
    return result.skip_message if isinstance(result, dg.SkipReason) else str(result)


def test_landed_files_enter_users_and_every_entry_reaches_the_webhook_once(tmp_path, receiver):  # noqa: F811
    server, url = receiver
    config = tmp_path / "config"
    config.mkdir()
    (config / "segments.yaml").write_text(SEGMENTS_YAML)
    events = tmp_path / "events"
    events.mkdir()
    now = datetime.now(UTC).replace(tzinfo=None)
    old = now - timedelta(minutes=30)  # deadlines long past the 30-second tolerance
    write(
        events / "batch1.ndjson",
        [
            {"event_id": "a1", "user_id": "u1", "event_name": "app_launch", "ts": old.isoformat()},
            {"event_id": "c1", "user_id": "u2", "event_name": "checkout_viewed", "ts": old.isoformat()},
            {"event_id": "c2", "user_id": "u3", "event_name": "checkout_viewed", "ts": old.isoformat()},
            {
                "event_id": "p3",
                "user_id": "u3",
                "event_name": "charged",
                "ts": (old + timedelta(minutes=2)).isoformat(),
            },
        ],
    )
    server.fail_first = 1  # the webhook is down for the first request: the entry is retried, not lost
    live_store = tmp_path / "warehouse.live.duckdb"
    with store.connect(live_store) as con:  # the sensor has been running for an hour: these events are live
        start_watermark(con, [], now=now - timedelta(hours=1), late_tolerance_seconds=30)
    resources = {
        "sources": EventSourcesResource(events=str(events / "*.ndjson"), demo_dir=str(tmp_path / "demo")),
        "project_config": ConfigResource(config_dir=str(config)),
        "live_config": LiveResource(store_path=str(live_store), webhook_url=url, retry_schedule_s=[0, 0, 0]),
    }
    first = tick(resources)
    assert "2 entries" in first, first
    for _ in range(3):
        tick(resources)
    assert server.keys() and all(n == 1 for n in server.keys().values())
    delivered = {(body["segment"], body["user_id"]) for _, body in server.accepted}
    assert delivered == {("app launched now", "u1"), ("checkout abandoned", "u2")}  # u3 bought within 5 minutes

    write(
        events / "batch2.ndjson",
        [
            {"event_id": "a2", "user_id": "u4", "event_name": "app_launch", "ts": now.isoformat()},
        ],
    )
    tick(resources)
    with open_duckdb(str(live_store), read_only=True) as con:
        rows = con.execute(
            "SELECT segment_name, user_id, delivered_at IS NOT NULL, attempts FROM analytics.live_segment_entries ORDER BY 2"
        ).fetchall()
    assert [(s, u, d) for s, u, d, _ in rows] == [
        ("app launched now", "u1", True),
        ("checkout abandoned", "u2", True),
        ("app launched now", "u4", True),
    ]
    assert sum(n for *_, n in rows) == 4  # three entries, one of them tried twice
    assert not (tmp_path / "warehouse.duckdb").exists()  # the sensor never opens the warehouse


def test_without_live_segments_or_with_demo_data_the_sensor_skips(tmp_path):
    resources = {
        "sources": EventSourcesResource(demo_dir=str(tmp_path / "demo")),
        "project_config": ConfigResource(config_dir=str(tmp_path)),
        "live_config": LiveResource(store_path=str(tmp_path / "live.duckdb")),
    }
    assert "no live segments" in tick(resources)


def test_the_sensor_turned_on_over_months_of_files_posts_nothing_old(tmp_path, receiver):  # noqa: F811
    server, url = receiver
    config = tmp_path / "config"
    config.mkdir()
    (config / "segments.yaml").write_text(SEGMENTS_YAML)
    events = tmp_path / "events"
    events.mkdir()
    months_ago = datetime.now(UTC).replace(tzinfo=None) - timedelta(days=90)
    write(
        events / "history.ndjson",
        [
            {
                "event_id": f"h{i}",
                "user_id": f"u{i}",
                "event_name": "app_launch",
                "ts": (months_ago + timedelta(hours=i)).isoformat(),
            }
            for i in range(200)
        ],
    )
    resources = {
        "sources": EventSourcesResource(events=str(events / "*.ndjson"), demo_dir=str(tmp_path / "demo")),
        "project_config": ConfigResource(config_dir=str(config)),
        "live_config": LiveResource(store_path=str(tmp_path / "live.duckdb"), webhook_url=url),
    }
    first = tick(resources)
    assert "first start: 1 file(s) already present" in first and "0 entries" in first, first
    write(
        events / "fresh.ndjson",
        [
            {"event_id": "f1", "user_id": "u1", "event_name": "app_launch", "ts": datetime.now(UTC).isoformat()},
        ],
    )
    assert "1 entries" in tick(resources)
    assert [body["user_id"] for _, body in server.accepted] == ["u1"]
