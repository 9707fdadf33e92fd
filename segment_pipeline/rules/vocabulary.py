"""Warnings for names in segment definitions that the data never uses.

A misspelt event type, property key or profile property is valid config but silently
matches nobody; these warnings name it and suggest the closest name in the snapshot.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import duckdb

from segment_pipeline.config.segments import SegmentDefinition
from segment_pipeline.ingest import state
from segment_pipeline.rules.compiler import (
    EVENTS,
    PROFILES,
    profile_value_kind,
    read_profile_columns,
)


@dataclass(frozen=True)
class VocabularyWarning:
    segment: str
    message: str

    def __str__(self) -> str:
        return f"segment '{self.segment}': {self.message}"


@dataclass(frozen=True)
class Vocabulary:
    """What the warehouse holds: event types, property keys per event type, profile columns."""

    event_types: frozenset[str]
    property_keys: dict[str, frozenset[str]]
    profile_columns: dict[str, str] | None


def read_vocabulary(
    con: duckdb.DuckDBPyConnection,
    segments: Sequence[SegmentDefinition],
    *,
    events: str = EVENTS,
    profiles: str = PROFILES,
) -> Vocabulary:
    """Event types in the snapshot, and the property keys of the types segments filter on.

    The snapshot's are read from ``pipeline_state.vocabulary`` (kept by each load), not the history.
    """
    filtered = sorted({s.event_type for seg in segments for s in seg.steps if s.event_properties})
    if events == EVENTS and (summary := state.event_types_and_keys(con, filtered)) is not None:
        return Vocabulary(summary[0], summary[1], read_profile_columns(con, profiles))
    event_types = frozenset(r[0] for r in con.execute(f"SELECT DISTINCT event_name FROM {events}").fetchall())
    keys: dict[str, set[str]] = {t: set() for t in filtered}
    if filtered:
        rows = con.execute(
            f"""SELECT DISTINCT event_name, unnest(json_keys(properties)) FROM {events}
                WHERE event_name IN (SELECT unnest(CAST(? AS VARCHAR[])))""",
            [filtered],
        ).fetchall()
        for event_type, key in rows:
            keys[event_type].add(key)
    return Vocabulary(event_types, {t: frozenset(k) for t, k in keys.items()}, read_profile_columns(con, profiles))


def _closest(name: str, known: Iterable[str]) -> str:
    same_but_case = [k for k in sorted(known) if k.casefold() == name.casefold()]
    close = same_but_case or difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def vocabulary_warnings(segments: Sequence[SegmentDefinition], vocabulary: Vocabulary) -> list[VocabularyWarning]:
    """One warning per event type, property key or profile property that nothing in the data has."""
    warnings: list[VocabularyWarning] = []
    for segment in segments:

        def warn(message: str, segment: SegmentDefinition = segment) -> None:
            warnings.append(VocabularyWarning(segment.name, message))

        for step in segment.steps:
            known_types = vocabulary.event_types
            if known_types and step.event_type not in known_types:
                warn(
                    f"event type '{step.event_type}' never occurs in the snapshot"
                    f"{_closest(step.event_type, known_types)}"
                )
                continue
            seen = vocabulary.property_keys.get(step.event_type)
            if seen is None:
                continue
            for key in step.event_properties or {}:
                if key not in seen:
                    warn(f"property '{key}' never occurs on '{step.event_type}' events{_closest(key, seen)}")
        if not segment.is_past or not segment.profile_equalities:
            continue
        columns = vocabulary.profile_columns
        if columns is None:
            warn("there is no profiles table, so its profile equalities match nobody")
            continue
        for name, value in segment.profile_equalities:
            if name not in columns:
                warn(
                    f"profile property '{name}' is not a profile column, so it matches nobody{_closest(name, columns)}"
                )
            elif profile_value_kind(columns[name], value) is None:
                warn(
                    f"profile property '{name}' is {columns[name]} but is compared with {value!r} "
                    f"({type(value).__name__}), so it matches nobody"
                )
    return warnings
