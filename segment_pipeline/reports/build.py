"""Write the night's reports: one page per goal and an index of goals and segments.

Layout under the reports folder: ``<night>/index.html``, ``<night>/goal-<slug>.html``,
and ``index.html`` listing every night. Each file is written to a temporary name and
renamed into place, so a browser (or a second run) never sees half a page.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb

from segment_pipeline.reports import charts
from segment_pipeline.reports.figures import GoalNight, goal_names, goal_night, segments_night
from segment_pipeline.reports.page import Markup, Page, badge, link

RunUrl = Callable[[str], str | None]


@dataclass(frozen=True)
class NightReports:
    as_of: date
    index: Path
    goals: dict[str, Path]  # goal name -> its page
    nights: dict[str, GoalNight]


def goal_slug(goal_name: str) -> str:
    return "goal-" + (re.sub(r"[^a-z0-9]+", "-", goal_name.lower()).strip("-") or "unnamed")


def write_night_reports(
    con: duckdb.DuckDBPyConnection, reports_dir: Path, as_of: date, *, run_url: RunUrl | None = None
) -> NightReports:
    """Build and write every page of the night from the warehouse behind ``con``."""
    night_dir = reports_dir / as_of.isoformat()
    nights = {name: goal_night(con, name, as_of) for name in goal_names(con, as_of)}
    pages: dict[str, Path] = {}
    for name, night in nights.items():
        pages[name] = night_dir / f"{goal_slug(name)}.html"
        _write_atomic(pages[name], goal_page(night, run_url).render())
    index = night_dir / "index.html"
    _write_atomic(index, index_page(con, as_of, nights).render())
    _write_atomic(reports_dir / "index.html", nights_page(reports_dir).render())
    return NightReports(as_of, index, pages, nights)


def goal_page(night: GoalNight, run_url: RunUrl | None = None) -> Page:
    page = Page(f"Goal: {night.goal_name}", f"as of {night.as_of} (end of day, UTC)")
    page.raw(f"<p>{badge(night.status)}</p>")
    page.paragraph(night.message)
    for sentence in standing_sentences(night):
        page.paragraph(sentence)
    if night.model_run_id:
        url = run_url(night.model_run_id) if run_url else None
        model = link(url, night.model_run_id) if url else night.model_run_id
        page.raw(f"<p>Model: MLflow run {model}</p>")

    page.heading("Forecast vs actual")
    if night.forecast:
        page.chart(charts.forecast_vs_actual(night.forecast))
    else:
        page.paragraph("No forecast: the goal has no model yet (see the status above).", "note")

    if night.value_forecast or night.value_uplift:
        page.heading("Value (valueProperty)")
        if night.value_forecast:
            page.chart(charts.value_forecast_vs_actual(night.value_forecast))
        if night.value_uplift:
            page.chart(charts.value_uplift_interval(night.value_uplift))

    page.heading("Test vs control")
    if night.uplift_history:
        page.chart(charts.conversion_over_time(night.uplift_history))
        page.chart(charts.uplift_interval(night.uplift_history))
    else:
        page.paragraph("No uplift yet: it is measured once the goal is active.", "note")

    page.heading("Intent buckets")
    if night.bucket_sizes:
        page.chart(charts.bucket_sizes(night.bucket_sizes))
    else:
        page.paragraph("No buckets tonight: users are scored only while the goal's window is open.", "note")
    if night.uplift_by_bucket:
        page.chart(charts.conversion_by_bucket(night.uplift_by_bucket))
        page.table(
            ["bucket at creation", "test", "control", "test rate", "control rate", "uplift pts", "95% CI pts", "p"],
            [
                [
                    r["bucket"],
                    f"{r['test_achievers']}/{r['test_users']}",
                    f"{r['control_achievers']}/{r['control_users']}",
                    _pct(r["test_rate"]),
                    _pct(r["control_rate"]),
                    _pts(r["abs_uplift"]),
                    f"{_pts(r['ci_low'])} to {_pts(r['ci_high'])}",
                    _p(r["p_value"]),
                ]
                for r in night.uplift_by_bucket
            ],
        )

    page.heading("Model quality over prediction dates")
    if night.quality is None:
        page.paragraph("Not available: the warehouse has no analytics.goal_model_quality table yet.", "note")
    elif not night.quality:
        page.paragraph("No model-quality rows for this goal yet.", "note")
    else:
        page.chart(charts.model_quality(night.quality))
    return page


def standing_sentences(night: GoalNight) -> list[str]:
    """Where the goal stands, in words."""
    out = []
    if (f := night.latest_forecast) is not None:
        a, lo, hi = f["actual_cumulative"], f["predicted_low"], f["predicted_high"]
        where = "above" if a > hi else "below" if a < lo else "within"
        out.append(
            f"By {f['day']}: {a:,} achievers against {f['predicted_cumulative']:,.1f} forecast "
            f"(90% interval {lo:,.1f} to {hi:,.1f}): {where} the forecast."
        )
    passed = [row for row in night.value_forecast if row["actual_value_cumulative"] is not None]
    if passed:
        f = passed[-1]
        a, lo, hi = f["actual_value_cumulative"], f["predicted_value_low"], f["predicted_value_high"]
        where = "above" if a > hi else "below" if a < lo else "within"
        out.append(
            f"Value by {f['day']}: {a:,.2f} against {f['predicted_value_cumulative']:,.2f} forecast "
            f"(90% interval {lo:,.2f} to {hi:,.2f}): {where} the forecast."
        )
    if night.value_uplift and night.value_uplift[-1]["as_of_date"] == night.as_of.isoformat():
        v = night.value_uplift[-1]
        low, high = (
            (f"{v['value_ci_low']:+,.2f}", f"{v['value_ci_high']:+,.2f}")
            if v["value_ci_low"] is not None
            else ("?", "?")
        )
        out.append(
            f"Value per user: test {v['test_value_per_user']:,.2f} vs control {v['control_value_per_user']:,.2f}: "
            f"uplift {v['value_uplift']:+,.2f} (95% Welch CI {low} to {high})."
        )
    if (u := night.latest_uplift) is not None and u["abs_uplift"] is not None:
        out.append(
            f"Test {_pct(u['test_rate'])} vs control {_pct(u['control_rate'])}: uplift {_pts(u['abs_uplift'])} pts "
            f"(95% CI {_pts(u['ci_low'])} to {_pts(u['ci_high'])}), p {_p_phrase(u['p_value'])}."
        )
    return out


def index_page(con: duckdb.DuckDBPyConnection, as_of: date, nights: dict[str, GoalNight]) -> Page:
    page = Page("Segments and goals", f"as of {as_of} (end of day, UTC)")
    page.heading("Goals")
    if nights:
        page.table(
            ["goal", "status", "achievers", "forecast", "uplift pts", "message"],
            [
                [
                    Markup(link(f"{goal_slug(n)}.html", n)),
                    g.status,
                    g.numbers().get("achievers"),
                    g.numbers().get("forecast"),
                    _pts(g.numbers().get("uplift")),
                    g.message,
                ]
                for n, g in nights.items()
            ],
        )
    else:
        page.paragraph("No goal has a status on this night.", "note")
    segments = segments_night(con, as_of)
    page.heading("Segments")
    if segments.sizes:
        page.chart(charts.segment_sizes(segments.sizes))
    if segments.overlaps:
        page.chart(charts.overlap_heatmap(segments.overlaps))
    if not (segments.sizes or segments.overlaps):
        page.paragraph("No segment has been evaluated up to this night.", "note")
    return page


def nights_page(reports_dir: Path) -> Page:
    page = Page("Goal reports", "one folder per night")
    nights = sorted((p.parent.name for p in reports_dir.glob("*/index.html")), reverse=True)
    page.table(["night"], [[Markup(link(f"{n}/index.html", n))] for n in nights])
    return page


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a report is for people to open
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _pct(value: float | None) -> str:
    return "" if value is None else f"{value:.1%}"


def _pts(value: float | None) -> str:
    return "" if value is None else f"{value * 100:+.1f}"


def _p_phrase(value: float | None) -> str:
    text = _p(value)
    return text if text.startswith("<") else f"= {text}"


def _p(value: float | None) -> str:
    return "" if value is None else "< 0.001" if value < 0.001 else f"{value:.3g}"
