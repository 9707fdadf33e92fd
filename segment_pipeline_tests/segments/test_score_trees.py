"""Score trees on a real warehouse: first path wins, default catches the rest, cadence respected."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segment_pipeline.config.scores import load_scores_text
from segment_pipeline.config.segments import load_segments_text
from segment_pipeline.segments import history
from segment_pipeline.segments.score_trees import ensure_tables, is_refresh_day, replace_user_scores, store_day_labels

SEGMENTS = load_segments_text(
    """
kind: segments
segmentDefinitions:
"""
    + "".join(
        f"""
  - segmentName: {name}
    segmentType: past
    segmentSubtype: 1
    segmentTimeframe: 30
    eventSequence:
      - {{eventType: {name}, expTimeframe: 0, actionInaction: action}}
"""
        for name in ("launched", "bought", "carted")
    )
)


def tree(refresh: str):
    return load_scores_text(
        f"""
kind: scores
scoreDefinitions:
  - scoreName: tier
    refresh: {refresh}
    paths:
      - {{label: S1, segments: [launched, bought, carted]}}
      - {{label: S2, segments: [launched, bought]}}
      - {{label: S3, segments: [launched]}}
      - {{label: S4, default: true}}
""",
        SEGMENTS,
    ).scores


def memberships(con, day: date, members: dict[str, set[str]]) -> None:
    con.execute("CREATE OR REPLACE TEMP TABLE _m (segment_name VARCHAR, user_id VARCHAR)")
    rows = [(s, u) for s, users in members.items() for u in users]
    con.executemany("INSERT INTO _m VALUES (?, ?)", rows)
    history.replace_day(con, day, "_m", sorted(members))


def labels(con, day: date) -> dict[str, str]:
    return dict(con.execute("SELECT user_id, label FROM analytics.user_scores WHERE as_of_date = ?", [day]).fetchall())


MONDAY = date(2026, 6, 1)
DAY_ONE = {
    "All Users": {"a", "b", "c", "d"},
    "launched": {"a", "b", "c"},
    "bought": {"a", "b"},
    "carted": {"a"},
}


def test_first_path_that_holds_wins_and_default_catches_everyone_else(con):
    history.ensure_tables(con)
    memberships(con, MONDAY, DAY_ONE)
    (run,) = replace_user_scores(con, MONDAY, tree("daily"))
    assert labels(con, MONDAY) == {"a": "S1", "b": "S2", "c": "S3", "d": "S4"}
    assert run.mode == "computed" and run.multi_path_users == 2  # a holds S1..S3, b holds S2 and S3


def test_weekly_tree_is_carried_forward_until_its_next_refresh_day(con):
    history.ensure_tables(con)
    memberships(con, MONDAY, DAY_ONE)
    replace_user_scores(con, MONDAY, tree("weekly"))
    changed = {**DAY_ONE, "carted": {"a", "b"}, "All Users": DAY_ONE["All Users"] | {"e"}}
    for offset in range(1, 8):
        day = MONDAY + timedelta(days=offset)
        memberships(con, day, changed)
        (run,) = replace_user_scores(con, day, tree("weekly"))
        expected_mode = "computed" if day.weekday() == 0 else "carried_forward"
        assert run.mode == expected_mode, day
    assert labels(con, MONDAY + timedelta(days=6)) == labels(con, MONDAY)
    assert labels(con, MONDAY + timedelta(days=7)) == {"a": "S1", "b": "S1", "c": "S3", "d": "S4", "e": "S4"}


def test_rerunning_a_day_replaces_its_rows(con):
    history.ensure_tables(con)
    memberships(con, MONDAY, DAY_ONE)
    replace_user_scores(con, MONDAY, tree("daily"))
    replace_user_scores(con, MONDAY, tree("daily"))
    assert con.execute("SELECT count(*) FROM analytics.user_scores").fetchone()[0] == 4


@pytest.mark.parametrize(
    ("refresh", "day", "expected"),
    [
        ("daily", date(2026, 6, 3), True),
        ("weekly", date(2026, 6, 1), True),
        ("weekly", date(2026, 6, 2), False),
        ("biweekly", date(2026, 6, 1), (date(2026, 6, 1) - date(2024, 1, 1)).days // 7 % 2 == 0),
        ("monthly", date(2026, 6, 1), True),
        ("monthly", date(2026, 6, 2), False),
        ("quarterly", date(2026, 7, 1), True),
        ("quarterly", date(2026, 6, 1), False),
    ],
)
def test_refresh_days(refresh, day, expected):
    assert is_refresh_day(refresh, day) is expected


def test_biweekly_alternates_mondays():
    mondays = [date(2026, 6, 1) + timedelta(weeks=i) for i in range(4)]
    assert [is_refresh_day("biweekly", d) for d in mondays] in ([True, False, True, False], [False, True, False, True])


def _store(con, day: date, day_labels: dict[str, str], score: str = "tier") -> None:
    con.execute("CREATE OR REPLACE TEMP TABLE _day_labels (user_id VARCHAR, label VARCHAR)")
    if day_labels:
        con.executemany("INSERT INTO _day_labels VALUES (?, ?)", sorted(day_labels.items()))
    store_day_labels(con, score, day)
    con.execute("DROP TABLE _day_labels")


def _stored(con, score: str = "tier") -> dict[date, dict[str, str]]:
    stored: dict[date, dict[str, str]] = {}
    for day in con.execute("SELECT as_of_date FROM pipeline_state.score_days WHERE score_name = ?", [score]).fetchall():
        stored[day[0]] = {}
    for day, user, label in con.execute(
        "SELECT as_of_date, user_id, label FROM analytics.user_scores WHERE score_name = ?", [score]
    ).fetchall():
        stored[day][user] = label
    return stored


_label_days = st.lists(
    st.tuples(
        st.integers(0, 9),  # the day (any order: re-runs of the newest day and of older days)
        st.dictionaries(st.sampled_from(["u0", "u1", "u2", "u3", "u4"]), st.sampled_from(["S1", "S2", "S3"])),
    ),
    min_size=1,
    max_size=12,
)


@given(writes=_label_days)
@settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_spans_answer_every_scored_day_as_written(con, writes):
    """Property: after any sequence of day writes, the view gives each day the labels last written for it."""
    ensure_tables(con)
    con.execute("DELETE FROM pipeline_state.user_score_spans; DELETE FROM pipeline_state.score_days")
    reference: dict[date, dict[str, str]] = {}
    for offset, day_labels in writes:
        day = MONDAY + timedelta(days=offset)
        _store(con, day, day_labels)
        reference[day] = dict(day_labels)
        assert _stored(con) == reference
    # A span per change of label, never one per day: consecutive equal labels share a row.
    changes = 0
    days = sorted(reference)
    for user in {u for labels_of_day in reference.values() for u in labels_of_day}:
        runs = [reference[d].get(user) for d in days]
        changes += sum(1 for i, label in enumerate(runs) if label and (i == 0 or runs[i - 1] != label))
    assert con.execute("SELECT count(*) FROM pipeline_state.user_score_spans").fetchone()[0] == changes


def test_a_carried_forward_day_stores_no_label_rows(con):
    history.ensure_tables(con)
    memberships(con, MONDAY, DAY_ONE)
    replace_user_scores(con, MONDAY, tree("weekly"))
    spans = con.execute("SELECT count(*) FROM pipeline_state.user_score_spans").fetchone()[0]
    for offset in range(1, 6):
        day = MONDAY + timedelta(days=offset)
        memberships(con, day, DAY_ONE)
        replace_user_scores(con, day, tree("weekly"))
        assert labels(con, day) == labels(con, MONDAY)
    assert con.execute("SELECT count(*) FROM pipeline_state.user_score_spans").fetchone()[0] == spans == 4


def test_a_warehouse_with_the_old_user_scores_table_is_converted(con):
    rows = [
        (MONDAY, "tier", "a", "S1"),
        (MONDAY, "tier", "b", "S2"),
        (MONDAY + timedelta(days=1), "tier", "a", "S1"),
        (MONDAY + timedelta(days=1), "tier", "b", "S3"),
        (MONDAY + timedelta(days=1), "other", "a", "X"),
    ]
    con.execute(
        "CREATE TABLE analytics.user_scores (as_of_date DATE, score_name VARCHAR, user_id VARCHAR, label VARCHAR)"
    )
    con.executemany("INSERT INTO analytics.user_scores VALUES (?, ?, ?, ?)", rows)
    ensure_tables(con)
    kind = con.execute(
        "SELECT table_type FROM information_schema.tables WHERE table_schema = 'analytics' AND table_name = 'user_scores'"
    ).fetchone()
    assert kind == ("VIEW",)
    assert sorted(con.execute("SELECT * FROM analytics.user_scores").fetchall()) == sorted(rows)
    assert con.execute("SELECT count(*) FROM pipeline_state.user_score_spans").fetchone()[0] == 4
