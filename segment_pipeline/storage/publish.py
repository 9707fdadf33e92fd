"""Readers and writers apart: a run builds in a private copy and publishes it by atomic rename.

DuckDB lets one process write a file and refuses a writer while any other process reads
it, so BI tools, notebooks and the DuckDB CLI holding ``warehouse.duckdb`` open would
otherwise kill the nightly run. Instead, the published file is never opened for writing:

1. a run takes the warehouse's lock (``<warehouse>.lock``, an ``flock`` held for the whole
   run, so a second run waits with a message naming the first, then fails naming it);
2. it copies the published file to ``.<name>.build-<owner>`` in the same folder while
   holding a read-only DuckDB connection on it (so no foreign writer changes it meanwhile);
3. every step of the run reads and writes that private copy;
4. only a run with no failed step publishes: checkpoint, fsync, ``os.replace`` over the
   published name, fsync the folder. A crash anywhere leaves the last published state.

Readers that opened the old file keep reading it (the old inode lives on until they close),
new readers see the new day: a reader sees one published state, never a half-written day.
The price is one file copy per run (sequential I/O, seconds per GB) and twice the disk
during a run.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from segment_pipeline.storage import warehouse
from segment_pipeline.storage.connections import open_duckdb
from segment_pipeline.storage.location import check_writable_warehouse

BUILD_MARK = ".build-"


class WarehouseBusy(RuntimeError):
    """Another process holds the warehouse longer than we are willing to wait."""


@dataclass(frozen=True)
class LockHolder:
    pid: int
    host: str
    owner: str
    since: str

    def describe(self) -> str:
        return f"{self.owner} (pid {self.pid} on {self.host}, since {self.since})"

    @property
    def is_alive_here(self) -> bool:
        if self.host != socket.gethostname():
            return True  # cannot tell: assume it is
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def lock_path(published: Path) -> Path:
    return published.with_name(published.name + ".lock")


def read_holder(published: Path) -> LockHolder | None:
    """Who holds (or last held) the warehouse lock, from the lock file's text."""
    try:
        data = json.loads(lock_path(published).read_text() or "{}")
        return LockHolder(int(data["pid"]), str(data["host"]), str(data["owner"]), str(data["since"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


@dataclass
class WarehouseLock:
    """An exclusive ``flock`` on ``<warehouse>.lock``: released by the kernel when the process dies."""

    published: Path
    owner: str
    _fd: int | None = None
    previous: LockHolder | None = None

    def acquire(self, *, wait_s: float, on_wait: Callable[[str], None] = lambda _: None) -> None:
        path = lock_path(self.published)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise WarehouseBusy(
                f"cannot create the warehouse lock {path}: {exc.strerror}; "
                "point SEGMENT_PIPELINE_WAREHOUSE at a writable folder"
            ) from exc
        deadline = time.monotonic() + wait_s
        delay, next_notice = 0.2, 0.0
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = read_holder(self.published)
                what = holder.describe() if holder else "another process"
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise WarehouseBusy(
                        f"the warehouse {self.published} is held by {what}; waited {wait_s:.0f} s. "
                        "Wait for it to finish or stop it (SEGMENT_PIPELINE_LOCK_WAIT_SECONDS sets the wait)"
                    ) from None
                if time.monotonic() >= next_notice:
                    on_wait(f"waiting for the warehouse {self.published.name}: held by {what}")
                    next_notice = time.monotonic() + 30
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
        self.previous = read_holder(self.published)
        record = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "owner": self.owner,
            "since": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


@dataclass
class Build:
    """A run's private copy of the warehouse; ``publish`` makes it the warehouse."""

    published: Path
    working: Path
    before_publish: list[Callable[[duckdb.DuckDBPyConnection], None]] = field(default_factory=list)

    def publish(self) -> None:
        with warehouse.connect(self.working) as con:
            for hook in self.before_publish:
                hook(con)
            con.execute("CHECKPOINT")
        _fsync(self.working)
        os.replace(self.working, self.published)
        _fsync(self.published.parent)

    def discard(self) -> None:
        for path in (self.working, _wal(self.working)):
            with suppress(FileNotFoundError):
                path.unlink()
        shutil.rmtree(warehouse.temp_directory(self.working), ignore_errors=True)


def working_path(published: Path, owner: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in owner)[:64]
    return published.with_name(f".{published.name}{BUILD_MARK}{safe}")


@contextmanager
def private_build(
    published: Path,
    *,
    owner: str,
    wait_s: float,
    on_wait: Callable[[str], None] = lambda _: None,
    on_acquired: Callable[[LockHolder | None], None] = lambda _: None,
) -> Iterator[Build]:
    """Lock the warehouse, copy it privately, yield the build; discard it unless published.

    The caller publishes (``build.publish()``) when its work succeeded; an exception or a
    crash leaves the published file as it was, and the next build removes the leftovers.
    """
    published = Path(published)
    check_writable_warehouse(published)
    lock = WarehouseLock(published, owner)
    lock.acquire(wait_s=wait_s, on_wait=on_wait)
    try:
        on_acquired(lock.previous)
        _remove_stale_builds(published)
        build = Build(published, working_path(published, owner))
        _copy_consistently(published, build.working, wait_s=wait_s, on_wait=on_wait)
        try:
            yield build
        finally:
            build.discard()  # after a publish the working name no longer exists
    finally:
        lock.release()


def _remove_stale_builds(published: Path) -> None:
    # Only a lock holder gets here, so every build file present belongs to a dead run.
    for path in published.parent.glob(f".{published.name}{BUILD_MARK}*"):
        if path.is_dir():  # a dead run's spill folder (warehouse.temp_directory)
            shutil.rmtree(path, ignore_errors=True)
            continue
        with suppress(FileNotFoundError):
            path.unlink()


def _copy_consistently(published: Path, working: Path, *, wait_s: float, on_wait: Callable[[str], None]) -> None:
    if not published.exists():
        return
    if _wal(published).exists():
        # Written by something other than a publish (an older version, a manual write):
        # fold the log into the file first, or the copy would miss it.
        with _retrying_open(published, read_only=False, wait_s=wait_s, on_wait=on_wait) as con:
            con.execute("CHECKPOINT")
    # A read-only connection keeps foreign writers out while the bytes are copied.
    with _retrying_open(published, read_only=True, wait_s=wait_s, on_wait=on_wait):
        tmp = working.with_name(working.name + ".partial")
        shutil.copyfile(published, tmp)
        os.replace(tmp, working)


@contextmanager
def _retrying_open(
    path: Path, *, read_only: bool, wait_s: float, on_wait: Callable[[str], None]
) -> Iterator[duckdb.DuckDBPyConnection]:
    deadline = time.monotonic() + wait_s
    delay = 0.2
    while True:
        try:
            con = open_duckdb(path, read_only=read_only)
            break
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower():
                raise
            if time.monotonic() >= deadline:
                raise WarehouseBusy(
                    f"another process holds {path} for writing ({_holder_from_duckdb(exc)}); "
                    "readers must open it read-only: duckdb.connect(path, read_only=True)"
                ) from None
            on_wait(f"waiting for {path.name}: {_holder_from_duckdb(exc)}")
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
    try:
        warehouse.bound_memory(con, path)
        yield con
    finally:
        con.close()


def _holder_from_duckdb(exc: Exception) -> str:
    text = str(exc)
    start = text.find("Conflicting lock is held in")
    return text[start:].split("\n")[0].split(". See")[0] if start >= 0 else text.split("\n")[0]


def _wal(path: Path) -> Path:
    return path.with_name(path.name + ".wal")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
