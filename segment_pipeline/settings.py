"""Where the pipeline reads and writes, from environment variables (contract section 2).

Every setting is optional: with none set, the pipeline runs on the built-in demo data
and writes a DuckDB file and an MLflow store under ``data/`` in the project root.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from urllib.parse import urlsplit

PACKAGE_DIR = Path(__file__).resolve().parent
# The contract's earliest day (section 2): history from the Unix epoch on.
EARLIEST_START_DATE = date(1970, 1, 1)
BUNDLED_CONFIG_DIR = PACKAGE_DIR / "demo" / "config"
LIVE_LATE_TOLERANCE_SECONDS = 30  # the default; the live engine's functions take the same
# The demo's first day (demo.generator.DemoSpec.start), kept here so settings import no generator.
DEMO_FIRST_DAY = date(2026, 1, 1)
OWN_DATA_FIRST_DAY = date(2025, 1, 1)
DEFAULT_MLFLOW_UI_URL = "http://127.0.0.1:5000"
WEBHOOK_URL_VARIABLE = "SEGMENT_PIPELINE_WEBHOOK_URL"
WEBHOOK_SECRET_VARIABLE = "SEGMENT_PIPELINE_WEBHOOK_SECRET"
# DuckDB alone would take 80% of RAM; the run's own Python (pandas frames, XGBoost) and the
# other processes on the machine need the rest. 15% of 24 GB is about 3.6 GB: a first night
# of 10M events then peaks under 6 GB, the load and the rollups spilling to disk past it
# (40%, the earlier default, let a first night of 10M events take 9.8 GB).
DEFAULT_MEMORY_LIMIT = "15%"
# Where the heavy read-only SQL runs (contract section 8); DuckDB needs no Java.
ENGINES = ("duckdb", "spark")
_MEMORY_UNITS = {
    "KB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "TB": 10**12,
    "KIB": 2**10,
    "MIB": 2**20,
    "GIB": 2**30,
    "TIB": 2**40,
}


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
    lock_wait_seconds: int
    live_store: Path
    webhook_secret: str | None
    live_tick_budget_seconds: int
    reports_dir: Path
    mlflow_ui_url: str
    memory_limit: str
    engine: str = "duckdb"
    # Spark Connect endpoint (sc://host:port); None: a local Spark session.
    spark_remote: str | None = None
    # The Spark engine's Parquet copies of the events and profiles; a cluster must be able to read it.
    lake_dir: Path | None = None

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
            f"SEGMENT_PIPELINE_MAX_REJECT_RATE={raw_rate!r} is outside [0, 1]; it is a share of rows, e.g. 0.01 for 1%"
        )

    events = _env("SEGMENT_PIPELINE_EVENTS", env)
    # With the demo, partitions start where its data does, so the UI shows no months of empty days.
    raw_start = (
        _env("SEGMENT_PIPELINE_START_DATE", env)
        or (DEMO_FIRST_DAY if events is None else OWN_DATA_FIRST_DAY).isoformat()
    )
    try:
        start_date = date.fromisoformat(raw_start)
    except ValueError as exc:
        raise SettingsError(f"SEGMENT_PIPELINE_START_DATE={raw_start!r} is not a YYYY-MM-DD date") from exc
    if start_date < EARLIEST_START_DATE:
        raise SettingsError(
            f"SEGMENT_PIPELINE_START_DATE={raw_start!r} is before {EARLIEST_START_DATE}; "
            f"set it to a day from {EARLIEST_START_DATE} on"
        )

    config_dir = Path(_env("SEGMENT_PIPELINE_CONFIG", env) or BUNDLED_CONFIG_DIR)
    # The live sensor's own DuckDB file, next to the warehouse: it never opens the warehouse,
    # so the nightly run and the sensor never wait on each other's write lock.
    live_store = Path(_env("SEGMENT_PIPELINE_LIVE_STORE", env) or warehouse.with_name(f"{warehouse.stem}.live.duckdb"))
    if not live_store.is_absolute():
        live_store = root / live_store
    if live_store.resolve() == warehouse.resolve():
        raise SettingsError(
            f"SEGMENT_PIPELINE_LIVE_STORE={str(live_store)!r} is the warehouse file; "
            "give the live store its own file, or unset it for <warehouse>.live.duckdb"
        )
    reports_dir = Path(_env("SEGMENT_PIPELINE_REPORTS_DIR", env) or warehouse.parent / "reports")
    if not reports_dir.is_absolute():
        reports_dir = root / reports_dir
    engine = (_env("SEGMENT_PIPELINE_ENGINE", env) or "duckdb").lower()
    if engine not in ENGINES:
        raise SettingsError(
            f"SEGMENT_PIPELINE_ENGINE={engine!r} is not an engine; set it to duckdb (the default) or spark"
        )
    lake_dir = Path(_env("SEGMENT_PIPELINE_LAKE_DIR", env) or warehouse.parent / "lake")
    if not lake_dir.is_absolute():
        lake_dir = root / lake_dir
    return Settings(
        events=events,
        profiles=_env("SEGMENT_PIPELINE_PROFILES", env),
        config_dir=config_dir,
        warehouse=warehouse,
        data_dir=data_dir,
        mlflow_tracking_uri=_env("MLFLOW_TRACKING_URI", env) or (data_dir / "mlruns").as_uri(),
        webhook_url=check_webhook_url(_env(WEBHOOK_URL_VARIABLE, env)),
        max_reject_rate=max_reject_rate,
        start_date=start_date,
        export_dir=Path(export) if (export := _env("SEGMENT_PIPELINE_EXPORT_DIR", env)) else None,
        live_tick_seconds=_seconds("SEGMENT_PIPELINE_LIVE_TICK_SECONDS", env, default=30, low=10, high=600),
        live_late_tolerance_seconds=_seconds(
            "SEGMENT_PIPELINE_LIVE_LATE_TOLERANCE_SECONDS", env, default=LIVE_LATE_TOLERANCE_SECONDS, low=0, high=86_400
        ),
        lock_wait_seconds=_seconds("SEGMENT_PIPELINE_LOCK_WAIT_SECONDS", env, default=3600, low=0, high=7 * 86_400),
        live_store=live_store,
        webhook_secret=check_webhook_secret(_env(WEBHOOK_SECRET_VARIABLE, env)),
        # Dagster cancels a sensor tick after 60 s: stop sending well before that.
        live_tick_budget_seconds=_seconds("SEGMENT_PIPELINE_LIVE_TICK_BUDGET_SECONDS", env, default=20, low=1, high=45),
        reports_dir=reports_dir,
        mlflow_ui_url=(_env("SEGMENT_PIPELINE_MLFLOW_UI_URL", env) or DEFAULT_MLFLOW_UI_URL).rstrip("/"),
        memory_limit=memory_limit(env),
        engine=engine,
        spark_remote=_env("SPARK_REMOTE", env),
        lake_dir=lake_dir,
    )


def memory_limit(environ: dict[str, str] | None = None) -> str:
    """DuckDB's ``memory_limit`` from SEGMENT_PIPELINE_MEMORY_LIMIT: '15%' (of this machine's RAM, the
    default) or '8GB'."""
    env = dict(os.environ if environ is None else environ)
    raw = _env("SEGMENT_PIPELINE_MEMORY_LIMIT", env) or DEFAULT_MEMORY_LIMIT
    text = raw.replace(" ", "").upper()
    if match := re.fullmatch(r"(\d+(?:\.\d+)?)%", text):
        share = float(match.group(1))
        if 0 < share <= 100:
            return f"{int(_physical_memory_bytes() * share / 100) // 2**20}MiB"
    elif match := re.fullmatch(r"(\d+(?:\.\d+)?)([KMGT]I?B)", text):
        size = float(match.group(1)) * _MEMORY_UNITS[match.group(2)]
        if size >= 64 * 2**20:
            return f"{int(size) // 2**20}MiB"
    raise SettingsError(
        f"SEGMENT_PIPELINE_MEMORY_LIMIT={raw!r} is not a memory size of at least 64 MB; "
        f"set it to a share of this machine's RAM such as 40% or to a size such as 8GB"
    )


DEFAULT_TRAINING_USERS_PER_ANCHOR = 250_000


def training_users_per_anchor(environ: dict[str, str] | None = None) -> int:
    """SEGMENT_PIPELINE_TRAINING_USERS_PER_ANCHOR: above this many users at a training anchor,
    a goal model learns on a sample of them (every achiever up to half of it, then non-achievers)."""
    env = dict(os.environ if environ is None else environ)
    raw = _env("SEGMENT_PIPELINE_TRAINING_USERS_PER_ANCHOR", env) or str(DEFAULT_TRAINING_USERS_PER_ANCHOR)
    if not raw.isdigit() or int(raw) < 1000:
        raise SettingsError(
            f"SEGMENT_PIPELINE_TRAINING_USERS_PER_ANCHOR={raw!r} must be a whole number of users, at least 1000 "
            f"(e.g. {DEFAULT_TRAINING_USERS_PER_ANCHOR})"
        )
    return int(raw)


def _physical_memory_bytes() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_webhook_url(url: str | None) -> str | None:
    """An http(s) URL with a host, or None; anything else (file:, data:, ftp:) is refused at start-up."""
    if url is None:
        return None
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise SettingsError(
            f"SEGMENT_PIPELINE_WEBHOOK_URL={url!r} is not an http(s) URL with a host; "
            "set it to e.g. https://example.com/hooks/segments, or unset it to keep entries unsent"
        )
    return url


def check_webhook_secret(secret: str | None) -> str | None:
    """A ``whsec_`` secret must carry a base64 key (Standard Webhooks); other text is used as is."""
    if secret is not None and secret.startswith("whsec_"):
        try:
            encoded = secret.removeprefix("whsec_")
            key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
        except (binascii.Error, ValueError):
            key = b""
        if not key:
            raise SettingsError(
                "SEGMENT_PIPELINE_WEBHOOK_SECRET starts with whsec_ but the rest is not base64; "
                "use whsec_<base64 key> as the receiver shows it, or a secret without the whsec_ prefix"
            )
    return secret


def _seconds(name: str, env: dict[str, str], *, default: int, low: int, high: int) -> int:
    raw = _env(name, env) or str(default)
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise SettingsError(
            f"{name}={raw!r} must be a whole number of seconds between {low} and {high} (e.g. {default})"
        )
    return int(raw)
