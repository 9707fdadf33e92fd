"""Segment tag history and overlaps on a real warehouse, incremental vs rebuilt."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from segment_pipeline.segments import history
from segment_pipeline.storage import warehouse
from segment_pipeline_tests.hypothesis_budget import examples

D = [date(2026, 3, 1) + timedelta(days=i) for i in range(6)]


def evaluate(con, day: date, members: dict[str, set[str]]) -> str:
    rows = [(s, u) for s, users in members.items() for u in users]
    con.execute("CREATE OR REPLACE TEMP TABLE _m (segment_name VARCHAR, user_id VARCHAR)")
    if rows:
        con.executemany("INSERT INTO _m VALUES (?, ?)", rows)
    history.replace_day(con, day, "_m", sorted(members))
    mode = history.update_tags(con, day)
    history.replace_overlaps(con, day)
    return mode


def tags(con) -> list[tuple]:
    return con.execute("SELECT * FROM analytics.segment_tags ORDER BY ALL").fetchall()


def rebuilt(con) -> list[tuple]:
    con.execute("CREATE OR REPLACE TEMP TABLE _all_members AS SELECT * FROM analytics.segment_memberships")
    con.execute(history._REBUILD_TAGS)
    return con.execute("SELECT * FROM _rebuilt_tags ORDER BY ALL").fetchall()


def reference_tags(days: dict[date, dict[str, set[str]]]) -> list[tuple]:
    """Islands of consecutive evaluated days per (segment, user), from the plain day -> members record."""
    out = []
    for segment in sorted({s for members in days.values() for s in members}):
        evaluated = sorted(d for d, members in days.items() if segment in members)
        for user in sorted({u for d in evaluated for u in days[d][segment]}):
            start = None
            for day in evaluated:
                inside = user in days[day][segment]
                if inside and start is None:
                    start = day
                if not inside and start is not None:
                    out.append(
                        (
                            user,
                            segment,
                            datetime.combine(start, datetime.min.time()),
                            datetime.combine(day, datetime.min.time()),
                        )
                    )
                    start = None
            if start is not None:
                out.append((user, segment, datetime.combine(start, datetime.min.time()), None))
    return sorted(out)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 5),
            st.fixed_dictionaries(
                {
                    "s": st.frozensets(st.sampled_from(["u1", "u2", "u3"])),
                    "t": st.frozensets(st.sampled_from(["u1", "u2"])),
                }
            ),
        ),
        min_size=1,
        max_size=10,
    )
)
def test_memberships_answered_from_the_tags_equal_every_day_as_last_written(tmp_path_factory, runs):
    """Any order of days, re-runs of older days included: the view gives each day's last
    written members, and the tags are exactly the islands of consecutive evaluated days."""
    path = tmp_path_factory.mktemp("view") / "w.duckdb"
    record: dict[date, dict[str, set[str]]] = {}
    with warehouse.connect(path) as con:
        history.ensure_tables(con)
        for index, members in runs:
            day = D[index]
            record[day] = {name: set(users) for name, users in members.items()}
            evaluate(con, day, record[day])
            got = con.execute("SELECT as_of_date, segment_name, user_id FROM analytics.segment_memberships").fetchall()
            expected = {(d, s, u) for d, m in record.items() for s, users in m.items() for u in users}
            assert sorted(got) == sorted(expected) and len(got) == len(expected)
            assert tags(con) == reference_tags(record)


def test_enter_leave_reenter_opens_a_new_row(con):
    history.ensure_tables(con)
    for day, users in zip(D[:4], [{"u1"}, set(), {"u1"}, {"u1"}], strict=True):
        assert evaluate(con, day, {"buyers": users}) == "incremental"
    assert tags(con) == [
        ("u1", "buyers", datetime(2026, 3, 1), datetime(2026, 3, 2)),
        ("u1", "buyers", datetime(2026, 3, 3), None),
    ]


def test_rerunning_the_newest_day_is_idempotent_and_an_older_day_rebuilds(con):
    history.ensure_tables(con)
    evaluate(con, D[0], {"a": {"u1", "u2"}})
    evaluate(con, D[1], {"a": {"u1"}})
    first = tags(con)
    evaluate(con, D[1], {"a": {"u1"}})
    assert tags(con) == first
    # The old day is re-evaluated with a different answer (e.g. late events arrived).
    assert evaluate(con, D[0], {"a": {"u1"}}) == "rebuilt"
    assert tags(con) == [("u1", "a", datetime(2026, 3, 1), None)]


def test_overlaps_hold_sizes_on_the_diagonal_and_only_pairs_that_share_users(con):
    history.ensure_tables(con)
    evaluate(con, D[0], {"a": {"u1", "u2"}, "b": {"u2", "u3"}, "c": {"u4"}, "empty": set()})
    got = {(a, b): n for _, a, b, n in con.execute("SELECT * FROM analytics.segment_overlaps").fetchall()}
    assert got[("a", "a")] == 2 and got[("a", "b")] == got[("b", "a")] == 1
    assert got[("empty", "empty")] == 0 and got[("c", "c")] == 1
    assert ("empty", "a") not in got and ("a", "c") not in got and len(got) == 6


@settings(max_examples=examples(25), deadline=None)
@given(st.lists(st.frozensets(st.sampled_from(["u1", "u2", "u3"])), min_size=1, max_size=6))
def test_incremental_tags_equal_the_rebuild_from_history(tmp_path_factory, days_members):
    path = tmp_path_factory.mktemp("tags") / "w.duckdb"
    with warehouse.connect(path) as con:
        history.ensure_tables(con)
        for day, users in zip(D, days_members, strict=False):
            evaluate(con, day, {"s": set(users)})
        assert tags(con) == rebuilt(con)
        # Every open tag is a member on the last day, and only those.
        last = D[len(days_members) - 1]
        open_users = {u for u, _, _, removed in tags(con) if removed is None}
        assert open_users == set(days_members[-1])
        assert all(created < removed for _, _, created, removed in tags(con) if removed) or last == D[0]
