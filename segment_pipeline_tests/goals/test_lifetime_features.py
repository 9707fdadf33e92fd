"""Lifetime features: all history before the anchor, whatever lookbackDays, and nothing at or after it."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import polars as pl
import pytest

from segment_pipeline.goals.features import build_training_set
from segment_pipeline_tests.goals.goal_world import Events, make_goal, segments_yaml

ANCHOR = date(2026, 6, 1)
A = datetime.combine(ANCHOR, time())
DAY, SECOND = timedelta(days=1), timedelta(seconds=1)


@pytest.fixture
def world(con):
    events = Events(con)
    events.add("u1", "charged", A - 300 * DAY, category="concert", spend=10.0, quantity=1)
    events.add("u1", "charged", A - 200 * DAY, category="concert", spend=30.0, quantity=2)
    events.add("u1", "login", A - 100 * DAY)
    events.add("u2", "login", A - 250 * DAY)
    segments = segments_yaml()
    goal = make_goal(segments, segment="All Users", createdOn="2026-06-15", endDate="2026-06-28", lookbackDays=30)
    return con, events, segments, goal


def features_at_anchor(con, goal, segments) -> dict[str, dict]:
    training = build_training_set(con, goal, segments, [ANCHOR])
    frame = training.frame.filter(pl.col("horizon_days") == pl.col("horizon_days").max())
    return {row["user_id"]: {c: row[c] for c in training.feature_columns} for row in frame.iter_rows(named=True)}


def test_lifetime_features_reach_beyond_the_lookback(world):
    con, _, segments, goal = world
    got = features_at_anchor(con, goal, segments)
    u1, u2 = got["u1"], got["u2"]
    assert u1["events_30d"] == 0 and u1["goal_events_30d"] == 0  # the 30-day lookback sees nothing
    assert (u1["life_events"], u1["life_active_days"], u1["life_days_since_last_event"]) == (3, 3, 100)
    assert (u1["all_x"], u1["all_t_x"], u1["all_T"]) == (2, 200, 300)
    assert (u1["goal_life_events"], u1["goal_life_days"], u1["goal_days_since_first"]) == (2, 2, 300)
    assert u1["goal_days_since_last_life"] == 200
    assert (u1["bgnbd_x"], u1["bgnbd_t_x"], u1["bgnbd_T"]) == (1, 100, 300)
    assert (u1["goal_mean_gap_days"], u1["goal_recency_ratio"]) == (100, 2.0)
    assert (u1["goal_value_sum:spend"], u1["goal_value_mean:spend"], u1["goal_value_last:spend"]) == (40, 20, 30)
    assert u1["goal_value_last:quantity"] == 2
    # No goal event ever: x = t_x = 0 and T from the first event of any kind; times censored at the
    # history's span (300 days); the undefined timing and values are empty.
    assert (u2["bgnbd_x"], u2["bgnbd_t_x"], u2["bgnbd_T"]) == (0, 0, 250)
    assert (u2["goal_days_since_first"], u2["goal_days_since_last_life"]) == (300, 300)
    assert u2["goal_mean_gap_days"] is None and u2["goal_value_mean:spend"] is None
    assert u2["goal_value_sum:spend"] == 0


def test_an_event_one_second_after_the_anchor_changes_nothing_one_second_before_does(world):
    con, events, segments, goal = world
    before = features_at_anchor(con, goal, segments)
    events.add("u1", "charged", A + SECOND, category="concert", spend=99.0, quantity=5)
    events.add("u2", "charged", A, category="concert", spend=99.0, quantity=5)  # at the anchor: after it
    assert features_at_anchor(con, goal, segments) == before

    events.add("u1", "charged", A - SECOND, category="concert", spend=99.0, quantity=5)
    u1 = features_at_anchor(con, goal, segments)["u1"]
    assert (u1["goal_life_events"], u1["goal_life_days"], u1["bgnbd_x"], u1["bgnbd_t_x"]) == (3, 3, 2, 299)
    assert u1["goal_days_since_last_life"] == pytest.approx(1 / 86_400, rel=1e-3)
    assert (u1["goal_value_sum:spend"], u1["goal_value_last:spend"]) == (139, 99)
    assert u1["life_events"] == 4 and u1["goal_events_30d"] == 1
