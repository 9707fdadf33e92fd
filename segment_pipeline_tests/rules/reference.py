"""The meaning of a past segment as of day D, in plain Python, straight from contract section 4.

Slow on purpose and independent of the SQL: the property tests check that the compiler
gives exactly these memberships. Events are dicts with ``user_id``, ``event_name``,
``ts`` (naive UTC datetime) and ``properties`` (JSON object text); profiles are dicts
of ``user_id`` plus typed property values (str, int, float, bool, date, None).
"""

from __future__ import annotations

import json
import re
from datetime import date, datetime, timedelta
from typing import Any

from segment_pipeline.config.segments import ALL_USERS, EventStep, SegmentDefinition

_MISSING = object()


def values_equal(actual: Any, expected: Any) -> bool:
    """Typed equality: numbers as numbers (1 == 1.0), strings exactly, booleans as booleans.

    Python says True == 1, so booleans are told apart from numbers first.
    """
    if isinstance(actual, bool) or isinstance(expected, bool):
        return isinstance(actual, bool) and isinstance(expected, bool) and actual == expected
    if isinstance(actual, (int, float)) and isinstance(expected, (int, float)):
        return actual == expected
    if isinstance(actual, str) and isinstance(expected, str):
        return actual == expected
    return False


def profile_value_equal(actual: Any, expected: Any) -> bool:
    """Like ``values_equal``; a date (timestamp) property also equals its ISO text."""
    if isinstance(actual, datetime):
        pattern = r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?"
        if not isinstance(expected, str) or not re.fullmatch(pattern, expected):
            return False
        try:
            return datetime.fromisoformat(expected) == actual
        except ValueError:
            return False
    if isinstance(actual, date):
        if isinstance(expected, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", expected):
            try:
                expected = date.fromisoformat(expected)
            except ValueError:
                return False
        return isinstance(expected, date) and not isinstance(expected, datetime) and actual == expected
    return values_equal(actual, expected)


def event_matches(event: dict, step: EventStep) -> bool:
    if event["event_name"] != step.event_type:
        return False
    properties = json.loads(event["properties"])
    for key, expected in (step.event_properties or {}).items():
        if not values_equal(properties.get(key, _MISSING), expected):
            return False
    return True


def past_segment_members(segment: SegmentDefinition, events: list[dict], profiles: list[dict], as_of: date) -> set[str]:
    end = datetime(as_of.year, as_of.month, as_of.day) + timedelta(days=1)
    start = end - timedelta(days=segment.timeframe_days)
    profile_of = {p["user_id"]: p for p in profiles}
    members = set()
    for user in {e["user_id"] for e in events}:
        in_window = sorted(
            (e for e in events if e["user_id"] == user and start <= e["ts"] < end), key=lambda e: e["ts"]
        )
        member = True
        previous_time = None
        for step in segment.actions:
            times = [
                e["ts"]
                for e in in_window
                if event_matches(e, step) and (previous_time is None or e["ts"] >= previous_time)
            ]
            if len(times) < step.min_count:
                member = False
                break
            previous_time = times[step.min_count - 1]
        inaction = segment.inaction
        if member and inaction is not None and any(event_matches(e, inaction) for e in in_window):
            member = False
        if member and segment.profile_equalities:
            profile = profile_of.get(user)
            if profile is None:
                member = False
            else:
                for name, expected in segment.profile_equalities:
                    actual = profile.get(name) if name != "user_id" else None
                    if not profile_value_equal(actual, expected):
                        member = False
        if member:
            members.add(user)
    return members


def all_users(events: list[dict], profiles: list[dict], as_of: date) -> set[str]:
    end = datetime(as_of.year, as_of.month, as_of.day) + timedelta(days=1)
    return {e["user_id"] for e in events if e["ts"] < end} | {p["user_id"] for p in profiles}


def reference_memberships(
    segments: list[SegmentDefinition],
    events: list[dict],
    profiles: list[dict],
    as_of: date,
    *,
    include_all_users: bool = False,
) -> list[tuple[str, str]]:
    """Sorted ``(segment_name, user_id)`` pairs, the same shape as the compiler's output."""
    pairs = [(s.name, u) for s in segments for u in past_segment_members(s, events, profiles, as_of)]
    if include_all_users:
        pairs += [(ALL_USERS, u) for u in all_users(events, profiles, as_of)]
    return sorted(pairs)
