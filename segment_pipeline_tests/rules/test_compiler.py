"""The past-segment compiler on hand-picked edge cases, each checked against the reference too."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta

import duckdb
import pytest

from segment_pipeline.config.segments import (
    ALL_USERS,
    SegmentDefinition,
    segment_problems,
)
from segment_pipeline.rules.compiler import (
    compile_past_segments,
    evaluate_past_segments,
)
from segment_pipeline.rules.vocabulary import read_vocabulary, vocabulary_warnings
from segment_pipeline.storage.connections import open_duckdb
from segment_pipeline_tests.rules.reference import reference_memberships

D = date(2026, 1, 10)
END = datetime(2026, 1, 11)  # D+1 00:00
TICK = timedelta(microseconds=1)
HOSTILE = "x'); DROP TABLE analytics.event_snapshots; --"


def step(event_type: str, *, inaction: bool = False, props: dict | None = None, min_count: int = 1) -> dict:
    return {
        "eventType": event_type,
        "expTimeframe": 0,
        "actionInaction": "inaction" if inaction else "action",
        "eventProperties": props,
        "minCount": min_count,
    }


def past(name: str, *steps: dict, days: int = 1, profile: dict | None = None) -> SegmentDefinition:
    """A valid past segment; the subtype follows from the steps and the profile equalities."""
    has_inaction = any(s["actionInaction"] == "inaction" for s in steps)
    raw = {
        "segmentName": name,
        "segmentType": "past",
        "segmentSubtype": (3 if profile else 1) + has_inaction,
        "segmentTimeframe": days,
        "eventSequence": list(steps),
    }
    if profile:
        (first, value), *rest = profile.items()
        raw |= {"profilePropertyName": first, "profilePropertyValue": value, "profileProperties": dict(rest)}
    segment = SegmentDefinition.model_validate(raw)
    assert segment_problems(segment) == []
    return segment


@pytest.fixture
def db():
    con = open_duckdb()
    con.execute("SET TimeZone = 'UTC'")
    con.execute("CREATE SCHEMA analytics")
    con.execute(
        "CREATE TABLE analytics.event_snapshots (event_id VARCHAR, user_id VARCHAR, event_name VARCHAR,"
        " ts TIMESTAMP, properties JSON, snapshot_date DATE)"
    )
    con.execute(
        "CREATE TABLE analytics.profiles (user_id VARCHAR, city VARCHAR, age BIGINT, score DOUBLE,"
        ' vip BOOLEAN, signup DATE, "ci""ty" VARCHAR)'
    )
    yield con
    con.close()


class World:
    """Events and profiles written to DuckDB and kept as dicts for the reference."""

    def __init__(self, con: duckdb.DuckDBPyConnection):
        self.con, self.events, self.profiles = con, [], []

    def event(self, user: str, name: str, ts: datetime, **props) -> World:
        row = {"user_id": user, "event_name": name, "ts": ts, "properties": json.dumps(props)}
        self.events.append(row)
        self.con.execute(
            "INSERT INTO analytics.event_snapshots VALUES (?, ?, ?, ?, ?, ?)",
            [f"e{len(self.events)}", user, name, ts, row["properties"], ts.date()],
        )
        return self

    def raw_event(self, user: str, name: str, ts: datetime, properties: str) -> World:
        self.events.append({"user_id": user, "event_name": name, "ts": ts, "properties": properties})
        self.con.execute(
            "INSERT INTO analytics.event_snapshots VALUES (?, ?, ?, ?, ?, ?)",
            [f"e{len(self.events)}", user, name, ts, properties, ts.date()],
        )
        return self

    def profile(self, user: str, **values) -> World:
        row = {"user_id": user, "city": None, "age": None, "score": None, "vip": None, "signup": None, 'ci"ty': None}
        row |= {k.replace("_quote_", '"'): v for k, v in values.items()}
        self.profiles.append(row)
        self.con.execute("INSERT INTO analytics.profiles VALUES (?, ?, ?, ?, ?, ?, ?)", list(row.values()))
        return self

    def members(self, *segments: SegmentDefinition, all_users: bool = False) -> dict[str, set[str]]:
        got = evaluate_past_segments(self.con, list(segments), D, include_all_users=all_users)
        expected = reference_memberships(list(segments), self.events, self.profiles, D, include_all_users=all_users)
        assert got == expected
        result = {s.name: set() for s in segments}
        for name, user in got:
            result.setdefault(name, set()).add(user)
        return result


@pytest.fixture
def world(db) -> World:
    return World(db)


def test_window_is_half_open_at_the_start_of_d_plus_one(world):
    start = END - timedelta(days=1)
    world.event("first_instant", "a", start).event("last_instant", "a", END - TICK)
    world.event("next_day", "a", END).event("before", "a", start - TICK)
    assert world.members(past("a", step("a")))["a"] == {"first_instant", "last_instant"}


def test_longer_timeframe_reaches_back_whole_days(world):
    world.event("u1", "a", END - timedelta(days=30)).event("u2", "a", END - timedelta(days=30) - TICK)
    assert world.members(past("a30", step("a"), days=30))["a30"] == {"u1"}


def test_inaction_counts_anywhere_in_the_window_and_only_there(world):
    start = END - timedelta(days=1)
    world.event("before_window", "a", start + timedelta(hours=5)).event("before_window", "b", start - TICK)
    world.event("after_as_of", "a", start + timedelta(hours=5)).event("after_as_of", "b", END)
    world.event("early_in_window", "a", start + timedelta(hours=5)).event("early_in_window", "b", start)
    world.event("after_action", "a", start + timedelta(hours=5)).event("after_action", "b", END - TICK)
    got = world.members(past("a not b", step("a"), step("b", inaction=True)))
    assert got["a not b"] == {"before_window", "after_as_of"}


def test_ties_between_steps_count_as_in_order(world):
    t = END - timedelta(hours=3)
    world.event("tie", "a", t).event("tie", "b", t)
    world.event("reversed", "b", t).event("reversed", "a", t + TICK)
    world.event("ordered", "a", t).event("ordered", "b", t + TICK)
    assert world.members(past("a then b", step("a"), step("b")))["a then b"] == {"tie", "ordered"}


def test_greedy_earliest_match_and_min_count_after_previous_step(world):
    t = END - timedelta(hours=10)
    h = timedelta(hours=1)
    # a, b, a: the earliest a is taken, so b after it counts.
    world.event("greedy", "a", t).event("greedy", "b", t + h).event("greedy", "a", t + 2 * h)
    # two b but only one at or after the a.
    world.event("one_after", "b", t).event("one_after", "a", t + h).event("one_after", "b", t + 2 * h)
    # two b at or after the a, one of them tied with it.
    world.event("two_after", "a", t).event("two_after", "b", t).event("two_after", "b", t + 2 * h)
    got = world.members(past("a then 2b", step("a"), step("b", min_count=2)), past("a then b", step("a"), step("b")))
    assert got["a then 2b"] == {"two_after"}
    assert got["a then b"] == {"greedy", "one_after", "two_after"}


def test_min_count_on_the_first_step_moves_its_time_to_the_nth_match(world):
    t = END - timedelta(hours=10)
    h = timedelta(hours=1)
    world.event("late_b", "a", t).event("late_b", "b", t + h).event("late_b", "a", t + 2 * h).event(
        "late_b", "b", t + 3 * h
    )
    world.event("early_b", "a", t).event("early_b", "b", t + h).event("early_b", "a", t + 2 * h)
    assert world.members(past("2a then b", step("a", min_count=2), step("b")))["2a then b"] == {"late_b"}


def test_min_count_counts_only_window_events(world):
    t = END - timedelta(hours=1)
    for user, n in (("two", 2), ("three", 3)):
        for i in range(n):
            world.event(user, "a", t - i * TICK)
    world.event("two", "a", END - timedelta(days=1) - TICK)
    assert world.members(past("3a", step("a", min_count=3)))["3a"] == {"three"}


@pytest.mark.parametrize(
    ("stored", "wanted", "match"),
    [
        ('{"n": 1}', 1, True),
        ('{"n": 1.0}', 1, True),
        ('{"n": 1}', 1.0, True),
        ('{"n": 1.5}', 1.5, True),
        ('{"n": 1.5}', 1, False),
        ('{"n": "1"}', 1, False),
        ('{"n": 1}', "1", False),
        ('{"n": true}', True, True),
        ('{"n": true}', "true", False),
        ('{"n": "true"}', True, False),
        ('{"n": true}', 1, False),
        ('{"n": 1}', True, False),
        ('{"n": false}', 0, False),
        ('{"n": "Visa"}', "visa", False),
        ('{"n": "visa"}', "visa", True),
        ('{"n": null}', "null", False),
        ('{"n": [1]}', 1, False),
        ('{"m": 1}', 1, False),
        ('{"n": 9007199254740993}', 9007199254740993, True),
        ('{"n": 9007199254740993}', 9007199254740992, False),
        ('{"n": 18446744073709551615}', 18446744073709551615, True),
        ('{"n": 1e2}', 100, True),
        ('{"n": -0.0}', 0, True),
        ('{"n": "caf\\u00e9"}', "café", True),
        ('{"n": "a\\/b"}', "a/b", True),
        ('{"n": "two\\nlines \\"quoted\\" \\\\ \\ud83d\\ude00"}', 'two\nlines "quoted" \\ 😀', True),
        ('{"n": "two\\nlines"}', "two\\nlines", False),
    ],
)
def test_property_values_compare_by_type(world, stored, wanted, match):
    world.raw_event("u", "a", END - timedelta(hours=1), stored)
    assert world.members(past("s", step("a", props={"n": wanted})))["s"] == ({"u"} if match else set())


@pytest.mark.parametrize("key", ["a.b", "a/b", "a~b", 'a"b', "", "$.a", HOSTILE])
def test_property_keys_are_taken_literally(world, key):
    world.event("literal", "a", END - timedelta(hours=1), **{key: "v"})
    world.event("other", "a", END - timedelta(hours=1), a={"b": "v"})
    assert world.members(past("s", step("a", props={key: "v"})))["s"] == {"literal"}


def test_every_given_property_must_match(world):
    t = END - timedelta(hours=1)
    world.event("both", "a", t, x=1, y="v").event("one", "a", t, x=1, y="w").event("none", "a", t)
    got = world.members(past("xy", step("a", props={"x": 1, "y": "v"})), past("any a", step("a")))
    assert got == {"xy": {"both"}, "any a": {"both", "one", "none"}}


@pytest.mark.parametrize(
    ("column", "value", "wanted", "match"),
    [
        ("city", "San Francisco", "San Francisco", True),
        ("city", "San Francisco", "san francisco", False),
        ("city", "94103", 94103, False),
        ("age", 30, 30, True),
        ("age", 30, 30.0, True),
        ("age", 30, 30.5, False),
        ("age", 30, "30", False),
        ("score", 2.5, 2.5, True),
        ("score", 2.0, 2, True),
        ("vip", True, True, True),
        ("vip", True, "true", False),
        ("vip", True, 1, False),
        ("signup", date(2026, 1, 5), "2026-01-05", True),
        ("signup", date(2026, 1, 5), "2026-1-5", False),
        ("signup", date(2026, 1, 5), "2026-02-30", False),
        ("age", None, 30, False),
    ],
)
def test_profile_equalities_compare_by_column_type(world, column, value, wanted, match):
    world.event("u", "a", END - timedelta(hours=1)).profile("u", **{column: value})
    assert world.members(past("p", step("a"), profile={column: wanted}))["p"] == ({"u"} if match else set())


def test_user_without_profile_fails_profile_equalities(world):
    t = END - timedelta(hours=1)
    world.event("with", "a", t).event("without", "a", t).profile("with", city="Paris", age=4)
    got = world.members(
        past("paris", step("a"), profile={"city": "Paris"}),
        past("paris aged 4", step("a"), step("b", inaction=True), profile={"city": "Paris", "age": 4}),
        past("contradiction", step("a"), profile={"city": "Paris", "age": 5}),
    )
    assert got == {"paris": {"with"}, "paris aged 4": {"with"}, "contradiction": set()}


def test_unknown_profile_column_matches_nobody_and_is_warned_about(world):
    world.event("u", "a", END - timedelta(hours=1)).profile("u", city="Paris")
    segment = past("typo", step("a"), profile={"City": "Paris"})
    assert world.members(segment)["typo"] == set()
    warnings = [str(w) for w in vocabulary_warnings([segment], read_vocabulary(world.con, [segment]))]
    assert warnings == [
        "segment 'typo': profile property 'City' is not a profile column, so it matches nobody; did you mean 'city'?"
    ]


def test_vocabulary_suggests_known_event_types_and_property_keys(world):
    world.event("u", "charged", END - timedelta(hours=1), payment_method="visa")
    segments = [
        past("s1", step("chargd")),
        past("s2", step("charged", props={"paymentmethod": "visa"})),
        past("s3", step("charged"), profile={"age": "30"}),
    ]
    warnings = [str(w) for w in vocabulary_warnings(segments, read_vocabulary(world.con, segments))]
    assert warnings == [
        "segment 's1': event type 'chargd' never occurs in the snapshot; did you mean 'charged'?",
        "segment 's2': property 'paymentmethod' never occurs on 'charged' events; did you mean 'payment_method'?",
        "segment 's3': profile property 'age' is BIGINT but is compared with '30' (str), so it matches nobody",
    ]


def test_all_users_is_everyone_with_an_event_as_of_d_or_a_profile(world):
    world.event("old", "z", END - timedelta(days=400)).event("future", "z", END).event("today", "a", END - TICK)
    world.profile("profile_only", city="Paris")
    got = world.members(past("a", step("a")), all_users=True)
    assert got[ALL_USERS] == {"old", "today", "profile_only"}
    assert got["a"] == {"today"}


def test_without_a_profiles_table_profile_segments_are_empty(world):
    world.con.execute("DROP TABLE analytics.profiles")
    world.event("u", "a", END - TICK)
    segments = [past("p", step("a"), profile={"city": "Paris"}), past("a", step("a"))]
    got = evaluate_past_segments(world.con, segments, D, include_all_users=True)
    assert got == [(ALL_USERS, "u"), ("a", "u")]


def test_sql_looking_names_and_values_are_inert(world):
    t = END - timedelta(hours=1)
    world.event("u'; --", HOSTILE, t, **{HOSTILE: HOSTILE}).profile("u'; --", city=HOSTILE, ci_quote_ty=HOSTILE)
    segment = past(HOSTILE, step(HOSTILE, props={HOSTILE: HOSTILE}), profile={"city": HOSTILE, 'ci"ty': HOSTILE})
    query = compile_past_segments([segment], as_of=D, profile_columns={"city": "VARCHAR", 'ci"ty': "VARCHAR"})
    assert HOSTILE not in query.sql and "DROP" not in query.sql
    assert world.members(segment) == {HOSTILE: {"u'; --"}}
    assert world.con.execute("SELECT count(*) FROM analytics.event_snapshots").fetchone() == (1,)


def test_no_segments_and_no_all_users_is_an_empty_result(world):
    world.event("u", "a", END - TICK)
    assert evaluate_past_segments(world.con, [], D) == []
    assert evaluate_past_segments(world.con, [], D, include_all_users=True) == [(ALL_USERS, "u")]


def test_live_segments_are_refused():
    live = SegmentDefinition.model_validate(
        {"segmentName": "now", "segmentType": "live", "segmentSubtype": 1, "eventSequence": [step("a")]}
    )
    with pytest.raises(ValueError, match="live: now"):
        compile_past_segments([live], as_of=D)
