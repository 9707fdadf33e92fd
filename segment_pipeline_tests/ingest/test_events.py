"""The event loader on real files and a real DuckDB warehouse."""

from __future__ import annotations

import json
from datetime import date, datetime

import polars as pl
import pytest

from segment_pipeline.ingest.events import LoadRefused, load_events
from segment_pipeline.ingest.sources import SourceError, discover
from segment_pipeline_tests.conftest import make_events, write_events

DAY = date(2026, 1, 5)

BAD_ROWS = [
    {"event_id": "b1", "user_id": "", "event_name": "login", "ts": "2026-01-01T00:00:00", "properties": "{}"},
    {"event_id": "b2", "user_id": "u1", "event_name": " \t", "ts": "2026-01-01T00:00:00", "properties": "{}"},
    {"event_id": "b3", "user_id": "u1", "event_name": "login", "ts": "yesterday", "properties": "{}"},
    {"event_id": "b4", "user_id": "u1", "event_name": "login", "ts": "", "properties": "{}"},
    {"event_id": "b5", "user_id": "u1", "event_name": "login", "ts": "2026-01-01T00:00:00", "properties": "[1, 2]"},
]


def snapshot(con) -> pl.DataFrame:
    return con.execute("SELECT * FROM analytics.event_snapshots ORDER BY event_id").pl()


def rejects(con) -> pl.DataFrame:
    return con.execute("SELECT * FROM analytics.rejected_events ORDER BY source").pl()


def test_acceptance_mix_of_formats_bad_rows_and_resent_ids(tmp_path, con):
    """The issue's case: 2,055 rows, 5 bad, 50 re-sent with the same event_id."""
    rows = make_events(2000)
    write_events(tmp_path / "src" / "a.csv", rows[:1000])
    write_events(tmp_path / "src" / "b.ndjson", rows[1000:] + BAD_ROWS)
    write_events(tmp_path / "src" / "c.parquet", rows[:50])
    files = discover(str(tmp_path / "src" / "*"), env_var="EVENTS")

    first = load_events(con, files, snapshot_date=DAY, max_reject_rate=0.01)
    assert (first.loaded, first.rejected, first.duplicates_skipped) == (2000, 5, 50)
    assert set(first.reject_reasons) == {
        "empty user_id",
        "empty event_name",
        "unparseable ts",
        "missing ts",
        "properties is not a JSON object",
    }
    before = (snapshot(con), rejects(con))
    assert before[0].height == 2000 and before[0]["event_id"].n_unique() == 2000
    assert before[1].height == 5
    assert before[1]["source"].str.ends_with("b.ndjson:1001").any()

    again = load_events(con, files, snapshot_date=DAY, max_reject_rate=0.01)
    assert (again.loaded, again.rejected) == (0, 0)
    assert snapshot(con).equals(before[0]) and rejects(con).equals(before[1])


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".ndjson", ".jsonl"])
def test_each_format_loads_the_same_events(tmp_path, con, suffix):
    rows = make_events(30)
    files = discover(str(write_events(tmp_path / f"events{suffix}", rows)), env_var="EVENTS")
    load_events(con, files, snapshot_date=DAY, max_reject_rate=0)
    got = snapshot(con)
    assert got.height == 30
    first = got.filter(pl.col("event_id") == "e7").row(0, named=True)
    assert first["user_id"] == "u7" and first["event_name"] == "item_viewed"
    assert first["ts"] == datetime(2026, 1, 1, 0, 7)
    assert json.loads(first["properties"]) == {"n": 7, "category": "concert"}
    assert first["snapshot_date"] == DAY


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".ndjson"])
def test_properties_text_that_is_not_json_is_rejected_and_the_rest_loads(tmp_path, con, suffix):
    rows = make_events(10)
    broken = [
        {**rows[0], "event_id": "x1", "properties": "{oops"},
        {**rows[0], "event_id": "x2", "properties": "plain words"},
        {**rows[0], "event_id": "x3", "properties": '{"a": 1} trailing'},
        {**rows[0], "event_id": "x4", "properties": '{ "spaced" :  [1,  2] }'},
    ]
    files = discover(str(write_events(tmp_path / f"events{suffix}", rows + broken)), env_var="EVENTS")
    report = load_events(con, files, snapshot_date=DAY, max_reject_rate=1)
    assert (report.loaded, report.rejected) == (11, 3)
    assert report.reject_reasons == {"properties is not a JSON object": 3}
    kept = snapshot(con).filter(pl.col("event_id") == "x4")["properties"].item()
    assert kept == '{"spaced":[1,2]}'  # compacted, so a re-send with other spacing is the same content


def test_parquet_native_types_integer_ids_struct_properties_and_tz(tmp_path, con):
    frame = pl.DataFrame(
        {
            "user_id": [101, 102],
            "event_name": ["charged", "login"],
            "ts": [datetime(2026, 1, 2, 10), datetime(2026, 1, 2, 11)],
            "properties": [{"amount": 9.5, "vip": True}, {"amount": None, "vip": False}],
        }
    ).with_columns(pl.col("ts").dt.replace_time_zone("Europe/Berlin"))
    frame.write_parquet(tmp_path / "typed.parquet")
    load_events(con, discover(str(tmp_path / "typed.parquet"), env_var="E"), snapshot_date=DAY, max_reject_rate=0)
    got = snapshot(con).sort("user_id")
    assert got["user_id"].to_list() == ["101", "102"]
    assert got["ts"].to_list() == [datetime(2026, 1, 2, 9), datetime(2026, 1, 2, 10)]  # UTC
    assert json.loads(got["properties"][0]) == {"amount": 9.5, "vip": True}


def test_iso_text_with_offsets_is_utc_and_naive_is_utc(tmp_path, con):
    rows = [
        {"user_id": "u", "event_name": "a", "ts": "2026-01-03T10:00:00+02:00"},
        {"user_id": "u", "event_name": "b", "ts": "2026-01-03T10:00:00Z"},
        {"user_id": "u", "event_name": "c", "ts": "2026-01-03 10:00:00"},
    ]
    load_events(
        con, discover(str(write_events(tmp_path / "e.ndjson", rows)), env_var="E"), snapshot_date=DAY, max_reject_rate=0
    )
    got = dict(con.execute("SELECT event_name, ts FROM analytics.event_snapshots").fetchall())
    assert got == {"a": datetime(2026, 1, 3, 8), "b": datetime(2026, 1, 3, 10), "c": datetime(2026, 1, 3, 10)}


def test_incremental_by_day_window_edges(tmp_path, con):
    rows = [
        {"event_id": "last-instant", "user_id": "u", "event_name": "a", "ts": "2026-01-05T23:59:59.999999"},
        {"event_id": "next-day", "user_id": "u", "event_name": "a", "ts": "2026-01-06T00:00:00"},
    ]
    files = discover(str(write_events(tmp_path / "e.csv", rows)), env_var="E")
    report = load_events(con, files, snapshot_date=DAY, max_reject_rate=0)
    assert (report.loaded, report.deferred) == (1, 1)
    report = load_events(con, files, snapshot_date=date(2026, 1, 6), max_reject_rate=0)
    assert report.loaded == 1
    assert dict(con.execute("SELECT event_id, snapshot_date FROM analytics.event_snapshots").fetchall()) == {
        "last-instant": DAY,
        "next-day": date(2026, 1, 6),
    }


def test_rows_without_event_id_get_stable_ids_and_identical_rows_both_load(tmp_path, con):
    row = {"user_id": "u", "event_name": "a", "ts": "2026-01-02T00:00:00", "properties": "{}"}
    files = discover(str(write_events(tmp_path / "e.ndjson", [row, row, {**row, "event_name": "b"}])), env_var="E")
    load_events(con, files, snapshot_date=DAY, max_reject_rate=0)
    ids = sorted(r[0] for r in con.execute("SELECT event_id FROM analytics.event_snapshots").fetchall())
    assert len(ids) == 3 and len(set(ids)) == 3
    (tmp_path / "e.ndjson").touch()  # a changed mtime forces a re-read: the ids must come out the same
    files = discover(str(tmp_path / "e.ndjson"), env_var="E")
    assert load_events(con, files, snapshot_date=DAY, max_reject_rate=0).loaded == 0


def test_event_id_duplicates_across_days_and_files_load_once(tmp_path, con):
    write_events(tmp_path / "d1.parquet", make_events(10))
    load_events(con, discover(str(tmp_path / "*.parquet"), env_var="E"), snapshot_date=DAY, max_reject_rate=0)
    write_events(tmp_path / "d2.parquet", make_events(12))  # resends e0..e9, adds e10, e11
    report = load_events(con, discover(str(tmp_path / "*.parquet"), env_var="E"), snapshot_date=DAY, max_reject_rate=0)
    assert (report.loaded, report.files_skipped) == (2, 1)
    assert con.execute("SELECT count(*) FROM analytics.event_snapshots").fetchone()[0] == 12


def test_reject_rate_refuses_the_load_naming_the_file_and_keeps_nothing(tmp_path, con):
    write_events(tmp_path / "good.parquet", make_events(100, prefix="g"))
    load_events(con, discover(str(tmp_path / "good.parquet"), env_var="E"), snapshot_date=DAY, max_reject_rate=0.01)
    before = (snapshot(con), rejects(con))

    rows = make_events(90, prefix="x") + [
        {"event_id": f"bad{i}", "user_id": "u", "event_name": "a", "ts": "not a time", "properties": "{}"}
        for i in range(10)
    ]
    write_events(tmp_path / "tenth_bad.csv", rows)
    with pytest.raises(LoadRefused) as refused:
        load_events(con, discover(str(tmp_path / "*"), env_var="E"), snapshot_date=DAY, max_reject_rate=0.01)
    message = str(refused.value)
    assert "tenth_bad.csv" in message and "unparseable ts" in message and "10.0%" in message
    assert snapshot(con).equals(before[0]) and rejects(con).equals(before[1])
    assert con.execute("SELECT count(*) FROM pipeline_state.source_files").fetchone()[0] == 1


def test_malformed_lines_are_rejects_not_failures(tmp_path, con):
    good = make_events(200)
    text = "".join(json.dumps(r) + "\n" for r in good) + "this is not json\n\n"
    (tmp_path / "e.ndjson").write_text(text)
    csv_text = "user_id,event_name,ts\nu1,a,2026-01-01\nu2,b,2026-01-01,extra\n"
    (tmp_path / "f.csv").write_text(csv_text)
    report = load_events(con, discover(str(tmp_path / "*"), env_var="E"), snapshot_date=DAY, max_reject_rate=0.05)
    assert report.loaded == 201
    assert report.reject_reasons == {"malformed json line": 1, "malformed csv line: too many columns": 1}
    sources = sorted(
        r[0].rsplit("/", 1)[1] for r in con.execute("SELECT source FROM analytics.rejected_events").fetchall()
    )
    assert sources == ["e.ndjson:201", "f.csv:3"]


def test_missing_required_column_names_the_file(tmp_path, con):
    write_events(tmp_path / "e.csv", [{"user_id": "u", "ts": "2026-01-01"}])
    with pytest.raises(SourceError, match=r"e\.csv: missing required column\(s\) event_name"):
        load_events(con, discover(str(tmp_path / "e.csv"), env_var="E"), snapshot_date=DAY, max_reject_rate=0)


def test_discover_errors_are_actionable(tmp_path):
    with pytest.raises(SourceError, match="matches no file"):
        discover(str(tmp_path / "*.parquet"), env_var="SEGMENT_PIPELINE_EVENTS")
    (tmp_path / "events.xlsx").write_text("x")
    with pytest.raises(SourceError, match=r"unsupported file type '\.xlsx'"):
        discover(str(tmp_path / "events.xlsx"), env_var="SEGMENT_PIPELINE_EVENTS")
