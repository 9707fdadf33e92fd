"""The private-copy-and-publish cycle on real files, with real foreign processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import pytest

from segment_pipeline.storage import publish, warehouse
from segment_pipeline.storage.connections import open_duckdb


def _day(path: Path, n: int) -> None:
    with warehouse.connect(path) as con:
        con.execute("CREATE OR REPLACE TABLE analytics.t AS SELECT range AS i FROM range(?)", [n])


def _build_and_publish(path: Path, n: int, owner: str = "test") -> None:
    with publish.private_build(path, owner=owner, wait_s=5) as build:
        _day(build.working, n)
        build.publish()


def _count(con: duckdb.DuckDBPyConnection) -> int:
    return con.execute("SELECT count(*) FROM analytics.t").fetchone()[0]


def _python(code: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], stdout=subprocess.PIPE, text=True)


def test_a_reader_holding_the_file_sees_the_old_day_until_it_reconnects(tmp_path: Path) -> None:
    path = tmp_path / "warehouse.duckdb"
    _build_and_publish(path, 10)
    reader = open_duckdb(str(path), read_only=True)
    try:
        assert _count(reader) == 10
        _build_and_publish(path, 20)  # would raise DuckDB's lock error if it wrote the file in place
        assert _count(reader) == 10
    finally:
        reader.close()
    # DuckDB shares one database instance per path within a process: a new connection sees
    # the new day once the old instance is closed (another process sees it at once).
    with open_duckdb(str(path), read_only=True) as fresh:
        assert _count(fresh) == 20
    assert not list(tmp_path.glob(f".*{publish.BUILD_MARK}*"))


def test_a_reader_in_another_process_does_not_block_the_build(tmp_path: Path) -> None:
    path = tmp_path / "warehouse.duckdb"
    _build_and_publish(path, 3)
    reader = _python(f"""
        import duckdb, time
        con = duckdb.connect({str(path)!r}, read_only=True)
        print(con.sql("SELECT count(*) FROM analytics.t").fetchone()[0], flush=True)
        time.sleep(30)
    """)
    try:
        assert reader.stdout.readline().strip() == "3"
        _build_and_publish(path, 7)
        with open_duckdb(str(path), read_only=True) as con:
            assert _count(con) == 7
        other = _python(f"""
            import duckdb
            print(duckdb.connect({str(path)!r}, read_only=True).sql("SELECT count(*) FROM analytics.t").fetchone()[0])
        """)
        assert other.communicate(timeout=60)[0].strip() == "7"
    finally:
        reader.kill()
        reader.wait()


def test_an_unpublished_build_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "warehouse.duckdb"
    _build_and_publish(path, 5)

    def a_step_fails() -> None:
        with publish.private_build(path, owner="failing", wait_s=5) as build:
            _day(build.working, 99)
            raise RuntimeError("a step failed")

    with pytest.raises(RuntimeError, match="a step failed"):
        a_step_fails()
    with open_duckdb(str(path), read_only=True) as con:
        assert _count(con) == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["warehouse.duckdb", "warehouse.duckdb.lock"]


def test_a_second_builder_waits_then_fails_naming_the_holder(tmp_path: Path) -> None:
    path = tmp_path / "warehouse.duckdb"
    _build_and_publish(path, 1)
    holder = _python(f"""
        import time
        from pathlib import Path
        from segment_pipeline.storage import publish
        with publish.private_build(Path({str(path)!r}), owner="run-first", wait_s=5):
            print("held", flush=True)
            time.sleep(30)
    """)
    try:
        assert holder.stdout.readline().strip() == "held"
        notices: list[str] = []
        started = time.monotonic()
        with (
            pytest.raises(publish.WarehouseBusy, match=rf"held by run-first \(pid {holder.pid} "),
            publish.private_build(path, owner="run-second", wait_s=1.5, on_wait=notices.append),
        ):
            pass
        assert time.monotonic() - started >= 1.5
        assert notices and "run-first" in notices[0]
    finally:
        holder.kill()
        holder.wait()
    _build_and_publish(path, 2, owner="run-second")  # the kernel released the dead holder's lock


def test_a_builder_killed_mid_write_leaves_the_published_day_and_its_leftovers_are_removed(tmp_path: Path) -> None:
    path = tmp_path / "warehouse.duckdb"
    _build_and_publish(path, 4)
    victim = _python(f"""
        import time
        from pathlib import Path
        from segment_pipeline.storage import publish, warehouse
        with publish.private_build(Path({str(path)!r}), owner="run-victim", wait_s=5) as build:
            with warehouse.connect(build.working) as con:
                con.execute("CREATE OR REPLACE TABLE analytics.t AS SELECT range AS i FROM range(1000)")
                print("written", flush=True)
                time.sleep(30)
    """)
    assert victim.stdout.readline().strip() == "written"
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    assert list(tmp_path.glob(f".*{publish.BUILD_MARK}*"))
    with open_duckdb(str(path), read_only=True) as con:
        assert _count(con) == 4
    assert publish.read_holder(path).owner == "run-victim"
    assert not publish.read_holder(path).is_alive_here

    with publish.private_build(path, owner="next", wait_s=5) as build:
        assert not [p for p in tmp_path.glob(f".*{publish.BUILD_MARK}*") if p != build.working]
        with warehouse.connect(build.working) as con:
            assert _count(con) == 4


def test_a_foreign_writer_is_named_after_the_wait(tmp_path: Path) -> None:
    path = tmp_path / "warehouse.duckdb"
    _build_and_publish(path, 1)
    writer = _python(f"""
        import duckdb, time
        con = duckdb.connect({str(path)!r})
        print("open", flush=True)
        time.sleep(30)
    """)
    try:
        assert writer.stdout.readline().strip() == "open"
        with (
            pytest.raises(publish.WarehouseBusy, match=rf"holds {path} for writing .*PID {writer.pid}"),
            publish.private_build(path, owner="run", wait_s=1),
        ):
            pass
    finally:
        writer.kill()
        writer.wait()


def test_a_warehouse_path_that_cannot_be_used_says_which_and_why(tmp_path: Path) -> None:
    from segment_pipeline.storage.location import WarehouseLocationError

    (tmp_path / "blocker").write_text("a file where a folder should be")
    with (
        pytest.raises(WarehouseLocationError, match=r"blocker is a file where a folder should be"),
        publish.private_build(tmp_path / "blocker" / "w.duckdb", owner="run", wait_s=1),
    ):
        pass
    (tmp_path / "adir.duckdb").mkdir()
    with (
        pytest.raises(WarehouseLocationError, match="is a folder"),
        publish.private_build(tmp_path / "adir.duckdb", owner="run", wait_s=1),
    ):
        pass
