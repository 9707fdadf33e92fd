"""Live-segment tags: opened by an entry, closed by a later contradicting event, untouched by the nightly tags."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import polars as pl

from segment_pipeline.config.segments import load_segments_text
from segment_pipeline.live.engine import process_events
from segment_pipeline.segments import history

LIVE = load_segments_text("""
kind: segments
segmentDefinitions:
  - {segmentName: launched, segmentType: live, segmentSubtype: 1, segmentTimeframe: 0,
     eventSequence: [{eventType: app_launch, expTimeframe: 0, actionInaction: action}]}
  - segmentName: abandoned
    segmentType: live
    segmentSubtype: 2
    segmentTimeframe: 0
    eventSequence:
      - {eventType: checkout_viewed, expTimeframe: 5, actionInaction: action}
      - {eventType: charged, expTimeframe: 0, actionInaction: inaction}
""").live
T = datetime(2026, 6, 1, 12, 0)


def batch(*rows: tuple[str, str, str, datetime]) -> pl.DataFrame:
    return pl.DataFrame(
        [{"event_id": i, "user_id": u, "event_name": n, "ts": ts} for i, u, n, ts in rows],
        schema={"event_id": pl.String, "user_id": pl.String, "event_name": pl.String, "ts": pl.Datetime("us")},
    )


def tags(con) -> list[tuple]:
    return con.execute("SELECT * FROM analytics.segment_tags ORDER BY segment_name, user_id, created_at").fetchall()


def test_entries_open_tags_and_a_later_purchase_closes_the_abandonment(con):
    process_events(
        con,
        LIVE,
        batch(("a", "u1", "app_launch", T), ("c", "u2", "checkout_viewed", T)),
        now=T + timedelta(minutes=20),
        late_tolerance_seconds=30,
    )
    assert tags(con) == [("u2", "abandoned", T + timedelta(minutes=5), None), ("u1", "launched", T, None)]

    bought = T + timedelta(minutes=30)
    process_events(
        con,
        LIVE,
        batch(("p", "u2", "charged", bought), ("a2", "u1", "app_launch", bought)),
        now=bought + timedelta(minutes=1),
        late_tolerance_seconds=30,
    )
    assert tags(con) == [("u2", "abandoned", T + timedelta(minutes=5), bought), ("u1", "launched", T, None)]


def test_nightly_tag_updates_leave_live_tags_alone(con):
    process_events(con, LIVE, batch(("a", "u1", "app_launch", T)), now=T + timedelta(minutes=1))
    history.ensure_tables(con)
    con.execute("CREATE OR REPLACE TEMP TABLE _m (segment_name VARCHAR, user_id VARCHAR)")
    con.execute("INSERT INTO _m VALUES ('past one', 'u9')")
    for day in (date(2026, 6, 2), date(2026, 6, 1)):  # the second call re-runs an older day: a rebuild
        history.replace_day(con, day, "_m", ["past one"])
        history.update_tags(con, day)
    assert ("u1", "launched", T, None) in tags(con)
