"""Which features a goal model reads, fixed at training and reused at scoring.

A ``FeatureSpec`` names every column and says how it is computed: the event types
counted, the past segments flagged (their definitions, as trained), the profile
columns and their categories. Scoring with the training spec gives the same columns in
the same order whatever the config or the data became since; it is plain JSON, so it
can be stored with the model.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import date
from typing import Any

import polars as pl

from segment_pipeline.config.goals import GoalEvent
from segment_pipeline.config.segments import SegmentDefinition
from segment_pipeline.rules.compiler import NUMERIC_TYPES

# Profile column kinds by DuckDB type: numbers and booleans as they are, dates as days
# before the anchor, short text lists one-hot; anything else (lists, JSON...) is skipped.
_NUMERIC = NUMERIC_TYPES
_TEMPORAL = {"DATE", "TIMESTAMP", "TIMESTAMP_NS", "TIMESTAMP_MS", "TIMESTAMP_S", "TIMESTAMP WITH TIME ZONE"}

ID_COLUMNS = ("anchor", "user_id")
LABEL = "label"
HORIZON = "horizon_days"


def profile_kind(column_type: str) -> str | None:
    base = column_type.upper().split("(")[0].strip()
    if base in _NUMERIC:
        return "number"
    if base == "BOOLEAN":
        return "boolean"
    if base in _TEMPORAL:
        return "days_before"
    if base == "VARCHAR":
        return "category"
    return None


@dataclass(frozen=True)
class ProfileFeature:
    """One profile column and the feature columns it becomes (one per category for text)."""

    column: str
    kind: str  # number | boolean | days_before | category
    names: list[str]
    categories: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class FeatureSpec:
    goal_name: str
    goal_events: list[dict[str, Any]]  # GoalEvent, by alias
    lookback_days: int
    windows: list[int]  # days; counts per event type and of goal events over each
    event_types: list[str]
    event_type_names: list[list[str]]  # [type][window] -> column
    segments: list[dict[str, Any]]  # past SegmentDefinition, by alias, as trained
    segment_names: list[str]  # column per segment
    profile: list[ProfileFeature]
    feature_columns: list[str]
    # Lifetime features (all history before the anchor); empty in specs stored before they existed.
    lifetime_names: list[str] = field(default_factory=list)
    value_properties: list[str] = field(default_factory=list)  # numeric properties of the goal events

    # The goal events and segments as config objects, built once with the spec (not stored).
    goal_event_models: list[GoalEvent] = field(init=False, repr=False, compare=False)
    segment_models: list[SegmentDefinition] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "goal_event_models", [GoalEvent.model_validate(e) for e in self.goal_events])
        segments = [SegmentDefinition.model_validate(s, strict=False) for s in self.segments]
        object.__setattr__(self, "segment_models", segments)

    def to_json(self) -> str:
        stored = {f.name: getattr(self, f.name) for f in fields(self) if f.init}
        stored["profile"] = [asdict(p) for p in self.profile]
        return json.dumps(stored, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> FeatureSpec:
        data = json.loads(text)
        data["profile"] = [ProfileFeature(**p) for p in data["profile"]]
        return cls(**data)


@dataclass(frozen=True)
class TrainingSet:
    """Samples of one goal: a row per (anchor, user, horizon), its features and its label.

    ``frame`` columns: ``anchor``, ``user_id``, ``label`` (0/1: a goal event in
    ``[anchor, anchor + horizon_days)``) and the ``feature_columns`` (``horizon_days``
    first). ``anchor_stats``: per anchor, the population and achievers over the full
    goal length, which ``history_problem`` judges.
    """

    frame: pl.DataFrame
    feature_columns: list[str]
    spec: FeatureSpec
    anchors: list[date]
    horizons: list[int]
    anchor_stats: pl.DataFrame  # anchor, population, achievers
    metadata: dict[str, Any] = field(default_factory=dict)


def window_names(lookback_days: int) -> list[int]:
    """7 and 30 days when shorter than the lookback, and the lookback itself."""
    return sorted({w for w in (7, 30) if w < lookback_days} | {lookback_days})


_UNSAFE = re.compile(r"[^0-9A-Za-z_.=:+-]+")


class _Names:
    """Unique column names that xgboost accepts (no ``[``, ``]``, ``<``, commas or spaces)."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    def __call__(self, text: str) -> str:
        name = _UNSAFE.sub("_", text)
        candidate, k = name, 2
        while candidate in self.used:
            candidate, k = f"{name}~{k}", k + 1
        self.used.add(candidate)
        return candidate


BASE_FEATURES = [
    "days_since_last_event",
    "events_{L}d",
    "active_days_{L}d",
    "mean_gap_days",
    "median_gap_days",
    "tenure_days",
]


def base_names(lookback_days: int) -> list[str]:
    return [name.replace("{L}", str(lookback_days)) for name in BASE_FEATURES]


def goal_names(windows: list[int]) -> list[str]:
    return [f"goal_events_{w}d" for w in windows] + ["days_since_goal_event"]


# All history before the anchor: what carries the signal when purchases are sparse. The
# ``bgnbd_*`` triple is the goal events' (x, t_x, T) in days, the BG/NBD baseline's input.
BGNBD_X, BGNBD_T_X, BGNBD_T = "bgnbd_x", "bgnbd_t_x", "bgnbd_T"
LIFETIME_FEATURES = [
    "life_events",
    "life_active_days",
    "life_days_since_last_event",
    "all_x",
    "all_t_x",
    "all_T",
    "goal_life_events",
    "goal_life_days",
    "goal_days_since_first",
    "goal_days_since_last_life",
    BGNBD_X,
    BGNBD_T_X,
    BGNBD_T,
    "goal_mean_gap_days",
    "goal_recency_ratio",
]
VALUE_STATS = ("sum", "mean", "last")


def value_names(properties: list[str]) -> list[str]:
    return [f"goal_value_{stat}:{p}" for p in properties for stat in VALUE_STATS]


def make_spec(
    goal_name: str,
    goal_events: list[GoalEvent],
    lookback_days: int,
    event_types: list[str],
    segments: list[SegmentDefinition],
    profile: list[tuple[str, str, list[str]]],
    value_properties: Sequence[str] = (),
) -> FeatureSpec:
    """Name every column; ``profile`` is ``(column, kind, categories)`` per profile column used."""
    windows = window_names(lookback_days)
    names = _Names()
    fixed = [names(n) for n in [HORIZON, *base_names(lookback_days), *goal_names(windows)]]
    lifetime = [names(n) for n in [*LIFETIME_FEATURES, *value_names(list(value_properties))]]
    type_names = [[names(f"events_{w}d:{t}") for w in windows] for t in event_types]
    segment_names = [names(f"segment:{s.name}") for s in segments]
    profile_features = []
    for column, kind, categories in profile:
        if kind == "category":
            cols = [names(f"profile:{column}={c}") for c in categories]
        else:
            cols = [names(f"profile:{column}" + ("_days" if kind == "days_before" else ""))]
        profile_features.append(ProfileFeature(column, kind, cols, list(categories)))
    columns = fixed + lifetime + [n for row in type_names for n in row] + segment_names
    columns += [n for p in profile_features for n in p.names]
    return FeatureSpec(
        goal_name=goal_name,
        goal_events=[e.model_dump(mode="json", by_alias=True) for e in goal_events],
        lookback_days=lookback_days,
        windows=windows,
        event_types=list(event_types),
        event_type_names=type_names,
        segments=[s.model_dump(mode="json", by_alias=True) for s in segments],
        segment_names=segment_names,
        profile=profile_features,
        feature_columns=columns,
        lifetime_names=lifetime,
        value_properties=list(value_properties),
    )
