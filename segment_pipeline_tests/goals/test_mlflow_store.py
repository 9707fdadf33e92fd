"""The MLflow store survives a kill -9 in its creation window, and an old half-built one is rebuilt."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from segment_pipeline.goals.mlflow_store import ensure_sqlite_store

CREATE = (
    "import sys; from pathlib import Path; from segment_pipeline.goals.mlflow_store import ensure_sqlite_store; "
    "print('start', flush=True); ensure_sqlite_store(Path(sys.argv[1])); print('done', flush=True)"
)


def _usable(database: Path) -> str:
    """Log a run and register a model version: what a goal's night does with the store."""
    import mlflow
    from mlflow import MlflowClient

    uri = f"sqlite:///{database}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.create_experiment(f"e{time.monotonic_ns()}", artifact_location=(database.parent / "a").as_uri())
    run = client.create_run(experiment)
    client.log_metric(run.info.run_id, "auc", 0.8)
    client.set_terminated(run.info.run_id)
    name = f"m{time.monotonic_ns()}"
    client.create_registered_model(name)
    assert mlflow.__version__
    return client.get_run(run.info.run_id).info.status


def _revision(database: Path) -> str:
    with sqlite3.connect(database) as con:
        return con.execute("SELECT version_num FROM alembic_version").fetchone()[0]


@pytest.mark.slow
def test_kill_9_at_random_moments_of_the_creation_never_leaves_an_unusable_store(tmp_path: Path) -> None:
    reference = tmp_path / "reference" / "mlflow.db"
    started = time.monotonic()
    subprocess.run([sys.executable, "-c", CREATE, str(reference)], check=True, capture_output=True)
    window = time.monotonic() - started
    head = _revision(reference)

    rng = random.Random(7)
    killed_midway = 0
    for trial in range(6):
        database = tmp_path / f"t{trial}" / "mlflow.db"
        proc = subprocess.Popen([sys.executable, "-c", CREATE, str(database)], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "start"
        time.sleep(rng.uniform(0, window * 0.8))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        killed_midway += not database.exists()
        ensure_sqlite_store(database)  # what the next run does first
        assert _revision(database) == head
        assert _usable(database) == "FINISHED"
    assert killed_midway >= 1  # at least one kill landed inside the creation window


def test_a_half_migrated_store_without_runs_is_rebuilt_and_kept_aside(tmp_path: Path) -> None:
    import sqlalchemy
    from alembic import command
    from mlflow.store.db.utils import _get_alembic_config
    from mlflow.store.tracking.dbmodels.initial_models import Base as InitialBase

    database = tmp_path / "mlflow.db"
    engine = sqlalchemy.create_engine(f"sqlite:///{database}")
    InitialBase.metadata.create_all(engine)
    config = _get_alembic_config(str(engine.url))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "90e64c465722")  # the first few migrations, as a killed creation leaves it
    engine.dispose()

    ensure_sqlite_store(database)
    assert _usable(database) == "FINISHED"
    assert len(list(tmp_path.glob("mlflow.db.incomplete-*"))) == 1


def test_a_store_that_cannot_be_upgraded_is_an_infrastructure_error_naming_it(tmp_path: Path) -> None:
    from segment_pipeline.goals.mlflow_store import TrackingStoreError

    database = tmp_path / "mlflow.db"
    ensure_sqlite_store(database)
    _usable(database)
    with sqlite3.connect(database) as con:
        con.execute("UPDATE alembic_version SET version_num = 'not-a-revision'")
    with pytest.raises(TrackingStoreError, match=rf"MLflow store {database} holds runs .*mlflow db upgrade"):
        ensure_sqlite_store(database)
