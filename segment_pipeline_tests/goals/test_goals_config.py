"""goals.yaml: the model, its window helpers, and every rule with its file, goal, line and fix."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import pytest

from segment_pipeline.config.errors import ConfigError
from segment_pipeline.config.goals import (
    RULE_ACTIVE,
    RULE_CONTROL,
    RULE_DATES,
    RULE_EVENTS,
    RULE_LOOKBACK,
    RULE_NAMES,
    RULE_OBJECTIVE,
    RULE_PRECISION,
    RULE_RETRAIN,
    RULE_SEGMENT,
    load_goals,
    load_goals_text,
)
from segment_pipeline.config.segments import load_segments, load_segments_text

DEMO = Path(__file__).resolve().parents[2] / "segment_pipeline" / "demo" / "config"

SEGMENTS = load_segments_text(
    """
kind: segments
segmentDefinitions:
  - segmentName: Users in San Francisco
    segmentType: past
    segmentSubtype: 1
    segmentTimeframe: 30
    eventSequence: [{eventType: app_launch, expTimeframe: 0, actionInaction: action}]
  - segmentName: app launched now
    segmentType: live
    segmentSubtype: 1
    segmentTimeframe: 0
    eventSequence: [{eventType: app_launch, expTimeframe: 0, actionInaction: action}]
"""
)


def goal(name: str = "g", **overrides: str) -> str:
    """One goal as YAML lines (an override of None drops the key)."""
    keys = {
        "goalName": name,
        "segment": "Users in San Francisco",
        "createdOn": "2026-06-01",
        "endDate": "2026-06-30",
        "objective": "maximize",
        "events": "[{eventType: charged, eventProperties: {category: concert}}]",
    } | overrides
    lines = [f"{k}: {v}" for k, v in keys.items() if v is not None]
    return "  - " + "\n    ".join(lines) + "\n"


def doc(*goals: str, header: str = "kind: goals\nmaxActiveGoals: 5\n") -> str:
    return header + "goals:\n" + "".join(goals)


def problems(text: str) -> list:
    with pytest.raises(ConfigError) as caught:
        load_goals_text(text, SEGMENTS, "goals.yaml")
    return caught.value.problems


def test_demo_goals_load_with_their_windows():
    segments = load_segments(DEMO / "segments.yaml")
    config = load_goals(DEMO / "goals.yaml", segments)
    assert [g.name for g in config.goals] == ["sell concert tickets", "prevent uninstalls", "premium upsell"]
    concert = config.by_name["sell concert tickets"]
    assert concert.window_start == datetime(2026, 6, 1)
    assert concert.window_end == datetime(2026, 7, 1)
    assert concert.length_days == 30
    assert concert.frozen_as_of == date(2026, 5, 31)
    assert concert.events[0].describe() == "charged {category: concert}"
    assert config.by_name["premium upsell"].lookback_days == 90  # the default
    assert config.by_name["premium upsell"].precision_level is None


@pytest.mark.parametrize(
    ("day", "active", "ended", "left"),
    [
        (date(2026, 5, 31), False, False, 30),
        (date(2026, 6, 1), True, False, 29),
        (date(2026, 6, 29), True, False, 1),
        (date(2026, 6, 30), True, False, 0),
        (date(2026, 7, 1), False, True, 0),
    ],
)
def test_window_helpers(day, active, ended, left):
    g = load_goals_text(doc(goal()), SEGMENTS).goals[0]
    assert (g.is_active(day), g.has_ended(day), g.days_left_after(day)) == (active, ended, left)


def test_missing_file_means_no_goals(tmp_path):
    config = load_goals(tmp_path / "goals.yaml", SEGMENTS)
    assert config.goals == [] and config.max_active_goals == 5


def test_defaults_and_all_users():
    g = load_goals_text(doc(goal(segment="All Users", precisionLevel="0.8")), SEGMENTS).goals[0]
    assert (g.control_group_percent, g.lookback_days, g.precision_level, g.retrain_every_days) == (5.0, 90, 0.8, 14)


@pytest.mark.parametrize(
    ("overrides", "rule", "fragments"),
    [
        ({"segment": "Users in San Fransisco"}, RULE_SEGMENT, ["not defined", "did you mean 'Users in San Francisco'"]),
        ({"segment": "app launched now"}, RULE_SEGMENT, ["live segment", "past segment or All Users"]),
        ({"endDate": "2026-05-31"}, RULE_DATES, ["endDate 2026-05-31 is before createdOn 2026-06-01"]),
        ({"createdOn": "2026-13-01"}, RULE_DATES, ["YYYY-MM-DD", "2026-13-01"]),
        ({"events": "[]"}, RULE_EVENTS, ["found no events", "Fix:"]),
        ({"events": None}, RULE_EVENTS, ["events: is required"]),
        ({"controlGroupPercent": "0"}, RULE_CONTROL, ["found 0", "above 0 and at most 50"]),
        ({"controlGroupPercent": "60"}, RULE_CONTROL, ["found 60"]),
        ({"lookbackDays": "0"}, RULE_LOOKBACK, ["found 0", "at least 1"]),
        ({"precisionLevel": "1.5"}, RULE_PRECISION, ["found 1.5"]),
        ({"retrainEveryDays": "0"}, RULE_RETRAIN, ["found 0", "at least 1"]),
        ({"retrainEveryDays": "2.5"}, RULE_RETRAIN, ["retrainEveryDays"]),
        ({"objective": "maximise"}, RULE_OBJECTIVE, ["objective", "maximise"]),
        ({"lookbakDays": "30"}, "known keys", ["unknown key 'lookbakDays'", "did you mean 'lookbackDays'"]),
        (
            {"events": "[{eventType: charged, eventProperty: {a: 1}}]"},
            "known keys",
            ["unknown key 'eventProperty'", "did you mean 'eventProperties'"],
        ),
    ],
)
def test_each_rule_names_file_goal_line_and_fix(overrides, rule, fragments):
    text = doc(goal("the goal", **overrides))
    found = [p for p in problems(text) if p.rule == rule]
    assert found, problems(text)
    problem = found[0]
    assert problem.file == "goals.yaml" and problem.item == "goal 'the goal'"
    key = next(iter(overrides))
    if overrides[key] is not None:  # a given key: the problem points at its line
        assert text.splitlines()[problem.line - 1].lstrip(" -").startswith(key)
    for fragment in fragments:
        assert fragment in str(problem)


def test_duplicate_names():
    text = doc(goal("twice"), goal("twice", createdOn="2026-08-01", endDate="2026-08-02"))
    (problem,) = problems(text)
    assert problem.rule == RULE_NAMES and problem.line == text.splitlines().index("  - goalName: twice", 4) + 1


def test_too_many_active_goals_names_the_day_and_the_goals():
    text = doc(
        goal("a", createdOn="2026-06-01", endDate="2026-06-30"),
        goal("b", createdOn="2026-06-10", endDate="2026-06-20"),
        goal("c", createdOn="2026-06-15", endDate="2026-07-15"),
        goal("d", createdOn="2026-07-01", endDate="2026-07-05"),  # a and b are over by then
        header="kind: goals\nmaxActiveGoals: 2\n",
    )
    (problem,) = problems(text)
    assert problem.rule == RULE_ACTIVE and problem.item == "goal 'c'"
    assert "on 2026-06-15 3 goals are active ('a', 'b', 'c'), more than maxActiveGoals 2" in problem.message


def test_goals_that_only_touch_end_to_start_are_fine():
    text = doc(
        goal("a", createdOn="2026-06-01", endDate="2026-06-30"),
        goal("b", createdOn="2026-07-01", endDate="2026-07-30"),
        header="kind: goals\nmaxActiveGoals: 1\n",
    )
    assert len(load_goals_text(text, SEGMENTS).goals) == 2


@pytest.mark.parametrize("value", ["0", "two", "true"])
def test_max_active_goals_must_be_a_positive_whole_number(value):
    (problem,) = problems(doc(goal(), header=f"kind: goals\nmaxActiveGoals: {value}\n"))
    assert problem.rule == RULE_ACTIVE and problem.line == 2


def test_unknown_top_level_key_suggests_the_closest():
    (problem,) = problems(doc(goal(), header="kind: goals\nmaxActiveGoal: 5\n"))
    assert "did you mean 'maxActiveGoals'" in problem.message and problem.line == 2


def test_every_problem_is_reported_at_once():
    text = doc(
        goal("x", segment="nope", lookbackDays="0"),
        goal("y", endDate="2026-01-01", controlGroupPercent="75"),
    )
    rules = sorted(p.rule for p in problems(text))
    assert rules == sorted([RULE_SEGMENT, RULE_LOOKBACK, RULE_DATES, RULE_CONTROL])
    message = str(ConfigError(problems(text)))
    assert "4 configuration problems" in message and "goals.yaml:" in message
