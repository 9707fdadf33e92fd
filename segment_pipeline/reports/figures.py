"""What a goal report shows, read from the warehouse: one night's figures and their history.

Every reader takes an open DuckDB connection (read-only is enough) and a night; a table
that does not exist yet (a goal never set up, the model-quality table not built) reads
as no rows, so a report can always be written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import duckdb

from segment_pipeline.storage.warehouse import ANALYTICS, scalar, table_exists


@dataclass(frozen=True)
class GoalNight:
    """One goal as of one night: status in words and the rows behind each chart."""

    goal_name: str
    as_of: date
    status: str
    message: str
    model_run_id: str | None
    forecast: list[dict] = field(default_factory=list)
    uplift_history: list[dict] = field(default_factory=list)
    uplift_by_bucket: list[dict] = field(default_factory=list)
    bucket_sizes: list[dict] = field(default_factory=list)
    quality: list[dict] | None = None  # None: the goal_model_quality table does not exist
    value_forecast: list[dict] = field(default_factory=list)  # value goals only
    value_uplift: list[dict] = field(default_factory=list)  # value goals only: bucket all, each night

    @property
    def latest_forecast(self) -> dict | None:
        """The last window day with an actual count: where the goal stands against its forecast."""
        passed = [row for row in self.forecast if row["actual_cumulative"] is not None]
        return passed[-1] if passed else None

    @property
    def latest_uplift(self) -> dict | None:
        tonight = [row for row in self.uplift_history if row["as_of_date"] == self.as_of.isoformat()]
        return tonight[0] if tonight else None

    @property
    def latest_quality(self) -> dict | None:
        return self.quality[-1] if self.quality else None

    def numbers(self) -> dict[str, float]:
        """Tonight's headline figures, for trends over nights (NaN-free, plain floats)."""
        out: dict[str, float] = {}
        if (f := self.latest_forecast) is not None:
            out.update(
                achievers=f["actual_cumulative"],
                forecast=f["predicted_cumulative"],
                forecast_low=f["predicted_low"],
                forecast_high=f["predicted_high"],
            )
        if (u := self.latest_uplift) is not None:
            out.update(
                test_rate=u["test_rate"],
                control_rate=u["control_rate"],
                uplift=u["abs_uplift"],
                uplift_ci_low=u["ci_low"],
                uplift_ci_high=u["ci_high"],
            )
        passed = [row for row in self.value_forecast if row["actual_value_cumulative"] is not None]
        if passed:
            f = passed[-1]
            out.update(
                value_actual=f["actual_value_cumulative"],
                value_forecast=f["predicted_value_cumulative"],
                value_forecast_low=f["predicted_value_low"],
                value_forecast_high=f["predicted_value_high"],
            )
        if self.value_uplift and self.value_uplift[-1]["as_of_date"] == self.as_of.isoformat():
            v = self.value_uplift[-1]
            out.update(
                value_uplift=v["value_uplift"],
                value_uplift_ci_low=v["value_ci_low"],
                value_uplift_ci_high=v["value_ci_high"],
            )
        for row in self.bucket_sizes:
            out[f"bucket_{row['bucket']}"] = out.get(f"bucket_{row['bucket']}", 0) + row["users"]
        if (q := self.latest_quality) is not None:
            out.update(auc=q["auc"], auc_ci_low=q["auc_ci_low"], auc_ci_high=q["auc_ci_high"])
        return {k: float(v) for k, v in out.items() if v is not None and v == v}


@dataclass(frozen=True)
class SegmentsNight:
    """Segment sizes over time and tonight's overlaps."""

    as_of: date
    sizes: list[dict]
    overlaps: list[dict]


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: list) -> list[dict]:
    cursor = con.execute(sql, params)
    names = [d[0] for d in cursor.description]
    return [{n: _plain(v) for n, v in zip(names, row, strict=True)} for row in cursor.fetchall()]


def _plain(value: object) -> object:
    """JSON-ready: dates as ISO text, NaN as None."""
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value != value:
        return None
    return value


def _exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    return table_exists(con, ANALYTICS, table)


def goal_names(con: duckdb.DuckDBPyConnection, as_of: date) -> list[str]:
    """The goals with a status on the night, in name order."""
    if not _exists(con, "goal_status"):
        return []
    return [
        r[0]
        for r in con.execute(
            "SELECT DISTINCT goal_name FROM analytics.goal_status WHERE as_of_date = ? ORDER BY 1", [as_of]
        ).fetchall()
    ]


def goal_night(con: duckdb.DuckDBPyConnection, goal_name: str, as_of: date) -> GoalNight:
    status = con.execute(
        "SELECT status, message, model_run_id FROM analytics.goal_status WHERE goal_name = ? AND as_of_date = ?",
        [goal_name, as_of],
    ).fetchone() or ("unknown", "no status for this night", None)
    key = [goal_name, as_of]
    forecast = (
        _rows(
            con,
            """SELECT day, predicted_cumulative, predicted_low, predicted_high, actual_cumulative
        FROM analytics.goal_forecasts WHERE goal_name = ? AND as_of_date = ? ORDER BY day""",
            key,
        )
        if _exists(con, "goal_forecasts")
        else []
    )
    uplift_columns = """as_of_date, bucket, test_users, test_achievers, control_users, control_achievers,
        test_rate, control_rate, abs_uplift, ci_low, ci_high, p_value, srm_p_value"""
    has_uplift = _exists(con, "goal_uplift")
    history = (
        _rows(
            con,
            f"""SELECT {uplift_columns} FROM analytics.goal_uplift
        WHERE goal_name = ? AND as_of_date <= ? AND bucket = 'all' ORDER BY as_of_date""",
            key,
        )
        if has_uplift
        else []
    )
    by_bucket = (
        _rows(
            con,
            f"""SELECT {uplift_columns} FROM analytics.goal_uplift
        WHERE goal_name = ? AND as_of_date = ? AND bucket <> 'all' ORDER BY bucket""",
            key,
        )
        if has_uplift
        else []
    )
    sizes = (
        _rows(
            con,
            """SELECT bucket, "group", count(*) AS users FROM analytics.intent_buckets
        WHERE goal_name = ? AND as_of_date = ? GROUP BY ALL ORDER BY bucket, "group" """,
            key,
        )
        if _exists(con, "intent_buckets")
        else []
    )
    quality = (
        _rows(
            con,
            """SELECT prediction_date, horizon_end, users, achievers, predicted_achievers,
            auc, auc_ci_low, auc_ci_high, brier, top_bucket_lift, model_run_id
        FROM analytics.goal_model_quality WHERE goal_name = ? AND prediction_date <= ?
        ORDER BY prediction_date""",
            key,
        )
        if _exists(con, "goal_model_quality")
        else None
    )
    value_forecast, value_uplift = _value_rows(con, key)
    return GoalNight(
        goal_name,
        as_of,
        status[0],
        status[1] or "",
        status[2],
        forecast,
        history,
        by_bucket,
        sizes,
        quality,
        value_forecast,
        value_uplift,
    )


def _has_column(con: duckdb.DuckDBPyConnection, table: str, column: str) -> bool:
    return bool(
        scalar(
            con,
            "SELECT count(*) FROM information_schema.columns WHERE table_schema = ? AND table_name = ? AND column_name = ?",
            [ANALYTICS, table, column],
        )
    )


def _value_rows(con: duckdb.DuckDBPyConnection, key: list) -> tuple[list[dict], list[dict]]:
    """A value goal's forecast and uplift rows; none for other goals or warehouses from before value goals."""
    forecast, uplift = [], []
    if _exists(con, "goal_forecasts") and _has_column(con, "goal_forecasts", "predicted_value_cumulative"):
        forecast = _rows(
            con,
            """SELECT day, predicted_value_cumulative, predicted_value_low, predicted_value_high,
                actual_value_cumulative FROM analytics.goal_forecasts
            WHERE goal_name = ? AND as_of_date = ? AND predicted_value_cumulative IS NOT NULL ORDER BY day""",
            key,
        )
    if _exists(con, "goal_uplift") and _has_column(con, "goal_uplift", "value_uplift"):
        uplift = _rows(
            con,
            """SELECT as_of_date, test_value_per_user, control_value_per_user, value_uplift,
                value_ci_low, value_ci_high FROM analytics.goal_uplift
            WHERE goal_name = ? AND as_of_date <= ? AND bucket = 'all' AND value_uplift IS NOT NULL
            ORDER BY as_of_date""",
            key,
        )
    return forecast, uplift


def segments_night(con: duckdb.DuckDBPyConnection, as_of: date, *, days: int = 180) -> SegmentsNight:
    if not _exists(con, "segment_overlaps"):
        return SegmentsNight(as_of, [], [])
    sizes = _rows(
        con,
        """SELECT as_of_date, segment_a AS segment, users FROM analytics.segment_overlaps
        WHERE segment_a = segment_b AND as_of_date <= ? AND as_of_date > ? - CAST(? AS INTEGER)
        ORDER BY as_of_date, segment""",
        [as_of, as_of, days],
    )
    overlaps = _rows(
        con,
        # Pairs sharing no user have no row: the matrix is rebuilt from the diagonal with zeros.
        """WITH o AS (SELECT * FROM analytics.segment_overlaps WHERE as_of_date = ?),
                d AS (SELECT segment_a AS segment FROM o WHERE segment_a = segment_b)
        SELECT a.segment AS segment_a, b.segment AS segment_b, coalesce(o.users, 0) AS users
        FROM d a CROSS JOIN d b LEFT JOIN o ON o.segment_a = a.segment AND o.segment_b = b.segment
        ORDER BY 1, 2""",
        [as_of],
    )
    return SegmentsNight(as_of, sizes, overlaps)
