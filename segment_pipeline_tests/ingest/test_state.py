"""pipeline_state.users and .vocabulary, kept by each load, equal a direct computation over the snapshot."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segment_pipeline.config.segments import ALL_USERS, SegmentConfig
from segment_pipeline.ingest import state
from segment_pipeline.ingest.events import load_events
from segment_pipeline.ingest.sources import discover
from segment_pipeline.rules.compiler import compile_past_segments, read_profile_columns
from segment_pipeline.segments.evaluate import evaluate_day
from segment_pipeline.storage import warehouse
from segment_pipeline_tests.conftest import write_events
from segment_pipeline_tests.hypothesis_budget import examples

START = datetime(2026, 1, 1)
PROPERTIES = st.dictionaries(
    st.sampled_from(["plan", "n", "tags", 'we"ird key', ""]),
    st.one_of(st.integers(-5, 5), st.text(max_size=3), st.booleans(), st.none(), st.lists(st.integers(), max_size=2)),
    max_size=3,
)
EVENT = st.fixed_dictionaries(
    {
        "id": st.integers(0, 60),  # small: later loads re-send ids of earlier ones
        "user": st.integers(0, 12),
        "name": st.sampled_from(["login", "charged", "item_viewed"]),
        "minute": st.integers(0, 5 * 24 * 60),
        "properties": PROPERTIES,
    }
)

DIRECT_USERS = "SELECT user_id, min(ts), max(ts) FROM analytics.event_snapshots GROUP BY 1 ORDER BY 1"
DIRECT_EVENT_TYPES = "SELECT event_name, count(*) FROM analytics.event_snapshots GROUP BY 1 ORDER BY ALL"
DIRECT_VOCABULARY = """
SELECT event_name, j.key, count(*) FROM analytics.event_snapshots, json_each(properties) j GROUP BY ALL ORDER BY ALL
"""


def rows_of(batch: list[dict]) -> list[dict]:
    # One content per id, so a re-send is a skip and never a conflict (conflicts are test_events' job).
    return [
        {
            "event_id": f"e{e['id']}",
            "user_id": f"u{(e['id'] * 7) % 13}",
            "event_name": ("login", "charged")[e["id"] % 2],
            "ts": (START + timedelta(minutes=e["minute"] if e["id"] % 3 else e["id"] * 90)).isoformat(),
            "properties": json.dumps(e["properties"]),
        }
        for e in batch
    ] + [
        {
            "event_id": None,
            "user_id": f"v{e['user']}",
            "event_name": e["name"],
            "ts": (START + timedelta(minutes=e["minute"])).isoformat(),
            "properties": json.dumps(e["properties"]),
        }
        for e in batch
    ]


@settings(max_examples=examples(15), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=st.lists(st.lists(EVENT, min_size=0, max_size=12), min_size=1, max_size=4))
def test_summaries_after_several_loads_equal_a_direct_computation(tmp_path_factory, batches):
    tmp = tmp_path_factory.mktemp("loads")
    with warehouse.connect(tmp / "w.duckdb") as con:
        for night, batch in enumerate(batches):
            write_events(tmp / "events" / f"night{night}.ndjson", rows_of(batch))
            load_events(
                con,
                discover(str(tmp / "events" / "*"), env_var="E"),
                snapshot_date=date(2026, 1, 2 + night),
                max_reject_rate=1,
            )
            assert state.is_current(con)
            assert (
                con.execute(f"SELECT * FROM {state.USERS} ORDER BY 1").fetchall()
                == con.execute(DIRECT_USERS).fetchall()
            )
            assert (
                con.execute(f"SELECT * FROM {state.EVENT_TYPES} ORDER BY ALL").fetchall()
                == con.execute(DIRECT_EVENT_TYPES).fetchall()
            )
            assert (
                con.execute(f"SELECT * FROM {state.VOCABULARY} ORDER BY ALL").fetchall()
                == con.execute(DIRECT_VOCABULARY).fetchall()
            )
            assert (
                state.user_count(con)
                == con.execute("SELECT count(DISTINCT user_id) FROM analytics.event_snapshots").fetchone()[0]
            )


def test_a_snapshot_written_another_way_is_read_directly_and_rebuilt_by_the_next_load(tmp_path):
    rows = rows_of(
        [{"id": i, "user": i, "name": "login", "minute": i * 60, "properties": {"plan": "pro"}} for i in range(10)]
    )
    write_events(tmp_path / "events" / "a.ndjson", rows)
    files = discover(str(tmp_path / "events" / "*"), env_var="E")
    with warehouse.connect(tmp_path / "w.duckdb") as con:
        load_events(con, files, snapshot_date=date(2026, 1, 3), max_reject_rate=0)
        con.execute("""INSERT INTO analytics.event_snapshots
                       VALUES ('manual', 'newcomer', 'refund', '2026-01-02 10:00', '{"amount": 3}', '2026-01-03')""")
        assert not state.is_current(con)
        assert (
            state.user_count(con)
            == con.execute("SELECT count(DISTINCT user_id) FROM analytics.event_snapshots").fetchone()[0]
        )
        assert state.event_types_and_keys(con, []) is None  # the vocabulary reader scans the snapshot instead
        load_events(con, files, snapshot_date=date(2026, 1, 4), max_reject_rate=0)
        assert state.is_current(con)
        assert con.execute(f"SELECT * FROM {state.USERS} ORDER BY 1").fetchall() == con.execute(DIRECT_USERS).fetchall()
        assert ("refund", "amount", 1) in con.execute(f"SELECT * FROM {state.VOCABULARY}").fetchall()
        assert ("refund", 1) in con.execute(f"SELECT * FROM {state.EVENT_TYPES}").fetchall()


def test_all_users_from_the_summary_equal_the_compiled_all_users(tmp_path):
    rows = rows_of([{"id": i, "user": i % 5, "name": "login", "minute": i * 500, "properties": {}} for i in range(40)])
    write_events(tmp_path / "events" / "a.ndjson", rows)
    with warehouse.connect(tmp_path / "w.duckdb") as con:
        load_events(
            con,
            discover(str(tmp_path / "events" / "*"), env_var="E"),
            snapshot_date=date(2026, 1, 20),
            max_reject_rate=0,
        )
        for day in (date(2026, 1, 1), date(2026, 1, 3), date(2026, 1, 20)):
            evaluate_day(con, SegmentConfig(segments=[]), day)
            assert state.is_current(con)
            from_summary = con.execute(
                "SELECT user_id FROM analytics.segment_memberships WHERE as_of_date = ? AND segment_name = ? ORDER BY 1",
                [day, ALL_USERS],
            ).fetchall()
            query = compile_past_segments(
                [], as_of=day, profile_columns=read_profile_columns(con), include_all_users=True
            )
            compiled = con.execute(f"SELECT user_id FROM ({query.sql}) ORDER BY 1", query.params).fetchall()
            assert from_summary == compiled and compiled


def test_summaries_of_an_older_shape_are_rebuilt_by_the_next_load(tmp_path):
    """A warehouse whose vocabulary still has the value types of an older version (and its mark)."""
    rows = rows_of(
        [{"id": i, "user": i, "name": "login", "minute": i * 60, "properties": {"plan": "pro"}} for i in range(6)]
    )
    write_events(tmp_path / "events" / "a.ndjson", rows[:3])
    files = discover(str(tmp_path / "events" / "*"), env_var="E")
    with warehouse.connect(tmp_path / "w.duckdb") as con:
        load_events(con, files, snapshot_date=date(2026, 1, 3), max_reject_rate=0)
        con.execute(f"DROP TABLE {state.VOCABULARY}; DROP TABLE {state.EVENT_TYPES}")
        con.execute(f"""CREATE TABLE {state.VOCABULARY} (event_name VARCHAR, property_key VARCHAR, value_type VARCHAR,
                        events BIGINT NOT NULL, PRIMARY KEY (event_name, property_key, value_type))""")
        con.execute(f"INSERT INTO {state.VOCABULARY} VALUES ('login', '', '*', 3), ('login', 'plan', 'VARCHAR', 3)")
        con.execute(f"DELETE FROM {state.MARKS}")
        con.execute(
            f"INSERT INTO {state.MARKS} SELECT 'users_vocabulary_rollups', count(*) FROM analytics.event_snapshots"
        )
        assert not state.is_current(con)
        write_events(tmp_path / "events" / "b.ndjson", rows[3:])
        load_events(
            con,
            discover(str(tmp_path / "events" / "*"), env_var="E"),
            snapshot_date=date(2026, 1, 4),
            max_reject_rate=0,
        )
        assert state.is_current(con)
        assert con.execute(f"SELECT * FROM {state.VOCABULARY}").fetchall() == con.execute(DIRECT_VOCABULARY).fetchall()
        assert (
            con.execute(f"SELECT * FROM {state.EVENT_TYPES}").fetchall() == con.execute(DIRECT_EVENT_TYPES).fetchall()
        )
