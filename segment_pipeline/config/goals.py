"""Goals (``goals.yaml``, contract section 6): a target segment, a window and the events that achieve it.

Checked against the segments: every problem of the file is collected and raised together
in one ``ConfigError`` before the pipeline writes anything.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from segment_pipeline.config.errors import ConfigError
from segment_pipeline.config.segments import ALL_USERS, EventValue, SegmentConfig
from segment_pipeline.config.yaml_lines import ConfigReader

DEFAULT_MAX_ACTIVE_GOALS = 5
MAX_CONTROL_PERCENT = 50

RULE_SEGMENT = "rule segment (a past segment defined in segments.yaml, or All Users)"
RULE_DATES = "rule dates (createdOn and endDate are dates YYYY-MM-DD, endDate not before createdOn)"
RULE_EVENTS = "rule events (at least one event, each with an eventType)"
RULE_ACTIVE = "rule maxActiveGoals (no more goals active on one day than maxActiveGoals)"
RULE_CONTROL = f"rule controlGroupPercent (above 0 and at most {MAX_CONTROL_PERCENT})"
RULE_LOOKBACK = "rule lookbackDays (a whole number of days, at least 1)"
RULE_RETRAIN = "rule retrainEveryDays (extension: a whole number of days, at least 1)"
RULE_VALUE = "rule valueProperty (extension: the name of a numeric property of the goal's events)"
RULE_PRECISION = "rule precisionLevel (extension: a share strictly between 0 and 1)"
RULE_OBJECTIVE = "rule objective (maximize or minimize)"
RULE_NAMES = "rule names (goal names are unique)"

_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _as_date(value: Any) -> Any:
    """YAML dates stay text (config/yaml_lines.py); a goal's dates are read here."""
    if type(value) is date:
        return value
    if isinstance(value, str) and _ISO_DATE.fullmatch(value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise ValueError("must be a date written YYYY-MM-DD")


class GoalEvent(BaseModel):
    """An event that achieves the goal: its type, and property equalities as in segments."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, populate_by_name=True)

    event_type: str = Field(alias="eventType", min_length=1)
    event_properties: dict[str, EventValue] | None = Field(None, alias="eventProperties")

    def describe(self) -> str:
        """``charged {category: concert}``: how messages name the event."""
        if not self.event_properties:
            return self.event_type
        pairs = ", ".join(
            f"{key}: {str(value).lower() if type(value) is bool else value}"
            for key, value in self.event_properties.items()
        )
        return f"{self.event_type} {{{pairs}}}"


class GoalDefinition(BaseModel):
    """One goal as written in ``goals.yaml``; ``load_goals`` checks it against the segments."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, populate_by_name=True)

    name: str = Field(alias="goalName", min_length=1)
    segment: str = Field(min_length=1)
    created_on: date = Field(alias="createdOn")
    end_date: date = Field(alias="endDate")
    objective: Literal["maximize", "minimize"]
    events: list[GoalEvent]
    control_group_percent: float = Field(5.0, alias="controlGroupPercent")
    lookback_days: int = Field(90, alias="lookbackDays")
    precision_level: float | None = Field(None, alias="precisionLevel")
    retrain_every_days: int = Field(14, alias="retrainEveryDays")
    # A numeric property of the goal events whose sum the goal also predicts and tracks.
    # Whether the history holds it is known only with the data: a goal status, not a load error.
    value_property: str | None = Field(None, alias="valueProperty", min_length=1)

    @field_validator("created_on", "end_date", mode="before")
    @classmethod
    def _dates(cls, value: Any) -> Any:
        return _as_date(value)

    @property
    def window_start(self) -> datetime:
        """createdOn 00:00 UTC: the first instant of the goal window."""
        return datetime.combine(self.created_on, time())

    @property
    def window_end(self) -> datetime:
        """endDate+1 00:00 UTC: the window is ``[window_start, window_end)``."""
        return datetime.combine(self.end_date + timedelta(days=1), time())

    @property
    def length_days(self) -> int:
        return (self.end_date - self.created_on).days + 1

    @property
    def frozen_as_of(self) -> date:
        """The day whose segment members form the target group: the day before createdOn."""
        return self.created_on - timedelta(days=1)

    def is_active(self, day: date) -> bool:
        return self.created_on <= day <= self.end_date

    def has_ended(self, day: date) -> bool:
        return day > self.end_date

    def days_left_after(self, day: date) -> int:
        """Whole days of the window after ``day`` (the window length before it starts, 0 once ended)."""
        return max(0, min(self.length_days, (self.end_date - day).days))

    def describe_events(self) -> str:
        return " or ".join(f"'{event.describe()}'" for event in self.events)


@dataclass(frozen=True)
class GoalConfig:
    max_active_goals: int
    goals: list[GoalDefinition]

    @cached_property
    def by_name(self) -> dict[str, GoalDefinition]:
        return {goal.name: goal for goal in self.goals}


GOAL_KEYS = [f.alias or name for name, f in GoalDefinition.model_fields.items()]
EVENT_KEYS = [f.alias or name for name, f in GoalEvent.model_fields.items()]
TOP_KEYS = ["kind", "maxActiveGoals", "goals"]


def load_goals(path: Path, segments: SegmentConfig) -> GoalConfig:
    """Read and check ``goals.yaml`` against the segments; a missing file means no goals."""
    path = Path(path)
    if not path.exists():
        return GoalConfig(DEFAULT_MAX_ACTIVE_GOALS, [])
    return load_goals_text(path.read_text(encoding="utf-8"), segments, str(path))


def load_goals_text(text: str, segments: SegmentConfig, source_name: str = "goals.yaml") -> GoalConfig:
    """Parse and check goals; raises ``ConfigError`` listing every problem."""
    reader = ConfigReader(text, source_name)
    items, max_active = _document(reader)
    goals: list[GoalDefinition] = []
    goal_paths: dict[int, tuple] = {}
    for path, item, raw in reader.entries(
        items,
        ("goals",),
        label="goal",
        name_key="goalName",
        keys=GOAL_KEYS,
        nested=("events", EVENT_KEYS),
        rule_names=RULE_NAMES,
        duplicate_fix="rename one (a goal's name is its identity: it seeds the control-group hash)",
    ):
        try:
            goal = GoalDefinition.model_validate(raw)
        except ValidationError as exc:
            reader.add_validation_error(
                exc,
                path,
                item,
                {
                    "createdOn": RULE_DATES,
                    "endDate": RULE_DATES,
                    "objective": RULE_OBJECTIVE,
                    "events": RULE_EVENTS,
                    "eventType": RULE_EVENTS,
                    "segment": RULE_SEGMENT,
                    "controlGroupPercent": RULE_CONTROL,
                    "lookbackDays": RULE_LOOKBACK,
                    "precisionLevel": RULE_PRECISION,
                    "retrainEveryDays": RULE_RETRAIN,
                    "valueProperty": RULE_VALUE,
                },
            )
            continue
        for where, rule, message in goal_problems(goal, segments):
            reader.add(path + where, item, rule, message)
        goal_paths[id(goal)] = path
        goals.append(goal)
    if max_active is not None:
        for day, goal, active in _overlaps(goals, max_active):
            names = ", ".join(f"'{g.name}'" for g in active)
            reader.add(
                goal_paths[id(goal)] + ("createdOn",),
                f"goal '{goal.name}'",
                RULE_ACTIVE,
                f"on {day.isoformat()} {len(active)} goals are active ({names}), more than maxActiveGoals "
                f"{max_active}. Fix: move a createdOn or endDate so fewer windows overlap, remove a goal, "
                "or raise maxActiveGoals",
            )
    if reader.problems:
        raise ConfigError(reader.problems)
    return GoalConfig(max_active if max_active is not None else DEFAULT_MAX_ACTIVE_GOALS, goals)


def _document(reader: ConfigReader) -> tuple[list, int | None]:
    """The goals list and maxActiveGoals (None when it is invalid), checking the top level."""
    data = reader.doc.data
    if data is None:
        return [], DEFAULT_MAX_ACTIVE_GOALS
    if not isinstance(data, dict):
        reader.add((), None, "format", "the file must be a mapping with 'kind: goals', 'maxActiveGoals' and 'goals'")
        return [], None
    data = reader.known_keys(data, TOP_KEYS, (), None)
    if data.get("kind", "goals") != "goals":
        reader.add(("kind",), None, "format", f"kind is {data['kind']!r}; this file needs 'kind: goals'")
    max_active = data.get("maxActiveGoals", DEFAULT_MAX_ACTIVE_GOALS)
    if type(max_active) is not int or max_active < 1:
        reader.add(
            ("maxActiveGoals",),
            None,
            RULE_ACTIVE,
            f"maxActiveGoals must be a whole number of at least 1, found {max_active!r}. Fix: e.g. maxActiveGoals: 5",
        )
        max_active = None
    items = data.get("goals")
    if items is None:
        return [], max_active
    if not isinstance(items, list):
        reader.add(("goals",), None, "format", "goals must be a list")
        return [], max_active
    return items, max_active


def goal_problems(goal: GoalDefinition, segments: SegmentConfig) -> list[tuple[tuple, str, str]]:
    """The rules for one parsed goal: ``(path inside the goal, rule, message)`` each."""
    found: list[tuple[tuple, str, str]] = []
    segment = segments.by_name.get(goal.segment)
    if goal.segment != ALL_USERS and (segment is None or not segment.is_past):
        if segment is not None:
            message = (
                f"'{goal.segment}' is a live segment; a target group is the members of a past segment as of "
                "the day before createdOn. Fix: use a past segment or All Users"
            )
        else:
            known = [s.name for s in segments.past] + [ALL_USERS]
            close = difflib.get_close_matches(goal.segment, known, n=1, cutoff=0.6)
            hint = f"did you mean '{close[0]}'?" if close else "define it in segments.yaml, or use All Users"
            message = f"segment '{goal.segment}' is not defined. Fix: {hint}"
        found.append((("segment",), RULE_SEGMENT, message))
    if goal.end_date < goal.created_on:
        found.append(
            (
                ("endDate",),
                RULE_DATES,
                f"endDate {goal.end_date.isoformat()} is before createdOn {goal.created_on.isoformat()}. "
                "Fix: end the goal on or after the day it is created",
            )
        )
    if not goal.events:
        found.append(
            (
                ("events",),
                RULE_EVENTS,
                "found no events. Fix: list the event(s) that achieve the goal, e.g. '- eventType: charged'",
            )
        )
    percent = goal.control_group_percent
    if not 0 < percent <= MAX_CONTROL_PERCENT:
        found.append(
            (
                ("controlGroupPercent",),
                RULE_CONTROL,
                f"found {percent:g}. Fix: give a percentage above 0 and at most {MAX_CONTROL_PERCENT}, e.g. 5",
            )
        )
    if goal.lookback_days < 1:
        found.append(
            (
                ("lookbackDays",),
                RULE_LOOKBACK,
                f"found {goal.lookback_days}. Fix: give the feature window in days, at least 1 (default 90)",
            )
        )
    if goal.retrain_every_days < 1:
        found.append(
            (
                ("retrainEveryDays",),
                RULE_RETRAIN,
                f"found {goal.retrain_every_days}. Fix: give how often a challenger model is trained, in days "
                "(at least 1; default 14)",
            )
        )
    if goal.precision_level is not None and not 0 < goal.precision_level < 1:
        found.append(
            (
                ("precisionLevel",),
                RULE_PRECISION,
                f"found {goal.precision_level:g}. Fix: give a share such as 0.8, or remove the key",
            )
        )
    return found


def _overlaps(goals: list[GoalDefinition], max_active: int) -> list[tuple[date, GoalDefinition, list[GoalDefinition]]]:
    """Each day a goal starts with more than ``max_active`` goals active (the count only rises on a start day)."""
    valid = [g for g in goals if g.created_on <= g.end_date]
    found, reported = [], set()
    for goal in sorted(valid, key=lambda g: (g.created_on, g.name)):
        day = goal.created_on
        active = sorted((g for g in valid if g.is_active(day)), key=lambda g: (g.created_on, g.name))
        key = frozenset(g.name for g in active)
        if len(active) > max_active and key not in reported:
            reported.add(key)
            found.append((day, goal, active))
    return found
