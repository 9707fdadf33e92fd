"""Resources: the warehouse and the event sources, chosen from the environment in one place."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import dagster as dg
import duckdb
from pydantic import PrivateAttr

from segment_pipeline.config.errors import ConfigError
from segment_pipeline.config.project import ProjectConfig, load_project_config
from segment_pipeline.defs.failures import input_errors_as_failures
from segment_pipeline.demo.generator import DemoSpec, generate_demo
from segment_pipeline.ingest.sources import SourceFile, discover
from segment_pipeline.live.outbox import RETRY_SCHEDULE_S
from segment_pipeline.live.publish import copy_live_tables
from segment_pipeline.settings import (
    DEFAULT_MLFLOW_UI_URL,
    LIVE_LATE_TOLERANCE_SECONDS,
    WEBHOOK_SECRET_VARIABLE,
    WEBHOOK_URL_VARIABLE,
    load_settings,
)
from segment_pipeline.storage import publish, warehouse
from segment_pipeline.storage.location import check_writable_warehouse


class WarehouseResource(dg.ConfigurableResource):
    """The DuckDB file that holds every ``analytics`` table.

    In a run, every step works on the run's private copy, published by atomic rename when
    no step failed (``storage/publish.py``); readers of the file never see a half-done day
    and never block the run. Outside a run, ``connect`` opens the published file.

    Not ``dagster_duckdb.DuckDBResource``: that opens one fixed path read-write, and its
    ``connection_config`` goes to ``duckdb.connect``, where DuckDB refuses the progress bar
    (a session option) and the time zone (needs ICU loaded); this design needs read-only
    connections, the run's private copy, the lock and the publish (README, Readers and writers).
    """

    path: str
    lock_wait_seconds: int = 3600
    # The live sensor's own file: its tables are copied in right before each publish.
    live_store: str | None = None

    _context: dg.InitResourceContext | None = PrivateAttr(default=None)
    _build: publish.Build | None = PrivateAttr(default=None)
    _stack: ExitStack | None = PrivateAttr(default=None)

    @contextmanager
    def yield_for_execution(self, context: dg.InitResourceContext) -> Iterator[WarehouseResource]:
        if context.run_id is None:  # not in a run (a sensor, a direct call): the published file
            yield self
            return
        # The private copy is made by the first step that connects, so a lock that cannot be
        # had or a path that cannot be written fails that step with its message.
        self._context, self._stack = context, ExitStack()
        try:
            with self._stack:
                yield self
                if self._build is not None:
                    self._publish_unless_a_step_failed(context, self._build)
        finally:
            self._context, self._build, self._stack = None, None, None

    def _publish_unless_a_step_failed(self, context: dg.InitResourceContext, build: publish.Build) -> None:
        instance, log, live_store = context.instance, context.log, self.live_store
        assert context.run_id is not None and instance is not None and log is not None  # a run's resources have them
        if instance.get_records_for_run(context.run_id, of_type={dg.DagsterEventType.STEP_FAILURE}, limit=1).records:
            log.warning("a step failed: the warehouse keeps its last published state")
            return
        if live_store:
            build.before_publish.append(lambda con: log.info(copy_live_tables(con, live_store).summary()))
        build.publish()
        log.info(f"published {self.path}")

    def _private_copy(self) -> Path:
        context, stack = self._context, self._stack
        if context is None or stack is None:
            return Path(self.path)
        if self._build is None:
            instance, log = context.instance, context.log
            assert instance is not None and log is not None  # set only in a run, whose resources have them
            with input_errors_as_failures():
                self._build = stack.enter_context(
                    publish.private_build(
                        Path(self.path),
                        owner=f"run-{context.run_id}",
                        wait_s=self.lock_wait_seconds,
                        on_wait=log.warning,
                        on_acquired=lambda previous: _mark_killed_run_failed(instance, previous),
                    )
                )
        return self._build.working

    @contextmanager
    def connect(self, *, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        target = self._private_copy()
        if not read_only and target == Path(self.path):
            # A wrong SEGMENT_PIPELINE_WAREHOUSE is the user's to fix: one line, not an OSError.
            with input_errors_as_failures():
                check_writable_warehouse(target)
        with warehouse.connect(target, read_only=read_only) as con:
            yield con


def _mark_killed_run_failed(instance: dg.DagsterInstance, previous: publish.LockHolder | None) -> None:
    """A run killed while it held the warehouse stays STARTED forever and blocks the queue."""
    if previous is None or not previous.owner.startswith("run-") or previous.is_alive_here:
        return
    run = instance.get_run_by_id(previous.owner.removeprefix("run-"))
    if run is not None and run.status in (dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING):
        instance.report_run_failed(
            run,
            f"the run's process (pid {previous.pid}) died while it held the warehouse; nothing it wrote was published",
        )


class EventSourcesResource(dg.ConfigurableResource):
    """Where events and profiles come from: your files, or the built-in demo generator."""

    events: str | None = None
    profiles: str | None = None
    demo_dir: str
    demo_users: int = DemoSpec().users
    demo_days: int = DemoSpec().days
    max_reject_rate: float = 0.01

    @property
    def uses_demo(self) -> bool:
        return self.events is None

    def _demo(self):
        spec = DemoSpec(users=self.demo_users, days=self.demo_days)
        return generate_demo(Path(self.demo_dir), spec)

    def event_files(self) -> list[SourceFile]:
        if self.events is None:
            return discover(self._demo().events_glob, env_var="SEGMENT_PIPELINE_EVENTS (demo)")
        return discover(self.events, env_var="SEGMENT_PIPELINE_EVENTS")

    def profile_files(self) -> list[SourceFile]:
        if self.profiles is not None:
            return discover(self.profiles, env_var="SEGMENT_PIPELINE_PROFILES")
        if self.uses_demo:
            return discover(str(self._demo().profiles_path), env_var="SEGMENT_PIPELINE_PROFILES (demo)")
        return []


class ConfigResource(dg.ConfigurableResource):
    """The folder of segments.yaml, goals.yaml and scores.yaml (SEGMENT_PIPELINE_CONFIG)."""

    config_dir: str

    def load(self) -> ProjectConfig:
        """The validated config; a broken one fails the step with the problems listed, no stack trace.

        Every step calls this; the folder is validated once per content of its files
        (``load_project_config`` keeps the result), so a run validates it once."""
        try:
            return load_project_config(Path(self.config_dir))
        except ConfigError as exc:
            raise dg.Failure(description=str(exc), allow_retries=False) from exc


class MLflowResource(dg.ConfigurableResource):
    """The MLflow tracking store and model registry (a local SQLite store under data/ by default),
    and the MLflow UI address that links in the metadata point at (SEGMENT_PIPELINE_MLFLOW_UI_URL)."""

    tracking_uri: str
    ui_url: str = DEFAULT_MLFLOW_UI_URL


class ExportResource(dg.ConfigurableResource):
    """Where Parquet copies of the analytics tables go after each run (none: no export)."""

    export_dir: str | None = None


class LiveResource(dg.ConfigurableResource):
    """Live segments: the sensor's own DuckDB file (SEGMENT_PIPELINE_LIVE_STORE), the webhook
    entries are POSTed to (SEGMENT_PIPELINE_WEBHOOK_URL; none: kept, not sent) and its signing
    secret (SEGMENT_PIPELINE_WEBHOOK_SECRET; none: unsigned), how late an event may arrive and
    still count, the time per request and per tick, requests in flight at once, and the waits
    between retries."""

    store_path: str
    webhook_url: str | None = None
    webhook_secret: str | None = None
    late_tolerance_seconds: int = LIVE_LATE_TOLERANCE_SECONDS
    timeout_s: float = 5.0
    tick_budget_s: float = 20.0
    concurrency: int = 4  # requests in flight at once, so a slow receiver still keeps up
    retry_schedule_s: list[float] = list(RETRY_SCHEDULE_S)  # noqa: RUF012 (a pydantic field: copied per instance)


def default_resources() -> dict[str, dg.ConfigurableResource]:
    settings = load_settings()
    return {
        "warehouse": WarehouseResource(
            path=str(settings.warehouse),
            lock_wait_seconds=settings.lock_wait_seconds,
            live_store=str(settings.live_store),
        ),
        "sources": EventSourcesResource(
            events=settings.events,
            profiles=settings.profiles,
            demo_dir=str(settings.demo_dir),
            max_reject_rate=settings.max_reject_rate,
        ),
        "project_config": ConfigResource(config_dir=str(settings.config_dir)),
        "mlflow": MLflowResource(tracking_uri=settings.mlflow_tracking_uri, ui_url=settings.mlflow_ui_url),
        "live_config": LiveResource(
            store_path=str(settings.live_store),
            # By name, so the UI shows the variables, not the receiver's address or the secret
            # (both validated by load_settings above).
            webhook_url=dg.EnvVar(WEBHOOK_URL_VARIABLE) if settings.webhook_url else None,
            webhook_secret=dg.EnvVar(WEBHOOK_SECRET_VARIABLE) if settings.webhook_secret else None,
            late_tolerance_seconds=settings.live_late_tolerance_seconds,
            tick_budget_s=settings.live_tick_budget_seconds,
        ),
        "exports": ExportResource(export_dir=str(settings.export_dir) if settings.export_dir else None),
    }


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources=default_resources())
