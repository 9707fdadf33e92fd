"""A value goal's monetary features and labels: point-in-time, its own property, non-numbers counted."""

from __future__ import annotations

import math
from datetime import date, datetime, time, timedelta

import numpy as np
import polars as pl
import pytest

from segment_pipeline.goals.features import build_training_set
from segment_pipeline.goals.outcomes import realized_by_day
from segment_pipeline.goals.value_model import check_property, value_timing_curve, window_values
from segment_pipeline_tests.goals.goal_world import Events, make_goal, segments_yaml

ANCHOR = date(2026, 6, 1)
A = datetime.combine(ANCHOR, time())
DAY, SECOND = timedelta(days=1), timedelta(seconds=1)


@pytest.fixture
def world(con):
    events = Events(con)
    # Four numeric properties, the value property the rarest: it must still be a feature.
    for k in range(3):
        events.add("u1", "charged", A - (100 + k) * DAY, category="concert", a=1, b=2, c=3)
    events.add("u1", "charged", A - 50 * DAY, category="concert", a=1, b=2, c=3, amount=40.0)
    events.add("u1", "charged", A - 40 * DAY, category="concert", amount="lots")  # not a number
    events.add("u2", "charged", A - 30 * DAY, category="concert", amount=True)  # not an amount either
    events.add("u2", "login", A - 250 * DAY)
    segments = segments_yaml()
    goal = make_goal(
        segments,
        segment="All Users",
        createdOn="2026-06-15",
        endDate="2026-06-28",
        lookbackDays=30,
        valueProperty="amount",
    )
    return con, events, segments, goal


def features_at_anchor(con, goal, segments) -> dict[str, dict]:
    training = build_training_set(con, goal, segments, [ANCHOR])
    frame = training.frame.filter(pl.col("horizon_days") == pl.col("horizon_days").max())
    return {row["user_id"]: {c: row[c] for c in training.feature_columns} for row in frame.iter_rows(named=True)}


def test_the_value_property_is_a_feature_even_when_rare_and_only_history_before_the_anchor_counts(world):
    con, events, segments, goal = world
    before = features_at_anchor(con, goal, segments)
    assert before["u1"]["goal_value_sum:amount"] == 40 and before["u1"]["goal_value_last:amount"] == 40
    events.add("u1", "charged", A, category="concert", amount=500.0)  # at the anchor: the label's, not a feature
    events.add("u2", "charged", A + 2 * DAY, category="concert", amount=7.5)
    assert features_at_anchor(con, goal, segments) == before
    events.add("u1", "charged", A - SECOND, category="concert", amount=2.0)
    assert features_at_anchor(con, goal, segments)["u1"]["goal_value_sum:amount"] == 42


def test_window_values_sum_the_property_inside_each_rows_window(world):
    con, events, _, goal = world
    events.add("u1", "charged", A, category="concert", amount=500.0)
    events.add("u1", "charged", A + 3 * DAY - SECOND, category="concert", amount=1.5)
    events.add("u1", "charged", A + 3 * DAY, category="concert", amount=1000.0)  # outside a 3-day window
    events.add("u1", "charged", A + DAY, category="opera", amount=80.0)  # not a goal event
    events.add("u1", "charged", A + DAY, category="concert", amount="n/a")  # not a number: left out, not 0
    rows = pl.DataFrame(
        {
            "anchor": [ANCHOR, ANCHOR, ANCHOR, ANCHOR + DAY],
            "user_id": ["u1", "u1", "u2", "u1"],
            "horizon_days": [3, 4, 3, 2],
        }
    )
    assert window_values(con, goal, rows) == pytest.approx(np.array([501.5, 1501.5, 0.0, 1.5]))
    days = realized_by_day(con, goal, pl.Series(["u1", "u2"]), ANCHOR, ANCHOR + 2 * DAY)
    assert days.rows() == [("u1", 1, 500.0), ("u1", 2, 0.0), ("u1", 3, 1.5)]  # day 2: only "n/a"


def test_non_numeric_values_are_counted_and_a_missing_property_names_the_ones_that_exist(world):
    con, _, segments, goal = world
    check = check_property(con, goal, goal.created_on)
    assert (check.numeric, check.non_numeric) == (1, 2)
    assert check.problem(goal) is None and "2 goal events hold a non-numeric" in check.note()
    wrong = make_goal(
        segments, segment="All Users", createdOn="2026-06-15", endDate="2026-06-28", valueProperty="price"
    )
    problem = check_property(con, wrong, wrong.created_on).problem(wrong)
    assert "valueProperty 'price'" in problem and "a, b, c" in problem and "Fix:" in problem


def test_value_sums_have_the_same_bits_on_every_run(con):
    """DuckDB sums a DOUBLE column in parallel and adds the threads' partial sums in the order
    they finish; the value model amplifies a last-bit change into percents. Many values per
    user across several row groups and threads: every call must give the same bits."""
    con.execute("SET threads = 4")
    rng = np.random.default_rng(11)
    n = 300_000
    users, offsets = rng.integers(0, 3, n), rng.integers(0, 3 * 86_400, n)
    amounts = np.round(rng.gamma(2.0, 40.0, n), 2)
    Events(con).add_many(
        [
            {
                "user_id": f"u{u}",
                "event_name": "charged",
                "ts": A + timedelta(seconds=int(s)),
                "properties": {"category": "concert", "amount": float(v)},
            }
            for u, s, v in zip(users, offsets, amounts, strict=True)
        ]
    )
    goal = make_goal(
        segments_yaml(), segment="All Users", createdOn="2026-06-15", endDate="2026-06-28", valueProperty="amount"
    )
    rows = pl.DataFrame({"anchor": [ANCHOR] * 3, "user_id": ["u0", "u1", "u2"], "horizon_days": [3] * 3})
    ids = pl.Series(["u0", "u1", "u2"])
    first = window_values(con, goal, rows)
    first_days = realized_by_day(con, goal, ids, ANCHOR, ANCHOR + 2 * DAY)
    first_curve = value_timing_curve(con, goal, [ANCHOR])
    assert first.tolist() == pytest.approx([math.fsum(amounts[users == u]) for u in range(3)], rel=1e-12)
    for _ in range(4):
        assert window_values(con, goal, rows).tolist() == first.tolist()
        assert realized_by_day(con, goal, ids, ANCHOR, ANCHOR + 2 * DAY).equals(first_days)
        assert value_timing_curve(con, goal, [ANCHOR]).tolist() == first_curve.tolist()
