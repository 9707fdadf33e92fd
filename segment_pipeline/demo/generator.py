"""The built-in demo data: realistic app events and user profiles with planted structure.

``build_demo_tables`` simulates the data in memory (vectorised numpy; deterministic
for a given ``DemoSpec``); ``generate_demo`` writes it as monthly event Parquet files
plus a profile file, reusing an earlier identical output. What is planted, so later
stages have something true to find:

- heavy-tailed engagement drives sessions, and engagement plus recent activity drive
  purchases (past activity predicts future ``charged``);
- San Francisco users prefer concerts; premium users buy more;
- ~15% of users fade (sessions decay over about two weeks) and most then uninstall
  some weeks later; users dormant for three weeks also uninstall now and then; an
  uninstall is always a user's last event;
- on 2026-06-08 the non-control San Francisco users of the goal "sell concert
  tickets" get a ``concert_push`` that markedly raises their concert purchases.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, replace
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl

from segment_pipeline.demo.behaviour import (
    SessionPlan,
    plan_daily_sessions,
    session_events,
)
from segment_pipeline.demo.frames import RAW_SCHEMA, labels
from segment_pipeline.demo.lifecycle import GOAL_CAMPAIGN_DAY, build_lifecycle
from segment_pipeline.demo.population import CITIES, OSES, PLANS, build_population

GENERATOR_VERSION = 2  # 2: planted spend structure (extra items for engaged users and the pushed test group)
MANIFEST = "manifest.json"
EVENTS_DIR = "events"
PROFILES_FILE = "profiles.parquet"
STALE_TEMP_SECONDS = 3600


@dataclass(frozen=True)
class DemoSpec:
    users: int = 20_000
    start: date = date(2026, 1, 1)
    days: int = 181  # 2026-01-01 .. 2026-06-30 inclusive
    seed: int = 20260101


@dataclass(frozen=True)
class DemoFiles:
    events_glob: str  # glob matching the event parquet files
    profiles_path: Path
    event_files: list[Path]


@dataclass(frozen=True)
class DemoTables:
    events: pl.DataFrame  # event_id, user_id, event_name, ts, properties (sorted by ts)
    profiles: pl.DataFrame  # user_id, city, plan, signup_date, os, age, marketing_opt_in


def _user_ids(index: pl.Expr) -> pl.Expr:
    return pl.concat_str([pl.lit("u"), index.cast(pl.String).str.zfill(6)])


def build_demo_tables(spec: DemoSpec = DemoSpec()) -> DemoTables:
    """Simulate the whole demo in memory; same spec, same tables."""
    if spec.users < 1 or spec.days < 1:
        raise ValueError(f"DemoSpec needs at least one user and one day, got {spec}")
    rng_pop, rng_days, rng_life, rng_sessions = (
        np.random.default_rng(seed) for seed in np.random.SeedSequence(spec.seed).spawn(4)
    )
    pop = build_population(spec.users, spec.days, rng_pop)
    campaign_day = (GOAL_CAMPAIGN_DAY - spec.start).days
    daily = plan_daily_sessions(pop, spec.start, spec.days, campaign_day, rng_days)
    pop = replace(pop, uninstall_day=daily.uninstall_day)
    life = build_lifecycle(pop, spec.start, spec.days, daily.campaign_recipients, rng_life)
    sessions = SessionPlan.concat(daily.sessions, life.open_sessions)
    frames = session_events(pop, sessions, spec.start, rng_sessions) + life.frames

    raw = pl.concat([frame.cast(RAW_SCHEMA) for frame in frames]).sort("ts_us", maintain_order=True)
    sequence = pl.int_range(pl.len()).cast(pl.String).str.zfill(9)
    events = raw.select(
        pl.concat_str([pl.lit("demo-"), sequence]).alias("event_id"),
        _user_ids(pl.col("user_idx")).alias("user_id"),
        "event_name",
        pl.col("ts_us").cast(pl.Datetime("us")).alias("ts"),
        "properties",
    )

    kept = np.flatnonzero(pop.has_profile)
    signup = np.datetime64(spec.start, "D") + pop.signup_day[kept].astype("timedelta64[D]")
    profiles = pl.DataFrame(
        {
            "user_idx": kept,
            "city": labels(CITIES, pop.city[kept]),
            "plan": labels(PLANS, life.final_plan[kept]),
            "signup_date": pl.Series(signup).cast(pl.Date),
            "os": labels(OSES, pop.os[kept]),
            "age": pop.age[kept].astype(np.int64),
            "marketing_opt_in": pop.opt_in[kept],
        }
    ).select(_user_ids(pl.col("user_idx")).alias("user_id"), pl.exclude("user_idx"))
    return DemoTables(events=events, profiles=profiles)


def _spec_record(spec: DemoSpec) -> dict:
    record = asdict(spec)
    record["start"] = spec.start.isoformat()
    return record


def _reusable(out_dir: Path, spec: DemoSpec) -> DemoFiles | None:
    """The files already in ``out_dir`` when they were made by this version and spec."""
    try:
        manifest = json.loads((out_dir / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    if manifest.get("generator_version") != GENERATOR_VERSION:
        return None
    if manifest.get("spec") != _spec_record(spec):
        return None
    files = _demo_files(out_dir, manifest.get("event_files", []))
    if not all(path.is_file() for path in [files.profiles_path, *files.event_files]):
        return None
    return files


def _demo_files(out_dir: Path, event_names: list[str]) -> DemoFiles:
    return DemoFiles(
        events_glob=str(out_dir / EVENTS_DIR / "events_*.parquet"),
        profiles_path=out_dir / PROFILES_FILE,
        event_files=[out_dir / EVENTS_DIR / name for name in event_names],
    )


def _check_owned(out_dir: Path) -> None:
    """Refuse to replace a folder the generator did not make."""
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / MANIFEST).exists():
        raise FileExistsError(
            f"{out_dir} holds files but no demo {MANIFEST}; refusing to overwrite it. "
            "Point the demo at an empty or demo-made folder."
        )


def _write(folder: Path, tables: DemoTables, spec: DemoSpec) -> None:
    (folder / EVENTS_DIR).mkdir(parents=True)
    names = []
    months = tables.events.with_columns(pl.col("ts").dt.strftime("%Y-%m").alias("_month"))
    for part in months.partition_by("_month", maintain_order=True, include_key=True):
        name = f"events_{part['_month'][0]}.parquet"
        part.drop("_month").write_parquet(folder / EVENTS_DIR / name, compression="zstd")
        names.append(name)
    tables.profiles.write_parquet(folder / PROFILES_FILE, compression="zstd")
    manifest = {
        "generator_version": GENERATOR_VERSION,
        "spec": _spec_record(spec),
        "event_files": names,
        "events": tables.events.height,
        "profiles": tables.profiles.height,
    }
    # The manifest is written last: a folder without one is never reused.
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")


def _remove_stale_temps(out_dir: Path) -> None:
    """Leftovers of crashed runs (older than an hour, so never a concurrent run's)."""
    cutoff = time.time() - STALE_TEMP_SECONDS
    for pattern in (f".{out_dir.name}.tmp-*", f".{out_dir.name}.old-*"):
        for path in out_dir.parent.glob(pattern):
            if path.stat().st_mtime < cutoff:
                shutil.rmtree(path, ignore_errors=True)


def generate_demo(out_dir: Path, spec: DemoSpec = DemoSpec()) -> DemoFiles:
    """Write the demo (idempotent: if out_dir already holds files made by the same
    GENERATOR_VERSION and spec -- keep a small manifest.json -- reuse them; otherwise
    write to a temp folder and rename into place atomically so a crash never leaves
    half a demo)."""
    out_dir = Path(out_dir)
    reused = _reusable(out_dir, spec)
    if reused is not None:
        return reused
    _check_owned(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(out_dir)

    temp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        temp.chmod(0o755)  # mkdtemp makes it private; the demo is ordinary data
        _write(temp, build_demo_tables(spec), spec)
        reused = _reusable(out_dir, spec)  # a concurrent run may have finished first
        if reused is not None:
            shutil.rmtree(temp, ignore_errors=True)
            return reused
        _check_owned(out_dir)
        old = out_dir.parent / f".{out_dir.name}.old-{uuid.uuid4().hex}"
        if out_dir.exists():
            os.replace(out_dir, old)
        os.replace(temp, out_dir)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    files = _reusable(out_dir, spec)
    assert files is not None, f"demo written to {out_dir} but its manifest does not match"
    return files
