"""Live segment evaluation: entries, cancellations, lateness, re-arming and idempotence."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from functools import partial

import polars as pl
import pytest

from segment_pipeline.config.segments import SegmentDefinition
from segment_pipeline.live import engine
from segment_pipeline.storage.warehouse import connect

T0 = datetime(2026, 3, 1, 12, 0)
# The examples here are written around a 10-minute late tolerance (the setting's default is 30 s).
process_events = partial(engine.process_events, late_tolerance_seconds=600)
flush_deadlines = partial(engine.flush_deadlines, late_tolerance_seconds=600)


def minutes(n: float) -> datetime:
    return T0 + timedelta(minutes=n)


def live_segment(
    name: str,
    action: str,
    inaction: str | None = None,
    *,
    window: int = 30,
    action_props: dict | None = None,
    inaction_props: dict | None = None,
) -> SegmentDefinition:
    steps = [
        {
            "eventType": action,
            "expTimeframe": window if inaction else 0,
            "actionInaction": "action",
            "eventProperties": action_props,
        }
    ]
    if inaction:
        steps.append(
            {"eventType": inaction, "expTimeframe": 0, "actionInaction": "inaction", "eventProperties": inaction_props}
        )
    return SegmentDefinition.model_validate(
        {
            "segmentName": name,
            "segmentType": "live",
            "segmentSubtype": 2 if inaction else 1,
            "segmentTimeframe": 0,
            "eventSequence": steps,
        }
    )


ABANDONED = live_segment("abandoned cart", "added_to_cart", "charged", window=30)
VISA = live_segment("visa login", "login", action_props={"payment_method": "visa"})


def events(*rows: tuple) -> pl.DataFrame:
    """rows: (event_id, user_id, event_name, minutes after T0[, properties])."""
    return pl.DataFrame(
        {
            "event_id": [r[0] for r in rows],
            "user_id": [r[1] for r in rows],
            "event_name": [r[2] for r in rows],
            "ts": [minutes(r[3]) for r in rows],
            "properties": [json.dumps(r[4]) if len(r) > 4 else None for r in rows],
        },
        schema={
            "event_id": pl.String,
            "user_id": pl.String,
            "event_name": pl.String,
            "ts": pl.Datetime("us"),
            "properties": pl.String,
        },
    )


def entries(con) -> list[tuple]:
    return con.execute(
        "SELECT segment_name, user_id, entered_at FROM analytics.live_segment_entries ORDER BY entered_at, user_id"
    ).fetchall()


def test_subtype1_enters_at_the_action_time_with_property_matching(con):
    batch = events(
        ("e1", "u1", "login", 0, {"payment_method": "visa"}),
        ("e2", "u2", "login", 1, {"payment_method": "amex"}),
        ("e3", "u3", "login", 2),
        ("e4", "u4", "logout", 3, {"payment_method": "visa"}),
    )
    result = process_events(con, [VISA], batch, now=minutes(3))
    assert entries(con) == [("visa login", "u1", minutes(0))]
    assert [e.event_id for e in result.entries] == ["e1"]
    assert result.entries[0].payload()["triggering_event"]["properties"] == {"payment_method": "visa"}


def test_subtype2_enters_at_action_plus_window_only_without_inaction(con):
    batch = events(
        ("a1", "u1", "added_to_cart", 0),
        ("a2", "u2", "added_to_cart", 0),
        ("c2", "u2", "charged", 10),
    )
    result = process_events(con, [ABANDONED], batch, now=minutes(5))
    assert result.entries == [] and result.pending == 1
    # deadline 12:30 + tolerance 10 min: not yet at 12:39
    assert flush_deadlines(con, [ABANDONED], now=minutes(39)) == []
    flushed = flush_deadlines(con, [ABANDONED], now=minutes(40))
    assert [(e.user_id, e.entered_at, e.event_id) for e in flushed] == [("u1", minutes(30), "a1")]
    assert entries(con) == [("abandoned cart", "u1", minutes(30))]
    assert flush_deadlines(con, [ABANDONED], now=minutes(100)) == []


def test_late_inaction_before_the_deadline_cancels(con):
    process_events(con, [ABANDONED], events(("a1", "u1", "added_to_cart", 0)), now=minutes(1))
    # the charge happened at 12:29 but arrives at 12:38, within the tolerance
    result = process_events(con, [ABANDONED], events(("c1", "u1", "charged", 29)), now=minutes(38))
    assert result.pending == 0
    assert flush_deadlines(con, [ABANDONED], now=minutes(200)) == []
    assert entries(con) == []


@pytest.mark.parametrize("inaction_at", [30, 31, -1])
def test_inaction_outside_the_window_does_not_cancel(con, inaction_at):
    batch = events(("a1", "u1", "added_to_cart", 0), ("c1", "u1", "charged", inaction_at))
    process_events(con, [ABANDONED], batch, now=minutes(60))
    assert entries(con) == [("abandoned cart", "u1", minutes(30))]


def test_inaction_arriving_after_the_entry_was_emitted_is_too_late(con):
    process_events(con, [ABANDONED], events(("a1", "u1", "added_to_cart", 0)), now=minutes(1))
    assert len(flush_deadlines(con, [ABANDONED], now=minutes(41))) == 1
    process_events(con, [ABANDONED], events(("c1", "u1", "charged", 20)), now=minutes(42))
    assert entries(con) == [("abandoned cart", "u1", minutes(30))]


def test_out_of_order_within_tolerance_gives_the_in_order_result(con):
    in_order = events(
        ("a1", "u1", "added_to_cart", 0),
        ("c1", "u1", "charged", 5),
        ("a2", "u1", "added_to_cart", 6),
        ("a3", "u1", "added_to_cart", 40),
    )
    shuffled = [in_order[[3]], in_order[[1]], in_order[[2]], in_order[[0]]]
    for i, batch in enumerate(shuffled):
        process_events(con, [ABANDONED], batch, now=minutes(41 + i))
    flush_deadlines(con, [ABANDONED], now=minutes(200))
    # a1 cancelled by c1; a2 re-arms and enters at 6 + 30; a3 (after 36) re-arms and enters at 70
    assert entries(con) == [("abandoned cart", "u1", minutes(36)), ("abandoned cart", "u1", minutes(70))]
    cancelled = con.execute("SELECT action_event_id, inaction_event_id FROM pipeline_state.live_cancelled").fetchall()
    assert cancelled == [("a1", "c1")]


def test_late_action_before_an_unfinal_cancellation_is_replayed(con):
    # a1 at 40 is cancelled by c1 at 45; then a0 at 0 arrives, still within tolerance of
    # the cancellation: in ts order a0 enters at 30, then a1 re-arms and is cancelled.
    process_events(
        con, [ABANDONED], events(("a1", "u1", "added_to_cart", 40), ("c1", "u1", "charged", 45)), now=minutes(46)
    )
    process_events(con, [ABANDONED], events(("a0", "u1", "added_to_cart", 0)), now=minutes(50))
    assert entries(con) == [("abandoned cart", "u1", minutes(30))]
    flush_deadlines(con, [ABANDONED], now=minutes(200))
    assert entries(con) == [("abandoned cart", "u1", minutes(30))]


def test_actions_while_pending_are_absorbed_and_later_ones_rearm(con):
    batch = events(
        ("a1", "u1", "added_to_cart", 0),
        ("a2", "u1", "added_to_cart", 10),  # absorbed: a1 is pending
        ("a3", "u1", "added_to_cart", 30),  # at the deadline of a1: re-arms
        ("a4", "u1", "added_to_cart", 45),  # absorbed by a3
    )
    process_events(con, [ABANDONED], batch, now=minutes(50))
    assert entries(con) == [("abandoned cart", "u1", minutes(30))]
    pending = con.execute("SELECT event_id, deadline FROM pipeline_state.live_pending").fetchall()
    assert pending == [("a3", minutes(60))]
    flush_deadlines(con, [ABANDONED], now=minutes(70))
    assert entries(con)[-1] == ("abandoned cart", "u1", minutes(60))


def test_property_matching_on_action_and_inaction(con):
    segment = live_segment(
        "premium abandoned",
        "added_to_cart",
        "charged",
        window=30,
        action_props={"tier": "premium", "qty": 2},
        inaction_props={"paid": True},
    )
    batch = events(
        ("a1", "u1", "added_to_cart", 0, {"tier": "premium", "qty": 2.0}),
        ("c1", "u1", "charged", 5, {"paid": False}),  # not the inaction
        ("a2", "u2", "added_to_cart", 0, {"tier": "premium", "qty": 2}),
        ("c2", "u2", "charged", 5, {"paid": True}),  # cancels
        ("a3", "u3", "added_to_cart", 0, {"tier": "premium", "qty": "2"}),  # "2" is not 2
    )
    process_events(con, [segment], batch, now=minutes(100))
    assert entries(con) == [("premium abandoned", "u1", minutes(30))]


def test_reprocessing_the_same_events_creates_no_duplicates(con):
    batch = events(
        ("e1", "u1", "login", 0, {"payment_method": "visa"}),
        ("a1", "u2", "added_to_cart", 0),
    )
    first = process_events(con, [VISA, ABANDONED], batch, now=minutes(100))
    again = process_events(con, [VISA, ABANDONED], batch, now=minutes(101))
    again_table = process_events(con, [VISA, ABANDONED], _as_table(con, batch), now=minutes(102))
    assert len(first.entries) == 2 and again.entries == [] and again_table.entries == []
    assert again.events_new == 0
    assert len(entries(con)) == 2
    assert con.execute("SELECT count(*) FROM pipeline_state.live_outbox").fetchone()[0] == 2


def test_events_without_event_id_are_deduplicated_by_content(con):
    batch = events(("x", "u1", "login", 0, {"payment_method": "visa"})).drop("event_id")
    process_events(con, [VISA], batch, now=minutes(1))
    process_events(con, [VISA], batch, now=minutes(2))
    assert len(entries(con)) == 1


def test_state_survives_reopening_the_warehouse(warehouse_path):
    with connect(warehouse_path) as con:
        process_events(con, [ABANDONED], events(("a1", "u1", "added_to_cart", 0)), now=minutes(1))
    with connect(warehouse_path) as con:
        assert flush_deadlines(con, [ABANDONED], now=minutes(40))[0].user_id == "u1"


THREE = SegmentDefinition.model_validate(
    {
        "segmentName": "viewed, carted, no buy",
        "segmentType": "live",
        "segmentSubtype": 2,
        "segmentTimeframe": 0,
        "eventSequence": [
            {"eventType": "a", "expTimeframe": 5, "actionInaction": "action"},
            {"eventType": "b", "expTimeframe": 10, "actionInaction": "action"},
            {"eventType": "c", "expTimeframe": 0, "actionInaction": "inaction"},
        ],
    }
)


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        # a, then b within 5 minutes, then no c within 10 minutes of b: enters at b + 10.
        ([("a1", "u1", "a", 0), ("b1", "u1", "b", 3)], [("u1", minutes(13), "b1")]),
        # b too late after a: the chain never completes.
        ([("a1", "u1", "a", 0), ("b1", "u1", "b", 5)], []),
        # b before a does not count.
        ([("b1", "u1", "b", 0), ("a1", "u1", "a", 1)], []),
        # c within 10 minutes of b cancels; c after that window does not.
        ([("a1", "u1", "a", 0), ("b1", "u1", "b", 3), ("c1", "u1", "c", 12)], []),
        ([("a1", "u1", "a", 0), ("b1", "u1", "b", 3), ("c1", "u1", "c", 14)], [("u1", minutes(13), "b1")]),
        # c before b (between a and b) does not cancel: the window opens at b.
        ([("a1", "u1", "a", 0), ("c1", "u1", "c", 1), ("b1", "u1", "b", 3)], [("u1", minutes(13), "b1")]),
    ],
)
def test_subtype_2_with_several_actions(con, rows, expected):
    result = process_events(con, [THREE], events(*rows), now=minutes(60), late_tolerance_seconds=30)
    assert [(e.user_id, e.entered_at, e.event_id) for e in result.entries] == expected


def _as_table(con, frame: pl.DataFrame) -> str:
    con.register("_frame", frame)
    con.execute("CREATE OR REPLACE TABLE main.raw_events AS SELECT * FROM _frame")
    con.unregister("_frame")
    return "main.raw_events"


def test_text_timestamps_with_offsets_are_read_as_utc(con):
    batch = pl.DataFrame(
        {
            "user_id": [7],
            "event_name": ["login"],
            "ts": ["2026-03-01T13:00:00+01:00"],
            "properties": ['{"payment_method": "visa"}'],
        }
    )
    result = process_events(con, [VISA], batch, now=minutes(5))
    assert [(e.user_id, e.entered_at) for e in result.entries] == [("7", minutes(0))]


def test_files_are_read_once_and_rereads_of_changed_files_add_only_new_events(con, tmp_path):
    from segment_pipeline.ingest.sources import discover
    from segment_pipeline.live.engine import process_files
    from segment_pipeline_tests.conftest import write_events

    path = tmp_path / "events" / "live.ndjson"
    rows = [
        {
            "user_id": "u1",
            "event_name": "login",
            "ts": minutes(0).isoformat(),
            "properties": {"payment_method": "visa"},
        },
        {"user_id": "u2", "event_name": "added_to_cart", "ts": minutes(1).isoformat()},
        {"user_id": "", "event_name": "login", "ts": minutes(2).isoformat()},  # rejected by the load rules
    ]
    write_events(path, rows)
    first = process_files(con, [VISA, ABANDONED], discover(str(path), env_var="X"), now=minutes(5))
    assert (first.files_read, first.events_new, len(first.entries), first.pending) == (1, 2, 1, 1)
    unchanged = process_files(con, [VISA, ABANDONED], discover(str(path), env_var="X"), now=minutes(6))
    assert (unchanged.files_read, unchanged.events_read) == (0, 0)
    write_events(
        path,
        [
            *rows,
            {
                "user_id": "u3",
                "event_name": "login",
                "ts": minutes(3).isoformat(),
                "properties": {"payment_method": "visa"},
            },
        ],
    )
    changed = process_files(con, [VISA, ABANDONED], discover(str(path), env_var="X"), now=minutes(7))
    assert (changed.files_read, changed.events_new, [e.user_id for e in changed.entries]) == (1, 1, ["u3"])


def test_events_without_ids_get_the_snapshot_ids(con, tmp_path):
    from datetime import date

    from segment_pipeline.ingest.events import load_events
    from segment_pipeline.ingest.sources import discover
    from segment_pipeline.live.engine import process_files
    from segment_pipeline_tests.conftest import write_events

    path = tmp_path / "events" / "day.csv"
    row = {
        "user_id": "u1",
        "event_name": "login",
        "ts": minutes(0).isoformat(),
        "properties": '{"payment_method": "visa"}',
    }
    write_events(path, [row, row])  # two identical rows: two events, told apart by occurrence
    files = discover(str(path), env_var="X")
    load_events(con, files, snapshot_date=date(2026, 3, 1), max_reject_rate=0.5)
    from_snapshot = process_events(con, [VISA], "analytics.event_snapshots", now=minutes(5))
    assert from_snapshot.events_new == 2 and len(from_snapshot.entries) == 1
    assert process_files(con, [VISA], files, now=minutes(6)).events_new == 0


def test_min_count_on_a_live_segment_is_refused_not_ignored(con):
    counted = SegmentDefinition.model_validate(
        {
            "segmentName": "three launches",
            "segmentType": "live",
            "segmentSubtype": 1,
            "segmentTimeframe": 0,
            "eventSequence": [{"eventType": "a", "expTimeframe": 0, "actionInaction": "action", "minCount": 3}],
        }
    )
    with pytest.raises(ValueError, match="three launches"):
        process_events(con, [counted], events(("a1", "u1", "a", 0)), now=minutes(1))
