"""Goal model quality on a warehouse after a run: held-out metrics and realized conversion.

For each goal with a model: the held-out anchor's AUC, PR-AUC, Brier, calibration
error and forecast error of the total (all from training), then what actually
happened to the target group since creation: conversion by the bucket each user had
at creation (most / moderately / least likely), the control group's conversion next
to the creation forecast (the control gets no campaign, so it is the fair check of
the forecast), and the test group's; each training's champion decision, and the
realized quality of the scored nights once the window has ended (goal_model_quality).

    .venv/bin/dg launch --job nightly_refresh --partition 2026-06-30
    .venv/bin/python scripts/goal_quality_report.py [--warehouse data/warehouse.duckdb]
"""

from __future__ import annotations

import argparse
import json

import polars as pl

from segment_pipeline.config.project import load_project_config
from segment_pipeline.goals.features import achievers_by_day
from segment_pipeline.settings import load_settings
from segment_pipeline.storage.connections import open_duckdb

METRICS = ("auc", "pr_auc", "brier", "ece", "base_rate", "forecast_rel_error", "n_holdout")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warehouse", default=str(load_settings().warehouse))
    args = parser.parse_args()
    goals = load_project_config(load_settings().config_dir).goals.by_name
    with open_duckdb(args.warehouse, read_only=True) as con:
        models = con.execute(
            "SELECT goal_name, trained_as_of, metrics_json, thresholds_json FROM pipeline_state.goal_models ORDER BY 1"
        ).fetchall()
        last_day = con.execute("SELECT max(as_of_date) FROM analytics.goal_status").fetchone()[0]
        for goal, trained, metrics_json, thresholds_json in models:
            metrics = json.loads(metrics_json)
            thresholds = json.loads(thresholds_json)
            print(f"\n== {goal} (trained as of {trained}; status as of {last_day})")
            print("held-out: " + ", ".join(f"{k} {metrics[k]:.3f}" for k in METRICS if k in metrics))
            print(f"thresholds: {thresholds['method']}, ordered on held-out: {thresholds['ordered']}")
            latest = con.execute(
                """SELECT max(as_of_date) FROM analytics.goal_forecasts WHERE goal_name = ?""", [goal]
            ).fetchone()[0]
            achieved = con.execute(
                """WITH last AS (SELECT max(day) AS day FROM analytics.goal_forecasts
                                 WHERE goal_name = ? AND as_of_date = ? AND actual_cumulative IS NOT NULL)
                   SELECT f.day, f.predicted_cumulative, f.predicted_low, f.predicted_high, f.actual_cumulative
                   FROM analytics.goal_forecasts f, last WHERE f.goal_name = ? AND f.as_of_date = ? AND f.day = last.day""",
                [goal, latest, goal, latest],
            ).fetchone()
            definition = goals[goal]
            done = achievers_by_day(con, definition, None, definition.created_on, min(latest, definition.end_date))
            done = done.select("user_id").with_columns(pl.lit(1).alias("hit"))
            by_bucket = con.execute(
                """SELECT s.bucket, s."group", count(*) AS users, count(d.user_id) AS achievers
                   FROM pipeline_state.goal_creation_scores s LEFT JOIN done d USING (user_id)
                   WHERE s.goal_name = ? GROUP BY ALL ORDER BY ALL""",
                [goal],
            ).fetchall()
            if achieved:
                day, p, lo, hi, actual = achieved
                size = con.execute(
                    "SELECT count(*) FROM analytics.target_groups WHERE goal_name = ?", [goal]
                ).fetchone()[0]
                print(f"forecast at creation for {day}: {p:.1f} [{lo:.1f}, {hi:.1f}] of {size:,}; actual {actual:,}")
            if by_bucket:
                rates: dict[str, tuple[int, int]] = {}
                for bucket, group, users, achievers in by_bucket:
                    u, a = rates.get(bucket, (0, 0))
                    rates[bucket] = (u + users, a + achievers)
                    print(
                        f"  creation bucket {bucket:<18} {group:<8} {users:>6,} users {achievers / users:7.1%} achieved"
                    )
                control = [(u, a) for b, g, u, a in by_bucket if g == "control"]
                if control and achieved:
                    cu, ca = sum(u for u, _ in control), sum(a for _, a in control)
                    print(
                        f"  control conversion {ca / cu:.1%} vs forecast rate {achieved[1] / size:.1%} (no campaign reaches the control)"
                    )
                most, least = rates.get("most_likely"), rates.get("least_likely")
                if most and least and least[1]:
                    print(f"  most vs least likely conversion: {(most[1] / most[0]) / (least[1] / least[0]):.1f}x")
            decisions = con.execute(
                """SELECT as_of_date, model_kind, promoted, champion_kind FROM pipeline_state.goal_model_decisions
                   WHERE goal_name = ? ORDER BY as_of_date""",
                [goal],
            ).fetchall()
            for as_of, kind, promoted, champion in decisions:
                print(
                    f"  training as of {as_of}: challenger {kind} {'promoted' if promoted else 'rejected'}; "
                    f"champion {champion}"
                )
            quality = con.execute(
                """SELECT count(*), avg(auc), avg(brier), avg(top_bucket_lift), sum(predicted_achievers), sum(achievers)
                   FROM analytics.goal_model_quality WHERE goal_name = ?""",
                [goal],
            ).fetchone()
            if quality[0]:
                n, auc, brier, lift, predicted, actual = quality
                print(
                    f"  realized over {n} scored nights: mean AUC {auc:.3f}, mean Brier {brier:.4f}, "
                    f"most-likely lift {lift:.2f}x, predicted {predicted:,.0f} vs {actual:,} achievers"
                )


if __name__ == "__main__":
    main()
