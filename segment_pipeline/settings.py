"""Where the pipeline reads and writes, from environment variables (contract section 2).

Every setting is optional: with none set, the pipeline runs on the built-in demo data
and writes a DuckDB file and an MLflow store under ``data/`` in the project root.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
# The contract's earliest day (section 2): history from the Unix epoch on.
EARLIEST_START_DATE = date(1970, 1, 1)
BUNDLED_CONFIG_DIR = PACKAGE_DIR / "demo" / "config"


def project_root() -> Path:
    """The checkout this package lives in, or the working directory for a wheel install."""
    candidate = PACKAGE_DIR.parent
    if (candidate / "pyproject.toml").exists():
        return candidate
    return Path.cwd()


class SettingsError(ValueError):
    """An environment variable holds a value the pipeline cannot use."""


@dataclass(frozen=True)
class Settings:
    events: str | None
    profiles: str | None
    config_dir: Path
    warehouse: Path
    data_dir: Path
    mlflow_tracking_uri: str
    webhook_url: str | None
    max_reject_rate: float
    start_date: date
    export_dir: Path | None
    live_tick_seconds: int
    live_late_tolerance_seconds: int

    @property
    def uses_demo_data(self) -> bool:
        return self.events is None

    @property
    def demo_dir(self) -> Path:
        return self.data_dir / "demo"


def _env(name: str, environ: dict[str, str]) -> str | None:
    value = environ.get(name, "").strip()
    return value or None


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    """Read the contract's environment variables, filling in the embedded defaults."""
    env = dict(os.environ if environ is None else environ)
    root = project_root()
    data_dir = root / "data"

    warehouse = Path(_env("SEGMENT_PIPELINE_WAREHOUSE", env) or data_dir / "warehouse.duckdb")
    if not warehouse.is_absolute():
        warehouse = root / warehouse

    raw_rate = _env("SEGMENT_PIPELINE_MAX_REJECT_RATE", env) or "0.01"
    try:
        max_reject_rate = float(raw_rate)
    except ValueError as exc:
        raise SettingsError(
            f"SEGMENT_PIPELINE_MAX_REJECT_RATE={raw_rate!r} is not a number; "
            "set it to a share between 0 and 1, e.g. 0.01"
        ) from exc
    if not 0 <= max_reject_rate <= 1:
        raise SettingsError(
            f"SEGMENT_PIPELINE_MAX_REJECT_RATE={raw_rate!r} is outside [0, 1]; "
            "it is a share of rows, e.g. 0.01 for 1%"
        )

    raw_start = _env("SEGMENT_PIPELINE_START_DATE", env) or "2025-01-01"
    try:
        start_date = date.fromisoformat(raw_start)
    except ValueError as exc:
        raise SettingsError(
            f"SEGMENT_PIPELINE_START_DATE={raw_start!r} is not a YYYY-MM-DD date"
        ) from exc
    if start_date < EARLIEST_START_DATE:
        raise SettingsError(
            f"SEGMENT_PIPELINE_START_DATE={raw_start!r} is before {EARLIEST_START_DATE}; "
            f"set it to a day from {EARLIEST_START_DATE} on"
        )

    config_dir = Path(_env("SEGMENT_PIPELINE_CONFIG", env) or BUNDLED_CONFIG_DIR)
    return Settings(
        events=_env("SEGMENT_PIPELINE_EVENTS", env),
        profiles=_env("SEGMENT_PIPELINE_PROFILES", env),
        config_dir=config_dir,
        warehouse=warehouse,
        data_dir=data_dir,
        mlflow_tracking_uri=_env("MLFLOW_TRACKING_URI", env)
        or (data_dir / "mlruns").as_uri(),
        webhook_url=_env("SEGMENT_PIPELINE_WEBHOOK_URL", env),
        max_reject_rate=max_reject_rate,
        start_date=start_date,
        export_dir=Path(export) if (export := _env("SEGMENT_PIPELINE_EXPORT_DIR", env)) else None,
        live_tick_seconds=_seconds("SEGMENT_PIPELINE_LIVE_TICK_SECONDS", env, default=30, low=10, high=600),
        live_late_tolerance_seconds=_seconds(
            "SEGMENT_PIPELINE_LIVE_LATE_TOLERANCE_SECONDS", env, default=30, low=0, high=86_400
        ),
    )


def _seconds(name: str, env: dict[str, str], *, default: int, low: int, high: int) -> int:
    raw = _env(name, env) or str(default)
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise SettingsError(f"{name}={raw!r} must be a whole number of seconds between {low} and {high} (e.g. {default})")
    return int(raw)
