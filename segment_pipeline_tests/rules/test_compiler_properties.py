"""Property test: for random events, profiles and valid definitions, SQL == the Python reference.

The alphabets are tiny on purpose: few users, event types, keys and values, and
timestamps drawn from a handful of instants at the window edges, so ties, edges,
type confusions (1 / 1.0 / "1" / true) and shared matchers come up in most examples.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta

import duckdb
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from segment_pipeline.config.segments import (
    SegmentDefinition,
    canonical_properties,
    segment_problems,
)
from segment_pipeline.rules.compiler import (
    CHUNK_SIZE,
    compile_anchored_segment_chunks,
    evaluate_past_segments,
    read_profile_columns,
)
from segment_pipeline.storage.connections import open_duckdb
from segment_pipeline_tests.hypothesis_budget import examples
from segment_pipeline_tests.rules.reference import reference_memberships

D = date(2026, 1, 10)
END = datetime(2026, 1, 11)
TICK = timedelta(microseconds=1)
USERS = ["u0", "u1", "u2"]
EVENT_TYPES = ["a", "b", "c"]
KEYS = ["k", "j"]
STEP_VALUES = [1, 1.0, 2, 2.5, "1", "x", True, "true", 'é "q"\n']
EVENT_VALUES = [*STEP_VALUES, False, None, [1], {"k": 1}]
INSTANTS = sorted(
    {
        END + offset - timedelta(days=days)
        for days in range(4)
        for offset in (-TICK, timedelta(0), TICK, timedelta(hours=1))
    }
)
PROFILE_COLUMNS = {"city": "VARCHAR", "age": "BIGINT", "score": "DOUBLE", "vip": "BOOLEAN", "signup": "DATE"}
# The first value of each list is the likely one: most profiles match, some miss by a type.
PROFILE_STORED = {
    "city": ["SF", "1", None],
    "age": [30, 31, None],
    "score": [2.5, 30.0, None],
    "vip": [True, False, None],
    "signup": [date(2026, 1, 5), None],
}
PROFILE_WANTED = {
    "city": ["SF", "sf", 1],
    "age": [30, 30.0, 30.5, "30", True],
    "score": [2.5, 30, "2.5"],
    "vip": [True, False, "true", 1],
    "signup": ["2026-01-05", "2026-01-06", "2026-1-5"],
    "no_such_column": ["SF"],
}


def likely(values: list) -> st.SearchStrategy:
    return st.sampled_from([values[0]] * 4 + values)


properties = st.dictionaries(st.sampled_from(KEYS), st.sampled_from(EVENT_VALUES), max_size=2)
profiles = st.tuples(
    *(
        st.none() | st.fixed_dictionaries({"user_id": st.just(u), **{c: likely(v) for c, v in PROFILE_STORED.items()}})
        for u in USERS
    )
).map(lambda rows: [r for r in rows if r is not None])
matchers = st.tuples(
    st.sampled_from(EVENT_TYPES),
    st.none() | st.dictionaries(st.sampled_from(KEYS), st.sampled_from(STEP_VALUES), max_size=2),
)


def confusions(value) -> list:
    """Values a careless comparison would take for ``value``; the right answer is mostly 'no'."""
    if type(value) is bool:
        return [str(value).lower(), int(value), not value]
    if type(value) in (int, float):
        return [float(value), int(value), str(value), value + 1, value == 1]
    return [value.upper(), *([int(value)] if value.isdigit() else []), "x" if value != "x" else "y"]


def near(props: dict | None) -> st.SearchStrategy[dict]:
    """Properties that match ``props`` often, and miss it by a type or a key otherwise."""
    exact = {k: st.sampled_from([v] * 20 + confusions(v)) for k, v in (props or {}).items()}
    return st.fixed_dictionaries(exact, optional={k: st.sampled_from(EVENT_VALUES) for k in KEYS if k not in exact})


def row(user: str, name: str, ts: datetime, props: dict) -> dict:
    return {"user_id": user, "event_name": name, "ts": ts, "properties": json.dumps(props)}


@st.composite
def events_for(draw, definitions) -> list[dict]:
    """Planted runs of each segment's actions (in order, near-miss properties, at edge
    instants), so members are common, plus noise of the same and other event types."""
    rows = []
    for definition in definitions:
        for user in draw(st.lists(st.sampled_from(USERS), unique=True, min_size=1, max_size=2)):
            needed = sum(step.min_count for step in definition.actions)
            start = END - timedelta(days=definition.timeframe_days)
            near_window = [t for t in INSTANTS if start - TICK <= t <= END]
            times = iter(sorted(draw(st.lists(st.sampled_from(near_window), min_size=needed, max_size=needed))))
            rows.extend(
                row(user, step.event_type, next(times), draw(near(step.event_properties)))
                for step in definition.actions
                for _ in range(step.min_count)
            )
    templates = [(step.event_type, step.event_properties) for d in definitions for step in d.steps]
    kinds = st.sampled_from(templates).flatmap(lambda t: st.tuples(st.just(t[0]), near(t[1])))
    noise = st.tuples(st.sampled_from([*EVENT_TYPES, "d"]), properties)
    rows += draw(
        st.lists(
            st.builds(
                lambda u, k, ts: row(u, k[0], ts, k[1]),
                st.sampled_from(USERS),
                kinds | noise,
                st.sampled_from(INSTANTS),
            ),
            max_size=20,
        )
    )
    return rows


@st.composite
def segments(draw, name: str) -> SegmentDefinition:
    """A valid past segment: distinct matchers, an optional final inaction, optional profile."""
    has_inaction = draw(st.booleans())
    chosen = draw(
        st.lists(
            matchers,
            min_size=1 + has_inaction,
            max_size=3 + has_inaction,
            unique_by=lambda m: (m[0], canonical_properties(m[1])),
        )
    )
    steps = [
        {
            "eventType": t,
            "expTimeframe": 0,
            "actionInaction": "action",
            "eventProperties": p,
            "minCount": draw(st.sampled_from([1, 1, 1, 2, 3])),
        }
        for t, p in chosen
    ]
    if has_inaction:
        steps[-1] = steps[-1] | {"actionInaction": "inaction", "minCount": 1}
    profile = draw(st.dictionaries(st.sampled_from(list(PROFILE_WANTED)), st.just(None), max_size=2))
    profile = {column: draw(likely(PROFILE_WANTED[column])) for column in profile}
    raw = {
        "segmentName": name,
        "segmentType": "past",
        "segmentSubtype": (3 if profile else 1) + has_inaction,
        "segmentTimeframe": draw(st.integers(1, 3)),
        "eventSequence": steps,
    }
    if profile:
        (first, value), *rest = profile.items()
        raw |= {"profilePropertyName": first, "profilePropertyValue": value, "profileProperties": dict(rest)}
    segment = SegmentDefinition.model_validate(raw)
    assert segment_problems(segment) == []
    return segment


segment_lists = st.integers(1, 3).flatmap(lambda n: st.tuples(*(segments(f"s{i}") for i in range(n))))


@pytest.fixture(scope="module")
def con():
    connection = open_duckdb()
    connection.execute("CREATE SCHEMA analytics")
    connection.execute(
        "CREATE TABLE analytics.event_snapshots (event_id VARCHAR, user_id VARCHAR,"
        " event_name VARCHAR, ts TIMESTAMP, properties JSON, snapshot_date DATE)"
    )
    columns = ", ".join(f"{c} {t}" for c, t in PROFILE_COLUMNS.items())
    connection.execute(f"CREATE TABLE analytics.profiles (user_id VARCHAR, {columns})")
    yield connection
    connection.close()


def insert(con: duckdb.DuckDBPyConnection, table: str, rows: list[list]) -> None:
    """All rows in one statement: much faster than executemany for a few dozen rows."""
    con.execute(f"DELETE FROM {table}")
    if rows:
        placeholders = ", ".join("(" + ", ".join("?" * len(r)) + ")" for r in rows)
        con.execute(f"INSERT INTO {table} VALUES {placeholders}", [v for r in rows for v in r])


def load(con: duckdb.DuckDBPyConnection, event_rows: list[dict], profile_rows: list[dict]) -> None:
    insert(
        con,
        "analytics.event_snapshots",
        [
            [f"e{i}", e["user_id"], e["event_name"], e["ts"], e["properties"], e["ts"].date()]
            for i, e in enumerate(event_rows)
        ],
    )
    insert(con, "analytics.profiles", [[p["user_id"], *(p[c] for c in PROFILE_COLUMNS)] for p in profile_rows])


def assert_same_memberships(con, definitions, event_rows, profile_rows, all_users, chunk_size=CHUNK_SIZE) -> None:
    load(con, event_rows, profile_rows)
    got = evaluate_past_segments(con, definitions, D, include_all_users=all_users, chunk_size=chunk_size)
    expected = reference_memberships(definitions, event_rows, profile_rows, D, include_all_users=all_users)
    for definition in definitions:
        members = [p for p in got if p[0] == definition.name]
        assert members == [p for p in expected if p[0] == definition.name], definition
        shape = f"{len(definition.actions)} action(s){', inaction' if definition.inaction else ''}"
        event(f"{shape}{', profile' if definition.profile_equalities else ''}: {'some' if members else 'no'} members")
    assert got == expected


@settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(definitions=segment_lists, profile_rows=profiles, all_users=st.booleans(), data=st.data())
def test_compiler_matches_reference(con, definitions, profile_rows, all_users, data):
    event_rows = data.draw(events_for(definitions), label="event_rows")
    # Small chunks too: the segments split over several queries give the same rows.
    chunk_size = data.draw(st.sampled_from([CHUNK_SIZE, 1, 2]), label="chunk_size")
    assert_same_memberships(con, list(definitions), event_rows, profile_rows, all_users, chunk_size)


@settings(max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(definitions=segment_lists, profile_rows=profiles, data=st.data())
def test_anchored_compile_matches_reference_on_each_day(con, definitions, profile_rows, data):
    """Several days in one scan (goal training's segment flags) == the reference as of each day."""
    event_rows = data.draw(events_for(definitions), label="event_rows")
    days = data.draw(
        st.lists(st.sampled_from([D - timedelta(days=k) for k in range(3)]), min_size=1, max_size=3, unique=True),
        label="days",
    )
    chunk_size = data.draw(st.sampled_from([CHUNK_SIZE, 1]), label="chunk_size")
    load(con, event_rows, profile_rows)
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _anchors AS SELECT unnest(CAST(? AS DATE[])) AS anchor",
        [[d + timedelta(days=1) for d in days]],
    )
    queries = compile_anchored_segment_chunks(
        list(definitions),
        as_of_days=days,
        anchors="_anchors",
        profile_columns=read_profile_columns(con),
        chunk_size=chunk_size,
    )
    got = sorted((a, n, u) for q in queries for n, u, a in con.execute(q.sql, q.params).fetchall())
    expected = sorted(
        (d + timedelta(days=1), n, u)
        for d in days
        for n, u in reference_memberships(list(definitions), event_rows, profile_rows, d)
    )
    assert got == expected
    event(f"{len(days)} day(s): {'some' if got else 'no'} members")


# Ordered actions with counts, on two users with many events of two kinds in a short span.
sequence_steps = st.lists(
    st.tuples(
        st.sampled_from(["a", "b"]), st.sampled_from([None, {"k": 1}, {"k": "1"}]), st.sampled_from([1, 1, 2, 3])
    ),
    min_size=2,
    max_size=4,
    unique_by=lambda s: (s[0], canonical_properties(s[1])),
)
dense_noise = st.lists(
    st.builds(
        row,
        st.sampled_from(USERS[:2]),
        st.sampled_from(["a", "b"]),
        st.sampled_from(INSTANTS[-8:]),
        st.sampled_from([{}, {"k": 1}, {"k": 1.0}, {"k": "1"}, {"k": True}]),
    ),
    max_size=30,
)


@settings(max_examples=examples(200), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(chosen=sequence_steps, days=st.integers(1, 2), noise=dense_noise, data=st.data())
def test_ordered_actions_with_counts_match_reference(con, chosen, days, noise, data):
    segment = SegmentDefinition.model_validate(
        {
            "segmentName": "seq",
            "segmentType": "past",
            "segmentSubtype": 1,
            "segmentTimeframe": days,
            "eventSequence": [
                {"eventType": t, "actionInaction": "action", "eventProperties": p, "minCount": n} for t, p, n in chosen
            ],
        }
    )
    planted = data.draw(events_for([segment]), label="planted")
    assert_same_memberships(con, [segment], planted + noise, [], False)
