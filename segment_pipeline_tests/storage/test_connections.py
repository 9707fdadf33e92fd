"""No DuckDB progress bar on stdout: a worker whose stdout is read must not see one.

DuckDB draws its bar on the process's stdout (from C++, past Python's sys.stdout) once a
query has run for 2 s. A query of over 4 s through ``open_duckdb`` must leave stdout empty;
the control, the same query on a plain ``duckdb.connect``, shows the bar does reach a piped
stdout, so the empty stdout means the setting held, not that no bar was due.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from segment_pipeline.live import store
from segment_pipeline.storage import warehouse
from segment_pipeline.storage.connections import open_duckdb

SLOW_QUERY = """
import sys, time

def run_slow_query(con, at_least_s=4.0):
    con.execute("CREATE OR REPLACE TEMP TABLE t AS SELECT range AS x FROM range(1000000)")
    repeat = 4
    while True:
        started = time.monotonic()
        con.execute("SELECT sum(hash(t.x * 31 + s.range)) FROM t, range(?) s", [repeat]).fetchall()
        elapsed = time.monotonic() - started
        if elapsed >= at_least_s:
            print(f"{elapsed:.1f}", file=sys.stderr)
            return
        repeat = int(repeat * max(1.5, 1.3 * at_least_s / max(elapsed, 0.01)))
"""


def _stdout_of_a_slow_query(open_connection: str) -> str:
    code = textwrap.dedent(SLOW_QUERY) + textwrap.dedent(open_connection) + "run_slow_query(con)\n"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert float(done.stderr.strip().splitlines()[-1]) >= 4.0, done.stderr
    return done.stdout


@pytest.mark.slow
def test_a_query_over_two_seconds_writes_nothing_to_stdout() -> None:
    opened = "from segment_pipeline.storage.connections import open_duckdb\ncon = open_duckdb()\n"
    assert _stdout_of_a_slow_query(opened) == ""


@pytest.mark.slow
def test_without_the_setting_the_bar_reaches_a_piped_stdout() -> None:
    assert "100%" in _stdout_of_a_slow_query("import duckdb\ncon = duckdb.connect()\n")


@pytest.mark.parametrize("opener", ["open_duckdb", "warehouse", "live store"])
def test_every_way_the_project_opens_duckdb_turns_the_bar_off(tmp_path: Path, opener: str) -> None:
    connections = {
        "open_duckdb": lambda: open_duckdb(tmp_path / "any.duckdb"),
        "warehouse": lambda: warehouse.connect(tmp_path / "warehouse.duckdb", memory_limit="1GB"),
        "live store": lambda: store.connect(tmp_path / "live.duckdb"),
    }
    with connections[opener]() as con:
        settings = dict(
            con.execute(
                "SELECT name, value FROM duckdb_settings() WHERE name IN (?, ?)", ["enable_progress_bar", "TimeZone"]
            ).fetchall()
        )
    assert settings == {"enable_progress_bar": "false", "TimeZone": "UTC"}
