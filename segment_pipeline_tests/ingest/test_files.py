"""Source files as they come in production: odd names, broken files, huge lines, bad bytes."""

from __future__ import annotations

import json
from datetime import date

import polars as pl
import pytest

from segment_pipeline.ingest.events import load_events
from segment_pipeline.ingest.profiles import load_profiles
from segment_pipeline.ingest.sources import discover
from segment_pipeline.ingest.staging import LINE_TOO_LONG, MAX_LINE_BYTES, NOT_UTF8
from segment_pipeline_tests.conftest import make_events, write_events

DAY = date(2026, 1, 5)


def load(con, pattern, *, day=DAY, max_reject_rate=0.01):
    return load_events(
        con,
        discover(str(pattern), env_var="SEGMENT_PIPELINE_EVENTS"),
        snapshot_date=day,
        max_reject_rate=max_reject_rate,
    )


def loaded_ids(con) -> set[str]:
    return {r[0] for r in con.execute("SELECT event_id FROM analytics.event_snapshots").fetchall()}


def rejects(con) -> list[tuple[str, str, str | None]]:
    return con.execute("SELECT source, reason, raw FROM analytics.rejected_events ORDER BY source, reason").fetchall()


def manifest(con) -> set[str]:
    return {r[0] for r in con.execute("SELECT path FROM pipeline_state.source_files").fetchall()}


GLOB_NAMES = ["batch[1].ndjson", "a*b?.csv", "x{1,2}.parquet", "back\\slash.jsonl", "[!x].csv", "**.ndjson"]


def test_file_names_with_glob_characters_load_every_row_of_exactly_that_file(tmp_path, con):
    folder = tmp_path / "exports[2026]*"
    for i, name in enumerate(GLOB_NAMES):
        write_events(folder / name, make_events(20, prefix=f"f{i}-"))
    # Files the glob characters would match if they were read as patterns.
    write_events(folder / "batch1.ndjson", make_events(3, prefix="decoy1-"))
    write_events(folder / "axbb.csv", make_events(3, prefix="decoy2-"))

    report = load(con, folder)  # a folder: every file below it
    assert report.files_read == len(GLOB_NAMES) + 2 and report.unreadable_files == {}
    assert report.loaded == 20 * len(GLOB_NAMES) + 6
    for i in range(len(GLOB_NAMES)):
        assert {f"f{i}-{n}" for n in range(20)} <= loaded_ids(con)


def test_an_existing_path_is_taken_literally_and_a_glob_still_globs(tmp_path, con):
    write_events(tmp_path / "batch[1].ndjson", make_events(20, prefix="literal-"))
    write_events(tmp_path / "batch1.ndjson", make_events(5, prefix="other-"))
    [only] = discover(str(tmp_path / "batch[1].ndjson"), env_var="E")
    assert only.path.name == "batch[1].ndjson"
    assert load(con, tmp_path / "batch[1].ndjson").loaded == 20
    assert loaded_ids(con) == {f"literal-{n}" for n in range(20)}
    assert {f.path.name for f in discover(str(tmp_path / "batch*.ndjson"), env_var="E")} == {
        "batch[1].ndjson",
        "batch1.ndjson",
    }


def test_profile_file_with_glob_characters_in_its_name(tmp_path, con):
    (tmp_path / "profiles[eu].csv").write_text("user_id,plan\nu1,free\nu2,pro\n")
    (tmp_path / "profilese.csv").write_text("user_id,plan\nzz,decoy\n")
    report = load_profiles(con, discover(str(tmp_path / "profiles[eu].csv"), env_var="P"), snapshot_date=DAY)
    assert report.profiles == 2
    assert con.execute("SELECT user_id FROM analytics.profiles ORDER BY 1").fetchall() == [("u1",), ("u2",)]


def _broken_files(folder):
    """A truncated Parquet, an empty Parquet, a 0-byte CSV, Parquet garbage, a Parquet with corrupt pages."""
    whole = write_events(folder / "tmp_whole.parquet", make_events(500, prefix="t")).read_bytes()
    (folder / "tmp_whole.parquet").unlink()
    (folder / "truncated.parquet").write_bytes(whole[: len(whole) // 2])
    (folder / "empty.parquet").write_bytes(b"")
    (folder / "empty.csv").write_bytes(b"")
    (folder / "garbage.parquet").write_bytes(b"PAR1 this is not parquet" * 40)
    # Footer intact, data pages zeroed: the schema reads, the rows do not.
    pl.DataFrame(make_events(5000, prefix="m")).write_parquet(folder / "mangled.parquet", compression="snappy")
    mangled = bytearray((folder / "mangled.parquet").read_bytes())
    mangled[200:1200] = bytes(1000)
    (folder / "mangled.parquet").write_bytes(bytes(mangled))
    return {
        "mangled.parquet": "unreadable file: corrupt Parquet data (Snappy decompression failure)",
        "truncated.parquet": "unreadable file: not a Parquet file (empty or truncated?)",
        "empty.parquet": "unreadable file: not a Parquet file (empty or truncated?)",
        "empty.csv": "unreadable file: empty file (no header line)",
        "garbage.parquet": "unreadable file: not a Parquet file (empty or truncated?)",
    }


def test_broken_files_are_one_reject_each_never_block_the_good_ones_and_load_once_fixed(tmp_path, con):
    src = tmp_path / "events"
    write_events(src / "good_a.parquet", make_events(300, prefix="a"))
    write_events(src / "good_b.ndjson", make_events(300, prefix="b"))
    write_events(src / "good_c.csv", make_events(300, prefix="c"))
    expected = _broken_files(src)

    # max_reject_rate=0: the broken files are not rows, so they do not refuse the load.
    report = load(con, src / "*", max_reject_rate=0)
    assert report.loaded == 900 and report.rejected == 0
    assert {p.rsplit("/", 1)[1]: r for p, r in report.unreadable_files.items()} == expected
    got = rejects(con)
    assert [(s.rsplit("/", 1)[1], r, raw) for s, r, raw in got] == sorted(
        (name, reason, None) for name, reason in expected.items()
    )
    assert {p.rsplit("/", 1)[1] for p in manifest(con)} == {"good_a.parquet", "good_b.ndjson", "good_c.csv"}

    # Still broken the next night: read again, not recorded twice, nothing else changes.
    again = load(con, src / "*", day=date(2026, 1, 6), max_reject_rate=0)
    assert again.files_skipped == 3 and len(again.unreadable_files) == 5 and again.loaded == 0
    assert rejects(con) == got

    # Fixed: they load on the next run and join the manifest.
    write_events(src / "truncated.parquet", make_events(500, prefix="t"))
    write_events(src / "empty.parquet", make_events(7, prefix="p"))
    (src / "empty.csv").write_text("user_id,event_name,ts\nu1,login,2026-01-02T00:00:00\n")
    write_events(src / "garbage.parquet", make_events(9, prefix="g"))
    write_events(src / "mangled.parquet", make_events(5000, prefix="m"))
    fixed = load(con, src / "*", day=date(2026, 1, 7), max_reject_rate=0)
    assert fixed.unreadable_files == {} and fixed.loaded == 500 + 7 + 1 + 9 + 5000
    assert len(manifest(con)) == 8
    assert rejects(con) == got  # the history of what was wrong stays


def test_a_broken_file_in_a_refused_load_is_named_and_nothing_is_kept(tmp_path, con):
    src = tmp_path / "events"
    rows = make_events(90) + [{"user_id": "", "event_name": "a", "ts": "2026-01-01T00:00:00"} for _ in range(10)]
    write_events(src / "bad_rows.ndjson", rows)
    (src / "empty.parquet").write_bytes(b"")
    from segment_pipeline.ingest.events import LoadRefused

    with pytest.raises(LoadRefused) as refused:
        load(con, src / "*", max_reject_rate=0.01)
    assert "empty.parquet: unreadable file: not a Parquet file" in str(refused.value)
    assert rejects(con) == [] and loaded_ids(con) == set() and manifest(con) == set()


def test_a_10_mb_ndjson_line_loads_and_the_rest_of_the_file_too(tmp_path, con):
    big = {
        "event_id": "big",
        "user_id": "u",
        "event_name": "upload",
        "ts": "2026-01-02T00:00:00",
        "properties": {"blob": "x" * 10_000_000},
    }
    rows = make_events(5)
    (tmp_path / "e.ndjson").write_text("".join(json.dumps(r) + "\n" for r in [rows[0], big, *rows[1:]]))
    report = load(con, tmp_path / "e.ndjson", max_reject_rate=0)
    assert report.loaded == 6 and report.rejected == 0
    size = con.execute(
        "SELECT length(CAST(properties AS VARCHAR)) FROM analytics.event_snapshots WHERE event_id = 'big'"
    )
    assert size.fetchone()[0] > 10_000_000


def test_an_absurdly_long_line_and_undecodable_bytes_reject_only_their_line(tmp_path, con):
    rows = [json.dumps(r).encode() for r in make_events(6)]
    too_long = b'{"user_id": "u", "blob": "' + b"x" * (MAX_LINE_BYTES + 10) + b'"}'
    bad_bytes = b'{"user_id": "\xff\xfe", "event_name": "a", "ts": "2026-01-01"}'
    lines = [rows[0], too_long, rows[1], b"", rows[2], bad_bytes, bad_bytes, rows[3], rows[4], rows[5]]
    (tmp_path / "e.ndjson").write_bytes(b"\n".join(lines) + b"\n")
    (tmp_path / "f.csv").write_bytes(b"user_id,event_name,ts\nu1,a,2026-01-01\n\xff,a,2026-01-01\nu3,a,2026-01-01\n")

    report = load(con, tmp_path / "*", max_reject_rate=0.5)
    assert report.loaded == 6 + 2
    assert report.reject_reasons == {NOT_UTF8: 3, LINE_TOO_LONG: 1}
    got = {s.rsplit("/", 1)[1]: (r, raw) for s, r, raw in rejects(con)}
    assert set(got) == {"e.ndjson:2", "e.ndjson:6", "e.ndjson:7", "f.csv:3"}
    assert got["e.ndjson:2"][0] == LINE_TOO_LONG and len(got["e.ndjson:2"][1]) <= 1001  # an excerpt
    # Lines after the set-aside ones keep their true line numbers: find rows by their line.
    staged = con.execute("SELECT count(*) FROM analytics.event_snapshots WHERE event_id IN ('e3', 'e5')").fetchone()
    assert staged[0] == 2
    assert "64 MB" in LINE_TOO_LONG and "max_line_size" not in LINE_TOO_LONG


def test_line_numbers_after_set_aside_lines_point_at_the_right_lines(tmp_path, con):
    good = json.dumps({"user_id": "u", "event_name": "a", "ts": "2026-01-01T00:00:00"}).encode()
    lines = [good, b'{"x": "\xff"}', good, b"not json", b"\xfe", b"\xfe", good, b"still not json"]
    (tmp_path / "e.ndjson").write_bytes(b"\n".join(lines) + b"\n")
    load(con, tmp_path / "e.ndjson", max_reject_rate=1)
    got = {s.rsplit(":", 1)[1]: r for s, r, _ in rejects(con)}
    assert got == {"2": NOT_UTF8, "4": "malformed json line", "5": NOT_UTF8, "6": NOT_UTF8, "8": "malformed json line"}


def test_same_event_id_with_different_content_is_a_reject_identical_resends_are_skipped(tmp_path, con):
    base = make_events(10)
    conflict = {**base[3], "event_name": "refund"}
    write_events(tmp_path / "a.ndjson", [*base, base[2], conflict])  # e2 re-sent as is, e3 changed
    report = load(con, tmp_path / "a.ndjson", max_reject_rate=0.5)
    assert (report.loaded, report.duplicates_skipped, report.rejected) == (10, 1, 1)
    assert report.reject_reasons == {"duplicate event_id with different content": 1}
    [(source, _reason, raw)] = rejects(con)
    assert source.endswith("a.ndjson:12") and json.loads(raw)["event_name"] == "refund"
    assert (
        con.execute("SELECT event_name FROM analytics.event_snapshots WHERE event_id = 'e3'").fetchone()[0]
        == base[3]["event_name"]
    )


def test_a_conflict_with_an_already_loaded_event_is_a_reject(tmp_path, con):
    base = make_events(10)
    write_events(tmp_path / "day1.csv", base)
    load(con, tmp_path / "*", max_reject_rate=0)
    changed = {**base[4], "properties": json.dumps({"n": 999})}
    write_events(tmp_path / "day2.parquet", [base[5], changed, *make_events(3, prefix="new")])
    report = load(con, tmp_path / "*", day=date(2026, 1, 6), max_reject_rate=0.5)
    assert (report.loaded, report.already_loaded, report.rejected) == (3, 1, 1)
    [(source, reason, _)] = rejects(con)
    assert source.endswith("day2.parquet:2") and reason == "duplicate event_id with different content"
    props = con.execute("SELECT properties->>'n' FROM analytics.event_snapshots WHERE event_id = 'e4'").fetchone()[0]
    assert props == "4"
    # Re-reading the same files (touched) records nothing new.
    (tmp_path / "day2.parquet").touch()
    assert load(con, tmp_path / "*", day=date(2026, 1, 6), max_reject_rate=0.5).rejected == 0
    assert len(rejects(con)) == 1


def test_events_from_the_1970s_and_1990s_load(tmp_path, con):
    from datetime import datetime

    rows = make_events(50, start=datetime(1970, 1, 1, 0, 1)) + make_events(50, start=datetime(1995, 3, 1), prefix="n")
    write_events(tmp_path / "old.parquet", rows)
    report = load(con, tmp_path / "old.parquet", day=date(1995, 3, 1), max_reject_rate=0)
    assert report.loaded == 100
    first, last = con.execute("SELECT min(ts), max(ts) FROM analytics.event_snapshots").fetchone()
    assert first == datetime(1970, 1, 1, 0, 1) and last.date() == date(1995, 3, 1)


def test_a_broken_profiles_file_stops_the_profile_load_with_one_line(tmp_path, con):
    from segment_pipeline.ingest.sources import SourceError

    (tmp_path / "a.csv").write_text("user_id,plan\nu1,free\n")
    (tmp_path / "b.parquet").write_bytes(b"")
    with pytest.raises(SourceError) as failed:
        load_profiles(con, discover(str(tmp_path / "*"), env_var="P"), snapshot_date=DAY)
    message = str(failed.value)
    assert "\n" not in message and "b.parquet: unreadable file: not a Parquet file" in message
    assert "fix or remove this file" in message
