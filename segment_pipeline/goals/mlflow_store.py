"""The local MLflow store is created whole or not at all.

MLflow builds a new SQLite store by running dozens of schema migrations, which take
seconds; a process killed in between leaves a half-migrated ``mlflow.db`` that MLflow
refuses from then on ("out-of-date database schema"), every night. So the store is built
under another name and renamed into place once it is at the newest schema, under a file
lock so two processes never build it at once. A store found below the newest schema is
upgraded when it holds runs, and rebuilt when it holds nothing (the leftover of an old crash).
"""

from __future__ import annotations

import fcntl
import functools
import logging
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


@functools.cache
def mlflow_module() -> Any:
    """``mlflow``, imported on first use (it costs seconds), with its telemetry off."""
    # MLflow decides on telemetry when it is first imported, so say no before; set here, not
    # at import of a module of ours: nothing is written at import time.
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow

    return mlflow


class TrackingStoreError(RuntimeError):
    """The MLflow store cannot be used: an infrastructure failure, never a goal's own problem."""


def ensure_sqlite_store(database: Path) -> None:
    """Make ``database`` a complete MLflow store at the newest schema (no-op when it is one)."""
    head = _newest_revision()
    if _revision(database) == head:
        return
    with _locked(database.with_name(database.name + ".lock")):
        current = _revision(database)
        if current == head:
            return
        if database.exists():
            if _holds_runs(database):
                _upgrade(database)
                return
            # Nothing worth keeping (an interrupted creation): keep it aside for inspection.
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
            os.replace(database, database.with_name(f"{database.name}.incomplete-{stamp}"))
        _create(database)


def _create(database: Path) -> None:
    import sqlalchemy

    mlflow_module()
    from mlflow.store.db.utils import _initialize_tables

    building = database.with_name(f".{database.name}.creating-{os.getpid()}")
    with suppress(FileNotFoundError):
        building.unlink()
    engine = sqlalchemy.create_engine(f"sqlite:///{building}")
    quiet = logging.getLogger("mlflow.store.db.utils")
    level = quiet.level
    quiet.setLevel(logging.WARNING)  # its "Creating initial tables" lines are not news to the user
    try:
        _initialize_tables(engine)
    finally:
        quiet.setLevel(level)
        engine.dispose()
    fd = os.open(building, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(building, database)


def _upgrade(database: Path) -> None:
    import sqlalchemy

    mlflow_module()
    from mlflow.store.db.utils import _upgrade_db

    engine = sqlalchemy.create_engine(f"sqlite:///{database}")
    try:
        _upgrade_db(engine)
    except Exception as exc:
        raise TrackingStoreError(
            f"the MLflow store {database} holds runs but is at an old or broken schema and could not be "
            f"upgraded ({type(exc).__name__}: {str(exc).splitlines()[0]}); back it up, then run "
            f"`mlflow db upgrade sqlite:///{database}` or move it away to start a new store"
        ) from exc
    finally:
        engine.dispose()


@functools.cache
def _newest_revision() -> str:
    """The installed MLflow's newest schema revision: fixed for the process, and reading it loads
    every migration script (0.15-0.2 s, ten times a night that trains three goals)."""
    mlflow_module()
    from mlflow.store.db.utils import _get_latest_schema_revision

    return _get_latest_schema_revision()


def _revision(database: Path) -> str | None:
    if not database.exists():
        return None
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as con:
            rows = con.execute("SELECT version_num FROM alembic_version").fetchall()
    except sqlite3.Error:
        return None
    return rows[0][0] if len(rows) == 1 else None


def _holds_runs(database: Path) -> bool:
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as con:
            runs = con.execute("SELECT count(*) FROM runs").fetchone()[0]
            models = con.execute("SELECT count(*) FROM registered_models").fetchone()[0]
    except sqlite3.Error:
        return False
    return bool(runs or models)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
