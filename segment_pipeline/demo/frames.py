"""Turn simulated numpy arrays into event rows with a JSON ``properties`` string.

The JSON text is assembled with polars string expressions (fast for a million rows);
every value written is a fixed label, a number or a boolean, so nothing needs escaping.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date

import numpy as np
import polars as pl

US_PER_SECOND = 1_000_000
US_PER_DAY = 86_400 * US_PER_SECOND
EPOCH = date(1970, 1, 1)

RAW_SCHEMA = pl.Schema(
    {
        "user_idx": pl.Int32,
        "ts_us": pl.Int64,
        "event_name": pl.String,
        "properties": pl.String,
    }
)


def day_base_us(start: date) -> int:
    """Microseconds since the epoch at 00:00 UTC of the demo's first day."""
    return (start - EPOCH).days * US_PER_DAY


def timestamps(start: date, day: int | np.ndarray, seconds: np.ndarray) -> np.ndarray:
    """Microseconds since the epoch, ``seconds`` after 00:00 UTC of demo day ``day``."""
    day_us = np.asarray(day, dtype=np.int64) * US_PER_DAY
    return day_base_us(start) + day_us + np.floor(seconds * US_PER_SECOND).astype(np.int64)


def labels(names: Sequence[str], codes: np.ndarray) -> np.ndarray:
    """Code array -> string array, e.g. category indices -> category names."""
    return np.asarray(names)[codes]


def emit(name: str, user: np.ndarray, ts_us: np.ndarray, **props: np.ndarray) -> pl.DataFrame:
    """Rows of one event type; ``props`` keep their order as JSON keys.

    String arrays become JSON strings; integer, float and boolean arrays become JSON
    numbers and booleans.
    """
    columns: dict[str, pl.Series] = {
        "user_idx": pl.Series("user_idx", user, dtype=pl.Int32),
        "ts_us": pl.Series("ts_us", ts_us, dtype=pl.Int64),
    }
    parts: list[pl.Expr] = []
    for position, (key, values) in enumerate(props.items()):
        series = pl.Series(key, values)
        prefix = ("{" if position == 0 else ", ") + json.dumps(key) + ": "
        if series.dtype == pl.String:
            parts += [pl.lit(prefix + '"'), pl.col(key), pl.lit('"')]
        else:
            parts += [pl.lit(prefix), pl.col(key).cast(pl.String)]
        columns[key] = series
    properties = pl.concat_str([*parts, pl.lit("}")]) if parts else pl.lit("{}")
    return pl.DataFrame(columns).select(
        "user_idx",
        "ts_us",
        pl.lit(name, dtype=pl.String).alias("event_name"),
        properties.alias("properties"),
    )
