"""Point-in-time training and scoring sets: values against a plain-Python reference, no
leakage from events at or after an anchor, labels only from ``[A, A + horizon)``."""

from __future__ import annotations

import itertools
import json
import random
import statistics
from datetime import date, datetime, time, timedelta
from pathlib import Path

import hypothesis.strategies as st
import polars as pl
import pytest
from hypothesis import given
from polars.testing import assert_frame_equal

from segment_pipeline.config.segments import load_segments
from segment_pipeline.demo.generator import DemoSpec, build_demo_tables
from segment_pipeline.goals.feature_spec import FeatureSpec
from segment_pipeline.goals.features import (
    achievers_by_day,
    anchor_step,
    build_scoring_set,
    build_training_set,
    choose_anchors,
    default_horizons,
    first_event_day,
    historical_timing_curve,
    history_problem,
)
from segment_pipeline.ingest.events import ensure_tables
from segment_pipeline.rules.compiler import evaluate_past_segments
from segment_pipeline.storage import warehouse
from segment_pipeline_tests.goals.goal_world import Events, make_goal, segments_yaml


@pytest.fixture
def events(con) -> Events:
    return Events(con)


START = datetime(2026, 1, 1)
ANCHORS = [date(2026, 2, 1), date(2026, 2, 8), date(2026, 2, 15)]
DAY = timedelta(days=1)
TYPES = ["app_launch", "login", "charged", "add_to_cart"]


def may_be_empty(column: str) -> bool:
    """Columns that are empty (missing) when undefined: profile values, the inter-purchase
    timing of users with no repeat goal day, value means and last values without a value."""
    return column.startswith(("profile:", "goal_value_mean:", "goal_value_last:")) or column in (
        "goal_mean_gap_days",
        "goal_recency_ratio",
    )


def midnight(day: date) -> datetime:
    return datetime.combine(day, time())


def random_world(events: Events, users: int = 40, seed: int = 7) -> list[dict]:
    """Random events from Jan 1 to Mar 20 (properties include near-misses of the goal's)."""
    rng = random.Random(seed)
    rows = []
    for u in range(users):
        for _ in range(rng.randint(0, 40)):
            name = rng.choice(TYPES)
            ts = START + timedelta(seconds=rng.randint(0, 78 * 86400))
            props = {}
            if name == "charged":
                props = {"category": rng.choice(["concert", "concert", "sports", "Concert", 1])}
            rows.append({"user_id": f"u{u:02d}", "event_name": name, "ts": ts, "properties": props})
    events.add_many(sorted(rows, key=lambda r: r["ts"]))
    events.profiles(
        [{"user_id": f"u{u:02d}", "city": rng.choice(["Paris", "Rome"]), "age": 20 + u} for u in range(0, users, 2)]
    )
    return rows


def is_goal(row: dict) -> bool:
    return row["event_name"] == "charged" and row["properties"].get("category") == "concert"


def reference_row(rows: list[dict], user: str, anchor: date, lookback: int) -> dict:
    """The features of one user at one anchor, straight from the definitions."""
    a = midnight(anchor)
    mine = [r for r in rows if r["user_id"] == user]
    window = [r for r in mine if a - lookback * DAY <= r["ts"] < a]
    days = sorted({r["ts"].date() for r in window})
    gaps = [(y - x).days for x, y in itertools.pairwise(days)]
    goal = [r for r in window if is_goal(r)]
    since = lambda rs: (a - max(r["ts"] for r in rs)) / DAY if rs else float(lookback)  # noqa: E731
    first = min((r["ts"] for r in mine), default=None)
    out = {
        "days_since_last_event": since(window),
        f"events_{lookback}d": len(window),
        f"active_days_{lookback}d": len(days),
        "mean_gap_days": statistics.mean(gaps) if gaps else lookback,
        "median_gap_days": statistics.median(gaps) if gaps else lookback,
        "tenure_days": (a - first) / DAY if first is not None and first < a else 0,
        "days_since_goal_event": since(goal),
    }
    for w in (7, lookback):
        out[f"goal_events_{w}d"] = sum(r["ts"] >= a - w * DAY for r in goal)
        for t in TYPES:
            out[f"events_{w}d:{t}"] = sum(r["ts"] >= a - w * DAY and r["event_name"] == t for r in window)
    return out


def first_achievement(rows: list[dict], user: str, start: datetime, end: datetime) -> datetime | None:
    return min((r["ts"] for r in rows if r["user_id"] == user and is_goal(r) and start <= r["ts"] < end), default=None)


@pytest.fixture
def world(con, events):
    rows = random_world(events)
    segments = segments_yaml()
    return con, rows, segments, make_goal(segments)


def test_features_and_labels_match_the_reference(world):
    con, rows, segments, goal = world
    training = build_training_set(con, goal, segments, ANCHORS, horizons=[14, 7, 3, 1])
    frame = training.frame
    assert training.feature_columns[0] == "horizon_days" and training.feature_columns == training.spec.feature_columns
    assert frame.columns == ["anchor", "user_id", "label", *training.feature_columns]
    assert len(training.feature_columns) == len(set(training.feature_columns))
    checked = 0
    for anchor in ANCHORS:
        members = {u for s, u in evaluate_past_segments(con, segments.past, anchor - DAY) if s == "launchers"}
        flags = {(s, u) for s, u in evaluate_past_segments(con, segments.past, anchor - DAY)}
        part = frame.filter(pl.col("anchor") == anchor)
        assert set(part.get_column("user_id")) == members and part.height == 4 * len(members)
        for row in part.iter_rows(named=True):
            user, expected = row["user_id"], reference_row(rows, row["user_id"], anchor, 30)
            for name, value in expected.items():
                assert row[name] == pytest.approx(value, rel=1e-5, abs=1e-4), (anchor, user, name)
            for segment in ("launchers", "buyers"):
                assert row[f"segment:{segment}"] == ((segment, user) in flags)
            achieved = first_achievement(rows, user, midnight(anchor), midnight(anchor) + 14 * DAY)
            horizon_end = midnight(anchor) + row["horizon_days"] * DAY
            assert row["label"] == int(achieved is not None and achieved < horizon_end)
            checked += 1
    assert checked > 100 and frame.get_column("label").sum() > 0
    profiled = {f"u{u:02d}": 20 + u for u in range(0, 40, 2)}
    ages = dict(frame.filter(pl.col("horizon_days") == 14).select("user_id", "profile:age").unique().iter_rows())
    assert {u: a for u, a in ages.items() if a is not None} == {u: profiled[u] for u in ages if u in profiled}
    assert any(a is None for a in ages.values())  # no profile: numbers empty, categories 0
    assert set(frame.filter(pl.col("profile:age").is_null()).get_column("profile:city=Paris")) == {0.0}


def test_all_users_goal_samples_everyone_known_before_each_anchor(world):
    con, rows, segments, _ = world
    goal = make_goal(segments, segment="All Users")
    training = build_training_set(con, goal, segments, ANCHORS, horizons=[14])
    profiled = {f"u{u:02d}" for u in range(0, 40, 2)}
    for anchor in ANCHORS:
        seen = {r["user_id"] for r in rows if r["ts"] < midnight(anchor)} | profiled
        assert set(training.frame.filter(pl.col("anchor") == anchor).get_column("user_id")) == seen


def test_profile_columns_the_goal_events_set_are_left_out(con, events):
    """Profiles are current: a ``category`` profile column would reveal who bought concerts."""
    segments = segments_yaml()
    events.add("u1", "app_launch", midnight(ANCHORS[0]) - DAY)
    con.execute('CREATE TABLE analytics.profiles (user_id VARCHAR, "Category" VARCHAR, city VARCHAR, age INTEGER)')
    con.execute("INSERT INTO analytics.profiles VALUES ('u1', 'concert', 'Rome', 30)")
    goal = make_goal(segments)
    training = build_training_set(con, goal, segments, ANCHORS[:1], exclude_profile_columns=["age"])
    assert [c for c in training.feature_columns if c.startswith("profile:")] == ["profile:city=Rome"]
    assert training.metadata["profile_columns_left_out"] == {
        "Category": "a property of the goal's events: its current value would leak the outcome",
        "age": "excluded by the caller",
    }


def test_labels_only_use_events_in_the_horizon(con, events):
    segments = segments_yaml()
    a = midnight(ANCHORS[0])
    for user in ("edge", "before", "near", "typed"):
        events.add(user, "app_launch", a - 2 * DAY)
    events.add("edge", "charged", a + 3 * DAY, category="concert")  # exactly A + 3 days
    events.add("before", "charged", a - timedelta(microseconds=1), category="concert")
    events.add("near", "charged", a, category="concert")  # exactly A
    events.add("typed", "charged", a + DAY, category="Concert").add("typed", "charged", a + DAY, category=1)
    goal = make_goal(segments, createdOn="2026-02-20", endDate="2026-03-05")
    training = build_training_set(con, goal, segments, [ANCHORS[0]], horizons=[14, 7, 3, 1])
    labels = {(r["user_id"], r["horizon_days"]): r["label"] for r in training.frame.iter_rows(named=True)}
    assert [labels["edge", h] for h in (1, 3, 7, 14)] == [0, 0, 1, 1]
    assert [labels["near", h] for h in (1, 3, 7, 14)] == [1, 1, 1, 1]
    assert [labels["before", h] for h in (1, 3, 7, 14)] == [0, 0, 0, 0]
    assert [labels["typed", h] for h in (1, 3, 7, 14)] == [0, 0, 0, 0]
    before = training.frame.filter(pl.col("user_id") == "before").row(0, named=True)
    assert before["goal_events_7d"] == 1 and before["days_since_goal_event"] == pytest.approx(1e-6 / 86400, abs=1e-6)


def add_leaks(events: Events, rows: list[dict], at: datetime) -> None:
    """Events of every type (goal events too), for known and new users, at and after ``at``."""
    users = [*sorted({r["user_id"] for r in rows}), "newcomer"]
    for k, user in enumerate(users):
        for j, name in enumerate(TYPES):
            ts = at + timedelta(hours=k + j) if k % 3 else at  # some exactly at the anchor
            events.add(user, name, ts, **({"category": "concert"} if name == "charged" else {}))


def test_events_after_the_last_anchor_change_no_feature(world):
    con, rows, segments, goal = world
    before = build_training_set(con, goal, segments, ANCHORS)
    add_leaks(Events(con), rows, midnight(ANCHORS[-1]))
    after = build_training_set(con, goal, segments, ANCHORS)  # spec derived again, from the data
    assert after.spec == before.spec
    features = ["anchor", "user_id", *before.feature_columns]
    assert_frame_equal(after.frame.select(features), before.frame.select(features))
    assert after.frame.get_column("label").sum() > before.frame.get_column("label").sum()


def test_events_between_anchors_change_only_later_anchors(world):
    con, rows, segments, goal = world
    before = build_training_set(con, goal, segments, ANCHORS)
    add_leaks(Events(con), rows, midnight(ANCHORS[0]))
    after = build_training_set(con, goal, segments, ANCHORS, spec=before.spec)
    features = ["anchor", "user_id", *before.feature_columns]
    first = pl.col("anchor") == ANCHORS[0]
    assert_frame_equal(after.frame.filter(first).select(features), before.frame.filter(first).select(features))
    assert not after.frame.filter(~first).select(features).equals(before.frame.filter(~first).select(features))


def test_scoring_features_equal_training_features_at_the_same_anchor(world):
    con, _rows, segments, goal = world
    training = build_training_set(con, goal, segments, ANCHORS)
    anchor = ANCHORS[1]
    train_rows = training.frame.filter((pl.col("anchor") == anchor) & (pl.col("horizon_days") == 14))
    users = [*train_rows.get_column("user_id").to_list(), "never-seen"]
    scoring = build_scoring_set(con, goal, users, anchor - DAY, spec=training.spec)
    assert scoring.columns == ["anchor", "user_id", *training.feature_columns]
    assert scoring.height == len(users) and scoring.get_column("anchor").unique().to_list() == [anchor]
    assert scoring.get_column("horizon_days").unique().to_list() == [14.0]  # window not started: all of it
    same = scoring.filter(pl.col("user_id") != "never-seen").drop("horizon_days")
    assert_frame_equal(same, train_rows.drop("label", "horizon_days"))
    unseen = scoring.filter(pl.col("user_id") == "never-seen").row(0, named=True)
    assert unseen["events_30d"] == 0 and unseen["days_since_last_event"] == 30


@pytest.mark.parametrize(("as_of", "left"), [(date(2026, 3, 1), 13), (date(2026, 3, 13), 1)])
def test_scoring_horizon_is_what_is_left_of_the_window(world, as_of, left):
    con, _rows, segments, goal = world
    spec = build_training_set(con, goal, segments, ANCHORS[:1]).spec
    scoring = build_scoring_set(con, goal, pl.DataFrame({"user_id": ["u01", "u02"]}), as_of, spec=spec)
    assert scoring.get_column("horizon_days").to_list() == [float(left)] * 2
    assert FeatureSpec.from_json(spec.to_json()) == spec
    with pytest.raises(ValueError, match="ended"):
        build_scoring_set(con, goal, ["u01"], date(2026, 3, 14), spec=spec)


def test_one_horizon_per_sample_when_rows_would_be_too_many(world):
    con, _rows, segments, goal = world
    full = build_training_set(con, goal, segments, ANCHORS)
    sampled = build_training_set(con, goal, segments, ANCHORS, max_rows=10)
    assert sampled.metadata["horizon_sampling"] == "one per anchor and user"
    assert sampled.frame.height == full.frame.height // len(full.horizons)
    assert set(sampled.frame.get_column("horizon_days").unique()) <= {float(h) for h in full.horizons}
    joined = sampled.frame.join(full.frame, on=["anchor", "user_id", "horizon_days"], how="left", suffix="_full")
    assert joined.get_column("label").to_list() == joined.get_column("label_full").to_list()
    assert_frame_equal(build_training_set(con, goal, segments, ANCHORS, max_rows=10).frame, sampled.frame)


@given(
    start=st.dates(date(2025, 1, 1), date(2026, 6, 1)),
    history=st.integers(0, 400),
    length=st.integers(1, 120),
    lookback=st.integers(1, 200),
    max_anchors=st.integers(1, 8),
)
def test_anchors_keep_lookbacks_in_history_and_labels_before_created_on(start, history, length, lookback, max_anchors):
    created = start + timedelta(days=history)
    anchors = choose_anchors(start, created, length, lookback, max_anchors)
    assert anchors == sorted(set(anchors)) and len(anchors) <= max_anchors
    for a in anchors:
        assert a - timedelta(days=lookback) >= start and a + timedelta(days=length) <= created
    assert bool(anchors) == (history >= lookback + length)
    steps = {(b - a).days for a, b in itertools.pairwise(anchors)}
    assert steps <= {anchor_step(length)} and anchor_step(length) % 7 == 0


def test_anchors_stay_inside_loaded_history_and_late_anchors_are_refused(world):
    con, _rows, segments, goal = world
    assert choose_anchors(date(2026, 1, 1), date(2026, 3, 1), 14, 30) == ANCHORS
    assert choose_anchors(date(2026, 1, 1), date(2026, 3, 1), 14, 30, history_end=date(2026, 2, 14)) == [
        date(2026, 2, 1)
    ]
    with pytest.raises(ValueError, match="would end after createdOn"):
        build_training_set(con, goal, segments, [date(2026, 2, 16)])


@pytest.mark.parametrize(("length", "expected"), [(30, [30, 23, 15, 8]), (2, [2, 1]), (1, [1])])
def test_default_horizons(length, expected):
    assert default_horizons(length) == expected


def test_insufficient_history_names_the_events_and_suggests_others(world):
    con, _rows, segments, _ = world
    goal = make_goal(segments, events="[{eventType: charged, eventProperties: {category: Concert}}]")
    training = build_training_set(con, goal, segments, ANCHORS)
    assert training.anchor_stats.get_column("achievers").to_list() == [7, 5, 3]
    message = history_problem(con, goal, training)
    assert message.startswith(
        "goal 'sell concerts' cannot train a model yet: it has 3 anchors (needs 2), 15 achievers and 81 "
        "non-achievers of 'charged {category: Concert}' in full-length windows (needs 20 of each), and 59 days "
        "of events before createdOn 2026-03-01"
    )
    assert (
        "as a new goal (this one's target group is frozen): another event (with enough history: login (66), "
        "charged (64), add_to_cart (57), app_launch (55))"
    ) in message
    assert "lookbackDays" not in message.split("What would help")[1]  # history is long enough: not the fix


def test_enough_history_is_no_problem(con, events):
    segments = segments_yaml()
    for u in range(50):
        for anchor in ANCHORS:
            events.add(f"u{u}", "app_launch", midnight(anchor) - 3 * DAY)
            if u % 2:
                events.add(f"u{u}", "charged", midnight(anchor) + DAY, category="concert")
    events.add("first", "login", START)
    goal = make_goal(segments)
    assert history_problem(con, goal, build_training_set(con, goal, segments, ANCHORS)) is None


def test_short_history_says_how_much_is_needed(world):
    con, _rows, segments, _ = world
    goal = make_goal(segments, createdOn="2026-01-20", endDate="2026-02-02")
    anchors = choose_anchors(first_event_day(con), goal.created_on, goal.length_days, goal.lookback_days)
    assert anchors == []
    training = build_training_set(con, goal, segments, anchors)
    assert training.frame.height == 0 and training.frame.columns[3:] == training.feature_columns
    message = history_problem(con, goal, training)
    assert "it has 0 anchors (needs 2)" in message
    assert "19 days of events before createdOn 2026-01-20 (events start on 2026-01-01" in message
    assert "needs 51 = lookbackDays 30 + the 14-day window + 7 days between 2 anchors" in message
    assert "a createdOn on or after 2026-02-21" in message
    later = make_goal(segments, createdOn="2026-02-05", endDate="2026-02-18")  # 35 days: lookback 14 would do
    message = history_problem(con, later, None)
    assert "What would help: lookbackDays 14 or less (applied now: the goal has no model yet)" in message


def test_achievers_by_day_and_the_timing_curve(world):
    con, rows, segments, goal = world
    start, end = date(2026, 2, 1), date(2026, 2, 14)
    got = achievers_by_day(con, goal, None, start, end)
    expected = {
        u: first_achievement(rows, u, midnight(start), midnight(end + DAY)) for u in {r["user_id"] for r in rows}
    }
    assert dict(got.select("user_id", "achieved_at").iter_rows()) == {u: t for u, t in expected.items() if t}
    assert got.get_column("window_day").to_list() == [
        (t.date() - start).days + 1 for t in got.get_column("achieved_at")
    ]
    some = achievers_by_day(con, goal, got.get_column("user_id")[:2].to_list(), start, end)
    assert some.height == 2

    curve = historical_timing_curve(con, goal, ANCHORS)
    assert curve.get_column("day").to_list() == list(range(1, 15))
    shares = curve.get_column("share").to_list()
    assert shares == sorted(shares) and shares[-1] == 1.0
    days = [
        (t - midnight(a)) // DAY + 1
        for a in ANCHORS
        for u in expected
        if (t := first_achievement(rows, u, midnight(a), midnight(a) + 14 * DAY)) is not None
    ]
    assert curve.get_column("achievers").to_list() == [sum(d <= k for d in days) for k in range(1, 15)]
    total = len(days)
    in_segment = historical_timing_curve(con, goal, ANCHORS, segments)
    assert in_segment.get_column("achievers").to_list()[-1] <= total
    empty = historical_timing_curve(con, make_goal(segments, events="[{eventType: nothing}]"), ANCHORS)
    assert empty.get_column("share").to_list()[-1] == 1.0 and empty.get_column("achievers").sum() == 0


@pytest.fixture(scope="module")
def demo_warehouse(tmp_path_factory):
    path = tmp_path_factory.mktemp("demo") / "warehouse.duckdb"
    tables = build_demo_tables(DemoSpec(users=800, days=120))
    with warehouse.connect(path) as con:
        ensure_tables(con, ("analytics", "event_snapshots"))
        con.register("demo_events", tables.events)
        con.execute(
            """INSERT INTO analytics.event_snapshots SELECT event_id, user_id, event_name, ts,
               CAST(properties AS JSON), CAST(ts AS DATE) FROM demo_events"""
        )
        con.register("demo_profiles", tables.profiles)
        con.execute("CREATE TABLE analytics.profiles AS SELECT * FROM demo_profiles")
    return path


def test_demo_training_set_is_complete_and_leak_free(demo_warehouse):
    segments = load_segments(Path(__file__).resolve().parents[2] / "segment_pipeline/demo/config/segments.yaml")
    goal = make_goal(
        segments, segment="Users in San Francisco", createdOn="2026-04-25", endDate="2026-04-30", lookbackDays=60
    )
    with warehouse.connect(demo_warehouse) as con:
        anchors = choose_anchors(first_event_day(con), goal.created_on, goal.length_days, goal.lookback_days)
        training = build_training_set(con, goal, segments, anchors)
        frame = training.frame
        assert len(anchors) == 6 and frame.height > 0 and len(training.feature_columns) >= 60
        behaviour = [c for c in training.feature_columns if not may_be_empty(c)]
        assert frame.select(pl.col(behaviour).null_count()).sum_horizontal().item() == 0
        assert frame.get_column("label").sum() > 0
        # Copy every event a week later than it happened, from the last anchor on: no feature moves.
        last = midnight(anchors[-1])
        con.execute(
            """INSERT INTO analytics.event_snapshots
               SELECT 'copy-' || event_id, user_id, event_name, ts + INTERVAL 7 DAY, properties, snapshot_date
               FROM analytics.event_snapshots WHERE ts + INTERVAL 7 DAY >= ?""",
            [last],
        )
        again = build_training_set(con, goal, segments, anchors)
        features = ["anchor", "user_id", *training.feature_columns]
        assert_frame_equal(again.frame.select(features), frame.select(features))
        con.execute("DELETE FROM analytics.event_snapshots WHERE event_id LIKE 'copy-%'")


def test_properties_json_is_typed_like_segments(con, events):
    """A goal on a number property matches 5 and 5.0 but not "5" or true."""
    segments = segments_yaml()
    a = midnight(ANCHORS[0])
    for user, stars in [("int", 5), ("float", 5.0), ("text", "5"), ("bool", True)]:
        events.add(user, "app_launch", a - DAY)
        con.execute(
            "INSERT INTO analytics.event_snapshots VALUES (?, ?, 'rating', ?, ?, ?)",
            [f"r-{user}", user, a + DAY, json.dumps({"stars": stars}), (a + DAY).date()],
        )
    goal = make_goal(
        segments,
        createdOn="2026-02-20",
        endDate="2026-03-05",
        events="[{eventType: rating, eventProperties: {stars: 5}}]",
    )
    got = achievers_by_day(con, goal, None, ANCHORS[0], date(2026, 2, 5))
    assert sorted(got.get_column("user_id")) == ["float", "int"]
