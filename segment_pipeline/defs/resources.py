"""Resources: the warehouse and the event sources, chosen from the environment in one place."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb

from segment_pipeline.config.errors import ConfigError
from segment_pipeline.config.project import ProjectConfig, load_project_config
from segment_pipeline.demo.generator import DemoSpec, generate_demo
from segment_pipeline.ingest.sources import SourceFile, discover
from segment_pipeline.settings import load_settings
from segment_pipeline.storage import warehouse


class WarehouseResource(dg.ConfigurableResource):
    """The DuckDB file that holds every ``analytics`` table."""

    path: str

    @contextmanager
    def connect(self, *, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        with warehouse.connect(Path(self.path), read_only=read_only) as con:
            yield con


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
        if self.uses_demo:
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
    """The MLflow tracking store and model registry (a local SQLite store under data/ by default)."""

    tracking_uri: str


class ExportResource(dg.ConfigurableResource):
    """Where Parquet copies of the analytics tables go after each run (none: no export)."""

    export_dir: str | None = None


class LiveResource(dg.ConfigurableResource):
    """Live segments: the webhook entries are POSTed to (SEGMENT_PIPELINE_WEBHOOK_URL; none: kept,
    not sent), how late an event may arrive and still count, and the delivery retries."""

    webhook_url: str | None = None
    late_tolerance_seconds: int = 30
    max_attempts: int = 8
    base_delay_s: float = 2.0
    timeout_s: float = 5.0


def default_resources() -> dict[str, dg.ConfigurableResource]:
    settings = load_settings()
    return {
        "warehouse": WarehouseResource(path=str(settings.warehouse)),
        "sources": EventSourcesResource(
            events=settings.events,
            profiles=settings.profiles,
            demo_dir=str(settings.demo_dir),
            max_reject_rate=settings.max_reject_rate,
        ),
        "project_config": ConfigResource(config_dir=str(settings.config_dir)),
        "mlflow": MLflowResource(tracking_uri=settings.mlflow_tracking_uri),
        "live_config": LiveResource(webhook_url=settings.webhook_url, late_tolerance_seconds=settings.live_late_tolerance_seconds),
        "exports": ExportResource(export_dir=str(settings.export_dir) if settings.export_dir else None),
    }


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources=default_resources())
