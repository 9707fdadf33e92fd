"""Thousands of past segments: evaluated in chunks on a real warehouse, equal to the reference."""

from __future__ import annotations

import json
import random
from datetime import date, datetime, timedelta

import pytest

from segment_pipeline.config.segments import ALL_USERS, load_segments_text
from segment_pipeline.rules.compiler import CHUNK_SIZE, compile_past_segment_chunks, evaluate_past_segments
from segment_pipeline.segments.evaluate import evaluate_day
from segment_pipeline_tests.rules.reference import past_segment_members, reference_memberships
from segment_pipeline_tests.segments.many_segments import DEMO_PROFILES, DEMO_STEPS, many_segments_yaml

D = date(2026, 3, 1)
END = datetime(2026, 3, 2)


def write_world(con, rng: random.Random, users: int, events: int) -> tuple[list[dict], list[dict]]:
    """Random demo-like events over the last 70 days and a profile per user, in the warehouse and as dicts."""
    event_rows = []
    for _ in range(events):
        event_type = rng.choice(sorted(DEMO_STEPS))
        properties = {key: rng.choice(values) for key, values in DEMO_STEPS[event_type]}
        ts = END - timedelta(seconds=rng.randrange(70 * 86400))
        event_rows.append(
            {
                "user_id": f"u{rng.randrange(users)}",
                "event_name": event_type,
                "ts": ts,
                "properties": json.dumps(properties),
            }
        )
    profile_rows = [{"user_id": f"u{u}"} | {k: rng.choice(v) for k, v in DEMO_PROFILES} for u in range(users)]
    con.execute(
        "CREATE TABLE analytics.event_snapshots (event_id VARCHAR, user_id VARCHAR, event_name VARCHAR,"
        " ts TIMESTAMP, properties JSON, snapshot_date DATE)"
    )
    for i, e in enumerate(event_rows):
        con.execute(
            "INSERT INTO analytics.event_snapshots VALUES (?, ?, ?, ?, ?, ?)",
            [f"e{i}", e["user_id"], e["event_name"], e["ts"], e["properties"], e["ts"].date()],
        )
    con.execute(
        "CREATE TABLE analytics.profiles (user_id VARCHAR, city VARCHAR, plan VARCHAR, os VARCHAR,"
        " age BIGINT, marketing_opt_in BOOLEAN)"
    )
    con.executemany(
        "INSERT INTO analytics.profiles VALUES (?, ?, ?, ?, ?, ?)",
        [[p["user_id"], p["city"], p["plan"], p["os"], p["age"], p["marketing_opt_in"]] for p in profile_rows],
    )
    return event_rows, profile_rows


@pytest.mark.slow
def test_two_thousand_varied_segments_evaluate_a_day_like_the_reference(con):
    segments = load_segments_text(many_segments_yaml(2_000), "segments.yaml")
    assert len(segments.past) == 2_000 > 10 * CHUNK_SIZE
    event_rows, profile_rows = write_world(con, random.Random(3), users=60, events=4_000)

    result = evaluate_day(con, segments, D)

    stored = {}
    for name, user in con.execute(
        "SELECT segment_name, user_id FROM analytics.segment_memberships WHERE as_of_date = ?", [D]
    ).fetchall():
        stored.setdefault(name, set()).add(user)
    assert result.sizes[ALL_USERS] == 60 and len(result.sizes) == 2_001
    assert {n: len(stored.get(n, ())) for n in result.sizes} == result.sizes
    sample = random.Random(5).sample(segments.past, 60)
    for segment in sample:
        assert stored.get(segment.name, set()) == past_segment_members(segment, event_rows, profile_rows, D), segment
    # The sample is not all empty segments: a good share of them have members.
    assert sum(bool(stored.get(s.name)) for s in sample) >= 15


@pytest.mark.slow
def test_five_thousand_trivial_segments_compile_and_run_on_a_tiny_warehouse(con):
    text = "kind: segments\nsegmentDefinitions:\n" + "".join(
        f"  - {{segmentName: s{i}, segmentType: past, segmentSubtype: 1, segmentTimeframe: {1 + i % 9},"
        f" eventSequence: [{{eventType: e{i % 4}, expTimeframe: 0, actionInaction: action, minCount: {1 + i % 3}}},"
        f" {{eventType: e{(i + 1) % 4}, expTimeframe: 0, actionInaction: action}}]}}\n"
        for i in range(5_000)
    )
    segments = load_segments_text(text, "segments.yaml").past
    event_rows, profile_rows = write_world(con, random.Random(4), users=3, events=0)
    # Hours before the day's end, newest first: users and event types e0..e3, over a few days.
    plan = [("u0", 0), ("u0", 1), ("u1", 1), ("u1", 2), ("u0", 0), ("u0", 1), ("u2", 3), ("u2", 0)] * 3
    for i, (user, k) in enumerate(plan):
        ts = END - timedelta(hours=7 * i + 1)
        con.execute(
            "INSERT INTO analytics.event_snapshots VALUES (?, ?, ?, ?, '{}', ?)",
            [f"t{i}", user, f"e{k}", ts, ts.date()],
        )
        event_rows.append({"user_id": user, "event_name": f"e{k}", "ts": ts, "properties": "{}"})

    queries = compile_past_segment_chunks(segments, as_of=D, include_all_users=True)
    assert len(queries) == 5_000 // CHUNK_SIZE + 1
    got = evaluate_past_segments(con, segments, D, include_all_users=True)
    assert got == reference_memberships(segments, event_rows, profile_rows, D, include_all_users=True)
    assert len({name for name, _ in got}) > 1_000
