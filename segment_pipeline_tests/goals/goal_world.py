"""Goal test helpers: events and profiles written into a real warehouse file, small configs."""

from __future__ import annotations

import json
from datetime import datetime

import duckdb
import polars as pl

from segment_pipeline.config.goals import GoalDefinition, load_goals_text
from segment_pipeline.config.segments import SegmentConfig, load_segments_text
from segment_pipeline.ingest.events import ensure_tables
from segment_pipeline.storage.warehouse import ANALYTICS


class Events:
    """Writes events (and profiles) into ``analytics`` tables of a real warehouse file."""

    def __init__(self, con: duckdb.DuckDBPyConnection):
        self.con = con
        self.count = 0
        ensure_tables(con, (ANALYTICS, "event_snapshots"))

    def add(self, user: str, name: str, ts: datetime, **props) -> Events:
        self.count += 1
        self.con.execute(
            "INSERT INTO analytics.event_snapshots VALUES (?, ?, ?, ?, ?, ?)",
            [f"e{self.count}", user, name, ts, json.dumps(props), ts.date()],
        )
        return self

    def add_many(self, rows: list[dict]) -> Events:
        """Rows of ``user_id, event_name, ts, properties`` (a dict) in one insert."""
        frame = pl.DataFrame(
            {
                "event_id": [f"e{self.count + k + 1}" for k in range(len(rows))],
                "user_id": [r["user_id"] for r in rows],
                "event_name": [r["event_name"] for r in rows],
                "ts": [r["ts"] for r in rows],
                "properties": [json.dumps(r["properties"]) for r in rows],
            },
            schema={
                "event_id": pl.String,
                "user_id": pl.String,
                "event_name": pl.String,
                "ts": pl.Datetime("us"),
                "properties": pl.String,
            },
        )
        self.count += len(rows)
        self.con.register("_test_events", frame)
        self.con.execute(
            """INSERT INTO analytics.event_snapshots
               SELECT event_id, user_id, event_name, ts, CAST(properties AS JSON), CAST(ts AS DATE) FROM _test_events"""
        )
        self.con.unregister("_test_events")
        return self

    def profiles(self, rows: list[dict]) -> Events:
        self.con.execute("CREATE OR REPLACE TABLE analytics.profiles (user_id VARCHAR, city VARCHAR, age BIGINT)")
        for row in rows:
            self.con.execute(
                "INSERT INTO analytics.profiles VALUES (?, ?, ?)", [row["user_id"], row.get("city"), row.get("age")]
            )
        return self


def segments_yaml(timeframe: int = 30, event: str = "app_launch") -> SegmentConfig:
    return load_segments_text(
        f"""
kind: segments
segmentDefinitions:
  - segmentName: launchers
    segmentType: past
    segmentSubtype: 1
    segmentTimeframe: {timeframe}
    eventSequence: [{{eventType: {event}, expTimeframe: 0, actionInaction: action}}]
  - segmentName: buyers
    segmentType: past
    segmentSubtype: 1
    segmentTimeframe: 30
    eventSequence: [{{eventType: charged, expTimeframe: 0, actionInaction: action}}]
"""
    )


def make_goal(segments: SegmentConfig, **overrides) -> GoalDefinition:
    keys = {
        "goalName": "sell concerts",
        "segment": "launchers",
        "createdOn": "2026-03-01",
        "endDate": "2026-03-14",
        "objective": "maximize",
        "events": "[{eventType: charged, eventProperties: {category: concert}}]",
        "lookbackDays": 30,
    } | overrides
    text = "kind: goals\ngoals:\n  - " + "\n    ".join(f"{k}: {v}" for k, v in keys.items()) + "\n"
    return load_goals_text(text, segments).goals[0]
