"""The profile loader: current state, typed properties, last row wins, bad rows rejected."""

from __future__ import annotations

from datetime import date

import polars as pl

from segment_pipeline.ingest.profiles import load_profiles
from segment_pipeline.ingest.sources import discover

DAY = date(2026, 1, 5)


def test_profiles_from_mixed_files_last_row_wins_and_types_survive(tmp_path, con):
    src = tmp_path / "src"
    src.mkdir()
    pl.DataFrame(
        {"user_id": [1, 2, 3], "city": ["San Francisco", "Austin", "Paris"], "age": [31, 42, 25]}
    ).write_parquet(src / "a.parquet")
    (src / "b.csv").write_text('user_id,city,plan,"odd ""name"""\n3,Berlin,premium,x\n,Rome,free,y\n')
    report = load_profiles(con, discover(str(src / "*"), env_var="P"), snapshot_date=DAY)
    assert (report.profiles, report.rejected, report.duplicate_rows) == (3, 1, 1)
    got = con.execute("SELECT * FROM analytics.profiles ORDER BY user_id").pl()
    assert got.columns == ["user_id", "city", "age", "plan", 'odd "name"']
    assert got["city"].to_list() == ["San Francisco", "Austin", "Berlin"]
    assert got.schema["age"] == pl.Int64
    reason = con.execute("SELECT source, reason FROM analytics.rejected_events").fetchall()
    assert reason == [(str((src / "b.csv").resolve()) + ":2", "profile with empty user_id")]


def test_reload_replaces_state_and_does_not_duplicate_rejects(tmp_path, con):
    path = tmp_path / "p.ndjson"
    path.write_text('{"user_id": "u1", "plan": "free"}\n{"user_id": null, "plan": "x"}\n')
    load_profiles(con, discover(str(path), env_var="P"), snapshot_date=DAY)
    path.write_text('{"user_id": "u1", "plan": "premium"}\n{"user_id": null, "plan": "x"}\n')
    load_profiles(con, discover(str(path), env_var="P"), snapshot_date=date(2026, 1, 6))
    assert con.execute("SELECT user_id, plan FROM analytics.profiles").fetchall() == [("u1", "premium")]
    assert con.execute("SELECT count(*) FROM analytics.rejected_events").fetchone()[0] == 1


def test_no_profile_files_gives_an_empty_table(con):
    report = load_profiles(con, [], snapshot_date=DAY)
    assert report.profiles == 0
    assert con.execute("SELECT count(*) FROM analytics.profiles").fetchone()[0] == 0
