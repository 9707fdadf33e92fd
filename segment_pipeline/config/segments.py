"""Segment definitions (``segments.yaml``, Octy format, contract section 4) and their 13 rules.

Every problem in the file is collected, for every segment, and raised together in one
``ConfigError`` before the pipeline writes anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationError,
    field_validator,
)

from segment_pipeline.config.errors import ConfigError
from segment_pipeline.config.yaml_lines import ConfigReader

ALL_USERS = "All Users"
MAX_EVENTS = 10
MIN_LIVE_GAP_MINUTES = 5

RULES = {
    1: "segmentType is past or live; segmentSubtype is 1..4 for past, 1..2 for live",
    2: "a live segment has segmentTimeframe 0; a past one has it >= 1",
    3: "profilePropertyName/Value are given for past subtype 3 and 4, and only there",
    4: "expTimeframe is 0 on the last event and on every event of a past segment",
    5: "expTimeframe is >= 5 on a live segment's event that has a following event",
    6: f"at most {MAX_EVENTS} events in eventSequence",
    7: "actionInaction is action or inaction",
    8: "no two events with the same eventType and the same eventProperties",
    9: "the first event is an action",
    10: "subtype 2 and 4 have exactly one inaction, and it is the last event",
    11: "subtype 1 and 3 have no inaction",
    12: "a live subtype 1 segment has exactly one event",
    13: "segment names are unique; All Users is built in and cannot be redefined",
}
MIN_COUNT_RULE = "rule minCount (extension: minCount counts matching actions; an inaction takes none)"


def rule(number: int) -> str:
    return f"rule {number} ({RULES[number]})"


def _scalar(value: Any) -> Any:
    # bool is checked by type, not isinstance: in Python True is also an int.
    if type(value) in (str, int, bool) or (type(value) is float and value == value and abs(value) != float("inf")):
        return value
    raise ValueError("must be text, a finite number or true/false")


def _profile_scalar(value: Any) -> Any:
    return value if type(value) is date else _scalar(value)


EventValue = Annotated[str | int | float | bool, PlainValidator(_scalar)]
ProfileValue = Annotated[str | int | float | bool | date, PlainValidator(_profile_scalar)]


def canonical_properties(properties: dict[str, Any] | None) -> frozenset:
    """Equal for property sets that match the same events (1 == 1.0, but True != 1, None == {})."""
    return frozenset((key, (type(value) is bool, value)) for key, value in (properties or {}).items())


class EventStep(BaseModel):
    """One event of ``eventSequence``: an action to find or an inaction to rule out."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, populate_by_name=True)

    event_type: str = Field(alias="eventType", min_length=1)
    exp_timeframe: int = Field(0, alias="expTimeframe", ge=0)
    action_inaction: Literal["action", "inaction"] = Field(alias="actionInaction")
    event_properties: dict[str, EventValue] | None = Field(None, alias="eventProperties")
    min_count: int = Field(1, alias="minCount", ge=1)

    @property
    def is_action(self) -> bool:
        return self.action_inaction == "action"

    @property
    def matcher(self) -> tuple[str, frozenset]:
        """What decides which events match this step (rule 8 forbids two equal ones)."""
        return self.event_type, canonical_properties(self.event_properties)


class SegmentDefinition(BaseModel):
    """One segment as written in ``segments.yaml``; ``load_segments`` checks the 13 rules."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, populate_by_name=True)

    name: str = Field(alias="segmentName", min_length=1)
    segment_type: Literal["past", "live"] = Field(alias="segmentType")
    subtype: int = Field(alias="segmentSubtype")
    timeframe_days: int = Field(0, alias="segmentTimeframe")
    steps: list[EventStep] = Field(alias="eventSequence")
    profile_property_name: str | None = Field(None, alias="profilePropertyName", min_length=1)
    profile_property_value: ProfileValue | None = Field(None, alias="profilePropertyValue")
    profile_properties: dict[str, ProfileValue] = Field(default_factory=dict, alias="profileProperties")

    @field_validator("profile_properties", mode="before")
    @classmethod
    def _null_is_empty(cls, value: Any) -> Any:
        return {} if value is None else value

    @property
    def is_past(self) -> bool:
        return self.segment_type == "past"

    @property
    def actions(self) -> list[EventStep]:
        return [step for step in self.steps if step.is_action]

    @property
    def inaction(self) -> EventStep | None:
        return next((step for step in self.steps if not step.is_action), None)

    @property
    def profile_equalities(self) -> list[tuple[str, Any]]:
        """Every (profile property, value) that must hold, ANDed; a pair, not a dict, so a
        key given in both places with two values is kept as the contradiction it is."""
        pairs: list[tuple[str, Any]] = list(self.profile_properties.items())
        if self.profile_property_name is not None:
            pairs.insert(0, (self.profile_property_name, self.profile_property_value))
        return pairs


@dataclass(frozen=True)
class SegmentConfig:
    segments: list[SegmentDefinition]

    @property
    def past(self) -> list[SegmentDefinition]:
        return [s for s in self.segments if s.is_past]

    @property
    def live(self) -> list[SegmentDefinition]:
        return [s for s in self.segments if not s.is_past]

    @cached_property
    def by_name(self) -> dict[str, SegmentDefinition]:
        return {s.name: s for s in self.segments}


SEGMENT_KEYS = [f.alias or name for name, f in SegmentDefinition.model_fields.items()]
STEP_KEYS = [f.alias or name for name, f in EventStep.model_fields.items()]


def load_segments(path: Path) -> SegmentConfig:
    """Read and check ``segments.yaml``; a missing file means no segments (contract section 2)."""
    path = Path(path)
    if not path.exists():
        return SegmentConfig([])
    return load_segments_text(path.read_text(encoding="utf-8"), str(path))


def load_segments_text(text: str, source_name: str = "segments.yaml") -> SegmentConfig:
    """Parse and check segment definitions; raises ``ConfigError`` listing every problem."""
    reader = ConfigReader(text, source_name)
    items, base = reader.document("segments", "segmentDefinitions")
    segments: list[SegmentDefinition] = []
    for path, item, raw in reader.entries(
        items,
        base,
        label="segment",
        name_key="segmentName",
        keys=SEGMENT_KEYS,
        nested=("eventSequence", STEP_KEYS),
        rule_names=rule(13),
        duplicate_fix="rename or merge the two",
    ):
        name = raw.get("segmentName")
        if isinstance(name, str) and name.strip().casefold() == ALL_USERS.casefold():
            reader.add(
                (*path, "segmentName"),
                item,
                rule(13),
                f"'{ALL_USERS}' is the built-in segment of every user. Fix: choose another name",
            )
        try:
            segment = SegmentDefinition.model_validate(raw)
        except ValidationError as exc:
            reader.add_validation_error(exc, path, item, {"segmentType": rule(1), "actionInaction": rule(7)})
            continue
        for step_path, rule_text, message in segment_problems(segment):
            reader.add(path + step_path, item, rule_text, message)
        segments.append(segment)
    if reader.problems:
        raise ConfigError(reader.problems)
    return SegmentConfig(segments)


def segment_problems(segment: SegmentDefinition) -> list[tuple[tuple, str, str]]:
    """Rules 1..12 for one parsed segment: ``(path inside the segment, rule, message)`` each."""
    found: list[tuple[tuple, str, str]] = []

    def add(path: tuple, number: int | str, message: str) -> None:
        found.append((path, rule(number) if isinstance(number, int) else number, message))

    past, subtype, steps = segment.is_past, segment.subtype, segment.steps
    last = len(steps) - 1
    subtypes = range(1, 5) if past else range(1, 3)
    subtype_ok = subtype in subtypes
    if not subtype_ok:
        add(("segmentSubtype",), 1, f"found {segment.segment_type} subtype {subtype}. Fix: use 1..{subtypes[-1]}")

    if not past and segment.timeframe_days != 0:
        add(("segmentTimeframe",), 2, f"found {segment.timeframe_days} on a live segment. Fix: set segmentTimeframe: 0")
    if past and segment.timeframe_days < 1:
        add(("segmentTimeframe",), 2, f"found {segment.timeframe_days}. Fix: give the window in days, at least 1")

    if subtype_ok:
        wants_profile = past and subtype in (3, 4)
        given = [
            k
            for k, v in (
                ("profilePropertyName", segment.profile_property_name),
                ("profilePropertyValue", segment.profile_property_value),
            )
            if v is not None
        ]
        if wants_profile and len(given) < 2:
            missing = sorted({"profilePropertyName", "profilePropertyValue"} - set(given))
            add((), 3, f"{' and '.join(missing)} missing. Fix: name the profile property and the value it must equal")
        if not wants_profile and (given or segment.profile_properties):
            keys = given + (["profileProperties"] if segment.profile_properties else [])
            add(
                (keys[0],),
                3,
                f"{', '.join(keys)} given on a {segment.segment_type} subtype {subtype} segment. "
                "Fix: remove them, or use past subtype 3 (or 4 with an inaction)",
            )

    for j, step in enumerate(steps):
        at = ("eventSequence", j, "expTimeframe")
        if step.exp_timeframe != 0 and (past or j == last):
            where = "the last event" if j == last else "an event of a past segment"
            add(
                at,
                4,
                f"event {j + 1} ('{step.event_type}') has expTimeframe {step.exp_timeframe} on {where}. Fix: set 0",
            )
        if not past and j < last and step.exp_timeframe < MIN_LIVE_GAP_MINUTES:
            add(
                at,
                5,
                f"event {j + 1} ('{step.event_type}') has expTimeframe {step.exp_timeframe}. "
                f"Fix: give at least {MIN_LIVE_GAP_MINUTES} minutes",
            )
        if not step.is_action and step.min_count != 1:
            add(
                ("eventSequence", j, "minCount"),
                MIN_COUNT_RULE,
                f"event {j + 1} is an inaction with minCount {step.min_count}. Fix: remove minCount",
            )

    if len(steps) > MAX_EVENTS:
        add(("eventSequence",), 6, f"found {len(steps)} events. Fix: split the segment or drop events")

    seen: dict[tuple, int] = {}
    for j, step in enumerate(steps):
        if step.matcher in seen:
            add(
                ("eventSequence", j),
                8,
                f"events {seen[step.matcher] + 1} and {j + 1} are both '{step.event_type}' "
                "with the same eventProperties. Fix: remove one, or use minCount to ask for several",
            )
        seen.setdefault(step.matcher, j)

    if not steps:
        add(("eventSequence",), 9, "found no events. Fix: start eventSequence with an action")
    elif not steps[0].is_action:
        add(("eventSequence", 0), 9, f"event 1 ('{steps[0].event_type}') is an inaction. Fix: start with an action")

    inactions = [j for j, step in enumerate(steps) if not step.is_action]
    if subtype_ok and subtype in (2, 4) and steps and (len(inactions) != 1 or inactions[0] != last):
        where = "" if len(inactions) != 1 else f" at event {inactions[0] + 1} of {len(steps)}"
        add(
            ("eventSequence",),
            10,
            f"found {len(inactions)} inaction{'s' if len(inactions) != 1 else ''}{where}. "
            "Fix: end eventSequence with exactly one actionInaction: inaction step",
        )
    if subtype_ok and subtype in (1, 3) and inactions:
        add(
            ("eventSequence", inactions[0]),
            11,
            f"found {len(inactions)} inaction(s). Fix: make them actions, or use subtype {subtype + 1}",
        )
    if not past and subtype == 1 and len(steps) != 1:
        add(("eventSequence",), 12, f"found {len(steps)} events. Fix: keep one action, or use live subtype 2")
    return found
