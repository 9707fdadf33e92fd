"""Shared fixtures: temp warehouses and event files written in every supported format."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest
from hypothesis import HealthCheck, settings

from segment_pipeline.storage import warehouse
from segment_pipeline_tests.hypothesis_budget import CI_EXAMPLES

# Property-test budgets: `ci` runs each test's full budget (hypothesis_budget.py scales the explicit
# ones), `dev` a tenth of it, without a deadline, for a quick run on a busy machine.
settings.register_profile("ci", max_examples=CI_EXAMPLES)
settings.register_profile(
    "dev", max_examples=CI_EXAMPLES // 10, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def warehouse_path(tmp_path: Path) -> Path:
    return tmp_path / "warehouse" / "warehouse.duckdb"


@pytest.fixture
def con(warehouse_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    with warehouse.connect(warehouse_path) as connection:
        yield connection


def make_events(n: int, *, start: datetime = datetime(2026, 1, 1), prefix: str = "e", users: int = 97) -> list[dict]:
    """n valid events a minute apart, with JSON-text properties."""
    return [
        {
            "event_id": f"{prefix}{i}",
            "user_id": f"u{i % users}",
            "event_name": ("login", "item_viewed", "charged")[i % 3],
            "ts": (start + timedelta(minutes=i)).isoformat(),
            "properties": json.dumps({"n": i, "category": "concert" if i % 2 else "sports"}),
        }
        for i in range(n)
    ]


def write_events(path: Path, rows: list[dict]) -> Path:
    """Write rows as the file's extension says (.csv, .parquet, .ndjson/.jsonl)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix in (".ndjson", ".jsonl"):
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    elif path.suffix == ".csv":
        pl.DataFrame(rows, infer_schema_length=None).write_csv(path)
    else:
        pl.DataFrame(rows, infer_schema_length=None).write_parquet(path)
    return path
