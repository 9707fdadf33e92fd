"""A load written in many small chunks of days equals the same load written in one chunk."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segment_pipeline.ingest import events, state
from segment_pipeline.ingest.events import load_events
from segment_pipeline.ingest.sources import discover
from segment_pipeline.storage import warehouse
from segment_pipeline_tests.conftest import write_events
from segment_pipeline_tests.hypothesis_budget import examples

START = datetime(2026, 1, 1)
EVENT = st.fixed_dictionaries(
    {
        "id": st.integers(0, 40),  # small: ids repeat within a load and across loads
        "given_id": st.booleans(),
        "user": st.integers(0, 6),
        "name": st.sampled_from(["login", "charged"]),
        "plan": st.sampled_from(["pro", "free", None]),
        "bad": st.sampled_from([None, None, None, "ts", "user"]),
    }
)


def rows_of(batch: list[dict]) -> list[dict]:
    """An id's time is fixed by the id (spread over 20 days, with gaps), so its re-sends fall on
    its day: the same fate in any chunking. Name and properties may differ: conflicts."""
    rows = []
    for e in batch:
        ts = START + timedelta(days=(e["id"] * 7) % 20 * (1 + e["id"] % 2), minutes=e["id"])
        rows.append(
            {
                "event_id": f"e{e['id']}" if e["given_id"] else None,
                "user_id": "" if e["bad"] == "user" else f"u{e['user']}",
                "event_name": e["name"],
                "ts": "not a time" if e["bad"] == "ts" else ts.isoformat(),
                "properties": json.dumps({} if e["plan"] is None else {"plan": e["plan"]}),
            }
        )
    return rows


@contextmanager
def chunking(rows: int, probes: int) -> Iterator[None]:
    saved = events.CHUNK_ROWS, events.MAX_PROBES_PER_CHUNK
    events.CHUNK_ROWS, events.MAX_PROBES_PER_CHUNK = rows, probes
    try:
        yield
    finally:
        events.CHUNK_ROWS, events.MAX_PROBES_PER_CHUNK = saved


TABLES = {
    "analytics.event_snapshots": "SELECT * FROM analytics.event_snapshots ORDER BY event_id",
    # Sources are paths under each warehouse's own folder: compared by file name and row.
    "analytics.rejected_events": """SELECT snapshot_date, regexp_extract(source, '[^/]*$'), reason, raw
                                    FROM analytics.rejected_events ORDER BY ALL""",
    state.USERS: f"SELECT * FROM {state.USERS} ORDER BY ALL",
    state.EVENT_TYPES: f"SELECT * FROM {state.EVENT_TYPES} ORDER BY ALL",
    state.VOCABULARY: f"SELECT * FROM {state.VOCABULARY} ORDER BY ALL",
    state.ROLLUPS: f"SELECT * FROM {state.ROLLUPS} ORDER BY ALL",
}


@settings(max_examples=examples(20), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(loads=st.lists(st.lists(EVENT, max_size=25), min_size=1, max_size=3))
def test_many_small_chunks_load_what_one_chunk_loads(tmp_path_factory, loads):
    tmp = tmp_path_factory.mktemp("chunks")
    outcomes = []
    for label, rows, probes in (("one", 10**9, 16), ("many", 3, 2)):
        reports = []
        with chunking(rows, probes), warehouse.connect(tmp / f"{label}.duckdb") as con:
            for night, batch in enumerate(loads):
                write_events(tmp / label / f"night{night}.ndjson", rows_of(batch))
                report = load_events(
                    con,
                    discover(str(tmp / label / "*"), env_var="E"),
                    snapshot_date=date(2026, 1, 25 + night),
                    max_reject_rate=1,
                )
                reports.append(
                    (
                        report.loaded,
                        report.rejected,
                        report.duplicates_skipped,
                        report.already_loaded,
                        report.reject_reasons,
                    )
                )
            assert state.is_current(con)
            tables = {table: con.execute(query).fetchall() for table, query in TABLES.items()}
        outcomes.append((reports, tables))
    assert outcomes[0] == outcomes[1]
