"""Freezing target groups: point in time, once, with the public control hash, and edits reported."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from scipy.stats import binom

from segment_pipeline.goals import target_groups
from segment_pipeline.goals.control_group import assign_group
from segment_pipeline.goals.target_groups import (
    control_share_bounds,
    definition_changed,
    freeze_target_group,
    frozen_goal,
)
from segment_pipeline.storage.warehouse import table_exists
from segment_pipeline_tests.goals.goal_world import Events, make_goal, segments_yaml


@pytest.fixture
def events(con) -> Events:
    return Events(con)


CREATED = datetime(2026, 3, 1)


def group_rows(con, goal_name: str = "sell concerts") -> list[tuple]:
    return con.execute(
        'SELECT user_id, "group", frozen_on FROM analytics.target_groups WHERE goal_name = ? ORDER BY user_id',
        [goal_name],
    ).fetchall()


def launches(events, users: range, at: datetime) -> None:
    for i in users:
        events.add(f"u{i:03d}", "app_launch", at + timedelta(minutes=i))


def test_members_as_of_the_day_before_created_on_with_the_public_hash(con, events):
    segments = segments_yaml()
    launches(events, range(60), CREATED - timedelta(days=3))
    events.add("late", "app_launch", CREATED)  # at createdOn 00:00: after the freeze day
    events.add("old", "app_launch", CREATED - timedelta(days=31))  # outside the 30-day window
    events.add("edge", "app_launch", CREATED - timedelta(days=30))  # first instant of the window
    goal = make_goal(segments, controlGroupPercent=20)

    result = freeze_target_group(con, goal, segments)

    rows = group_rows(con)
    users = [r[0] for r in rows]
    assert users == sorted([f"u{i:03d}" for i in range(60)] + ["edge"])
    assert all(r[2] == date(2026, 2, 28) for r in rows)
    assert [r[1] for r in rows] == [assign_group(goal.name, u, 20) for u in users]
    assert result.newly_frozen and result.frozen_on == date(2026, 2, 28)
    assert (result.members, result.control) == (61, sum(r[1] == "control" for r in rows))
    assert 0 < result.control < result.members


def test_a_late_run_sees_only_events_before_created_on(con, events):
    """Run long after createdOn with many newer events: the group is still the eve's."""
    segments = segments_yaml()
    launches(events, range(5), CREATED - timedelta(days=1))
    launches(events, range(5, 50), CREATED + timedelta(days=2))  # newer users, loaded before the run
    goal = make_goal(segments)
    freeze_target_group(con, goal, segments, as_of=date(2026, 3, 20))
    assert [r[0] for r in group_rows(con)] == [f"u{i:03d}" for i in range(5)]


def test_the_hash_in_sql_is_the_public_one_for_any_text(con, events):
    segments = segments_yaml()
    users = ["ü-user", "用户", "o'brien", "a:b", "x" * 200, "42"]
    for user in users:
        events.add(user, "app_launch", CREATED - timedelta(hours=5))
    goal = make_goal(segments, goalName="It's Ünïcode, goal 🎟", controlGroupPercent=50)
    freeze_target_group(con, goal, segments)
    rows = group_rows(con, goal.name)
    assert sorted(users) == [r[0] for r in rows]
    assert [r[1] for r in rows] == [assign_group(goal.name, u, 50) for u, _, _ in rows]


def test_too_early_a_run_refuses_to_freeze(con, events):
    segments = segments_yaml()
    with pytest.raises(ValueError, match="members as of 2026-02-28"):
        freeze_target_group(con, make_goal(segments), segments, as_of=date(2026, 2, 27))
    assert not table_exists(con, "analytics", "target_groups")


def test_second_freeze_changes_nothing_and_reports_the_edit(con, events):
    segments = segments_yaml()
    launches(events, range(30), CREATED - timedelta(days=2))
    goal = make_goal(segments)
    first = freeze_target_group(con, goal, segments)
    before = group_rows(con)
    stored = con.execute("SELECT * FROM pipeline_state.goal_freezes").fetchall()
    assert definition_changed(con, goal, segments) is None

    # New members by new events, a wider segment, another control percent: none may apply.
    launches(events, range(30, 60), CREATED - timedelta(days=1))
    events.add("ancient", "app_launch", CREATED - timedelta(days=50))
    edited_segments = segments_yaml(timeframe=60)
    edited_goal = make_goal(edited_segments, controlGroupPercent=40)
    second = freeze_target_group(con, edited_goal, edited_segments)

    assert group_rows(con) == before
    assert con.execute("SELECT * FROM pipeline_state.goal_freezes").fetchall() == stored
    assert not second.newly_frozen and (second.members, second.control) == (first.members, first.control)
    message = second.definition_change
    assert message == definition_changed(con, edited_goal, edited_segments)
    assert "goal 'sell concerts' was frozen as of 2026-02-28" in message
    assert "controlGroupPercent: 5.0 -> 40.0" in message
    assert "segment 'launchers' definition: segmentTimeframe: 30 -> 60" in message
    assert "not applied" in message and "Fix:" in message
    assert frozen_goal(con, "sell concerts") == goal


def test_deleted_segment_of_a_frozen_goal_is_reported_not_an_error(con, events):
    segments = segments_yaml()
    launches(events, range(3), CREATED - timedelta(days=2))
    goal = make_goal(segments)
    freeze_target_group(con, goal, segments)
    without = type(segments)([s for s in segments.segments if s.name != "launchers"])
    result = freeze_target_group(con, goal, without)
    assert result.members == 3 and "segment 'launchers' is no longer defined" in result.definition_change


def test_all_users_goal_and_empty_groups_freeze_too(con, events):
    segments = segments_yaml()
    events.add("a", "charged", CREATED - timedelta(days=200), category="concert")
    events.add("b", "login", CREATED + timedelta(hours=1))
    events.profiles([{"user_id": "p", "city": "Paris"}])  # All Users includes profiles
    everyone = freeze_target_group(con, make_goal(segments, goalName="everyone", segment="All Users"), segments)
    nobody = freeze_target_group(con, make_goal(segments, goalName="nobody", segment="buyers"), segments)
    assert [r[0] for r in group_rows(con, "everyone")] == ["a", "p"] and everyone.members == 2
    assert nobody.members == 0 and nobody.newly_frozen
    assert not freeze_target_group(con, make_goal(segments, goalName="nobody", segment="buyers"), segments).newly_frozen


def test_a_failing_freeze_writes_nothing(con, events, monkeypatch):
    segments = segments_yaml()
    launches(events, range(10), CREATED - timedelta(days=2))

    def boom(definition):
        raise RuntimeError("crash after the group was written")

    monkeypatch.setattr(target_groups, "definition_hash", boom)
    with pytest.raises(RuntimeError):
        freeze_target_group(con, make_goal(segments), segments)
    assert con.execute("SELECT count(*) FROM analytics.target_groups").fetchone() == (0,)
    assert con.execute("SELECT count(*) FROM pipeline_state.goal_freezes").fetchone() == (0,)


@pytest.mark.parametrize(("n", "percent"), [(20, 5), (1_000, 5), (50_000, 10), (3, 50)])
def test_control_share_bounds_hold_the_binomial_mass(n, percent):
    low, high = control_share_bounds(n, percent, alpha=0.001)
    p = percent / 100
    assert 0 <= low <= p <= high <= 1
    outside = binom.cdf(round(low * n) - 1, n, p) + binom.sf(round(high * n), n, p)
    assert outside <= 0.001


def test_control_share_of_the_real_hash_is_inside_the_bounds():
    users = [f"user-{i}" for i in range(20_000)]
    control = sum(assign_group("sell concerts", u, 5) == "control" for u in users)
    low, high = control_share_bounds(len(users), 5)
    assert low <= control / len(users) <= high
    assert control_share_bounds(0, 5) == (0.0, 1.0)
