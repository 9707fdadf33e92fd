"""Daily rollups (kept by each load) and goal rollups (folded in per night) give exactly what the
events give: the rollups themselves, goal features at several anchors, achievers, flags."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from segment_pipeline.goals import goal_rollups
from segment_pipeline.goals.features import achievers_by_day, build_scoring_set, build_training_set
from segment_pipeline.ingest import state
from segment_pipeline.ingest.events import load_events
from segment_pipeline.ingest.sources import discover
from segment_pipeline.segments.evaluate import evaluate_day
from segment_pipeline.storage import warehouse
from segment_pipeline_tests.conftest import write_events
from segment_pipeline_tests.goals.goal_world import make_goal, segments_yaml

START = datetime(2026, 1, 1)
DAYS = 40
EVENT = st.fixed_dictionaries(
    {
        "user": st.integers(0, 9),
        "name": st.sampled_from(["app_launch", "charged", "item_viewed"]),
        "minute": st.integers(0, DAYS * 24 * 60 - 1),
        "category": st.sampled_from(["concert", "sports", None]),
        "spend": st.one_of(st.none(), st.integers(0, 50), st.floats(0, 50, allow_nan=False), st.just("n/a")),
    }
)
DIRECT_ROLLUPS = """
SELECT user_id, CAST(ts AS DATE), event_name, count(*), min(ts), max(ts)
FROM analytics.event_snapshots GROUP BY ALL ORDER BY ALL
"""


def _rows(batch: list[dict], night: int) -> list[dict]:
    rows = []
    for k, e in enumerate(batch):
        props = {key: e[key] for key in ("category", "spend") if e[key] is not None}
        rows.append(
            {
                "event_id": f"n{night}-{k}",
                "user_id": f"u{e['user']}",
                "event_name": e["name"],
                "ts": (START + timedelta(minutes=e["minute"])).isoformat(),
                "properties": json.dumps(props),
            }
        )
    return rows


def load_nights(tmp, con, batches: list[list[dict]]) -> date:
    """Each batch is a night's file; its events fall anywhere in the history (late events too)."""
    last = START.date() + timedelta(days=DAYS)
    for night, batch in enumerate(batches):
        write_events(tmp / "events" / f"night{night}.ndjson", _rows(batch, night))
        load_events(
            con,
            discover(str(tmp / "events" / "*"), env_var="E"),
            snapshot_date=last + timedelta(days=night),
            max_reject_rate=1,
        )
        yield night


def without_summaries(con):
    """Make the readers take the events (as for a snapshot written some other way)."""
    con.execute(f"DELETE FROM {state.MARKS}")
    assert not state.is_current(con)


NIGHTS = st.lists(st.lists(EVENT, min_size=5, max_size=40), min_size=1, max_size=3)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=NIGHTS)
def test_daily_and_goal_rollups_equal_a_direct_computation_after_every_load(tmp_path_factory, batches):
    tmp = tmp_path_factory.mktemp("rollups")
    segments = segments_yaml()
    goal = make_goal(segments, valueProperty="spend")
    with warehouse.connect(tmp / "w.duckdb") as con:
        for _ in load_nights(tmp, con, batches):
            assert state.is_current(con)
            assert con.execute(f"SELECT * FROM {state.ROLLUPS} ORDER BY ALL").fetchall() == (
                con.execute(DIRECT_ROLLUPS).fetchall()
            )
            # Folded in night by night, the goal rollup equals one built from scratch.
            table = goal_rollups.ensure(con, goal.events, ["spend"])
            folded = con.execute(f"SELECT * FROM {table} ORDER BY user_id, day").fetchall()
            con.execute(f"DELETE FROM {goal_rollups.MARKS}")
            goal_rollups.ensure(con, goal.events, ["spend"])
            rebuilt = con.execute(f"SELECT * FROM {table} ORDER BY user_id, day").fetchall()
            assert _rounded(folded) == _rounded(rebuilt)


def load_spend_goal_world(tmp, con, batches: list[list[dict]], *, all_users: bool):
    """The nights loaded, a value goal on ``spend`` (All Users or a segment's members) and three
    anchors, one anchor's eve memberships stored (that anchor's flags and population read them)."""
    segments = segments_yaml(timeframe=10)
    goal = make_goal(
        segments,
        segment="All Users" if all_users else "launchers",
        createdOn="2026-02-05",
        endDate="2026-02-09",
        lookbackDays=10,
        valueProperty="spend",
    )
    anchors = [date(2026, 1, 20), date(2026, 1, 25), date(2026, 1, 31)]
    list(load_nights(tmp, con, batches))
    evaluate_day(con, segments, anchors[1] - timedelta(days=1))
    return segments, goal, anchors


def _rounded(rows):
    return [tuple(round(v, 9) if isinstance(v, float) else v for v in row) for row in rows]


def _on_day(user: int, day: int, name: str = "app_launch", category: str | None = "concert", spend=10) -> dict:
    return {"user": user, "name": name, "minute": day * 24 * 60 + 30, "category": category, "spend": spend}


# Active days on each window's first day (the first anchor's is the earliest day read) and the
# day before it, where a window's first gap would come from.
WINDOW_EDGES = [
    [_on_day(u, d, name) for u in (1, 2) for d in (8, 9, 10, 14, 15, 20, 21) for name in ("app_launch", "charged")]
]


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=NIGHTS, all_users=st.booleans())
@example(batches=WINDOW_EDGES, all_users=True)
def test_features_and_achievers_from_rollups_equal_those_from_the_events(tmp_path_factory, batches, all_users):
    tmp = tmp_path_factory.mktemp("features")
    with warehouse.connect(tmp / "w.duckdb") as con:
        segments, goal, anchors = load_spend_goal_world(tmp, con, batches, all_users=all_users)
        assert state.is_current(con)
        from_rollups = build_training_set(con, goal, segments, anchors)
        scored_rollups = build_scoring_set(con, goal, ["u1", "u2", "u7"], date(2026, 2, 6), spec=from_rollups.spec)
        achieved_rollups = achievers_by_day(con, goal, None, date(2026, 1, 10), date(2026, 2, 9))
        first_day = state.first_event_day(con)
        con.execute("DELETE FROM pipeline_state.segment_definitions")  # flags evaluated again
        without_summaries(con)
        direct = build_training_set(con, goal, segments, anchors, spec=from_rollups.spec)
        assert_frame_equal(from_rollups.frame, direct.frame)
        assert_frame_equal(from_rollups.anchor_stats, direct.anchor_stats)
        scored_direct = build_scoring_set(con, goal, ["u1", "u2", "u7"], date(2026, 2, 6), spec=from_rollups.spec)
        assert_frame_equal(scored_rollups, scored_direct)
        assert_frame_equal(achieved_rollups, achievers_by_day(con, goal, None, date(2026, 1, 10), date(2026, 2, 9)))
        assert first_day == state.first_event_day(con)


def test_a_large_anchor_is_sampled_keeping_achievers_and_the_holdout_uniform(con):
    from segment_pipeline_tests.goals.goal_world import Events

    events = Events(con)
    segments = segments_yaml(timeframe=40)
    goal = make_goal(segments, segment="All Users", createdOn="2026-02-05", endDate="2026-02-09", lookbackDays=10)
    anchors = [date(2026, 1, 20), date(2026, 1, 31)]
    rows = []
    for u in range(80):
        rows.append({"user_id": f"u{u}", "event_name": "app_launch", "ts": START, "properties": {}})
        if u % 8 == 0:  # 10 achievers at each anchor
            for anchor in anchors:
                ts = datetime.combine(anchor, datetime.min.time()) + timedelta(days=1, hours=u % 5)
                rows.append(
                    {"user_id": f"u{u}", "event_name": "charged", "ts": ts, "properties": {"category": "concert"}}
                )
    events.add_many(rows)
    full = build_training_set(con, goal, segments, anchors, horizons=[5])
    sampled = build_training_set(con, goal, segments, anchors, horizons=[5], max_users_per_anchor=30)
    assert_frame_equal(full.anchor_stats, sampled.anchor_stats)  # the whole population, sampled or not
    assert full.anchor_stats["population"].to_list() == [80, 80]
    assert full.anchor_stats["achievers"].to_list() == [10, 10]
    by_anchor = {a: f for (a,), f in sampled.frame.partition_by("anchor", as_dict=True).items()}
    train, holdout = by_anchor[anchors[0]], by_anchor[anchors[1]]
    assert train.height == holdout.height == 30
    assert train["label"].sum() == 10  # every achiever kept at a training anchor
    assert set(holdout["user_id"]) <= set(full.frame["user_id"])
    # Kept rows carry the features they have in the full set.
    assert_frame_equal(
        sampled.frame.sort("anchor", "user_id"),
        full.frame.join(sampled.frame.select("anchor", "user_id"), on=["anchor", "user_id"]).sort("anchor", "user_id"),
    )
    assert sampled.metadata["sampled_anchors"][str(anchors[0])] == {"population": 80, "achievers": 10, "kept": 30}


def test_a_read_only_reader_takes_the_events_and_gets_the_same_achievers(tmp_path):
    segments = segments_yaml()
    goal = make_goal(segments)
    batch = [
        {"user": u, "name": "charged", "minute": 60 * 24 * d + u, "category": "concert", "spend": 5}
        for u in range(4)
        for d in (3, 9)
    ]
    with warehouse.connect(tmp_path / "w.duckdb") as con:
        list(load_nights(tmp_path, con, [batch]))
        written = achievers_by_day(con, goal, None, date(2026, 1, 1), date(2026, 1, 31))
        assert goal_rollups.available(con) and written.height == 4
    with warehouse.connect(tmp_path / "w.duckdb", read_only=True) as con:
        assert not goal_rollups.available(con)
        assert_frame_equal(achievers_by_day(con, goal, None, date(2026, 1, 1), date(2026, 1, 31)), written)
