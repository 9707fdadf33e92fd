"""Benchmark: goal models on a simulated purchase history where every customer's truth is known.

~23k customers follow the BG/NBD process with the CDNOW estimates (r=0.243, alpha=4.414,
a=0.793, b=2.426; time in weeks), acquired over the first 12 weeks, making ``purchase``
events (properties ``spend``, ``quantity``) for ``--weeks`` weeks. The events are written
as an NDJSON file and loaded by the real ingest (``load_events``); a repeat-purchase goal
on All Users (``--window`` days from week 52, lookback ``--lookback`` days) is set up by
the real goal code (``set_up_goal``: freeze, features, XGBoost + baselines, champion,
forecast, buckets), as the nightly job would.

Reported on the target group's real outcome in the goal window:
- the ceiling: AUC of the Bayes-optimal score, P(a purchase in the window | the history
  before createdOn) under the true parameters (and, for reference, the oracle that knows
  each customer's latent rate and whether they are still alive);
- AUC of the champion (the creation scores), and of each candidate trained on the same
  training set (XGBoost, logistic regression, BG/NBD fit), with their held-out figures;
- forecast error of the creation forecast's total; bucket conversion (most / least).
Done when: champion AUC within 0.01 of the ceiling, forecast within 5%, three non-empty
buckets with most/least conversion >= 3x.

    .venv/bin/python scripts/benchmark_models.py [--customers 23000] [--window 28] [--lookback 90]
    .venv/bin/python scripts/benchmark_models.py --demo   # the bundled demo goals, night by night

``--demo`` generates the bundled demo (20k users, 2026-01-01..06-30), loads it through the
real ingest and runs every demo goal night by night (``run_goal_day``: setup, retraining
every retrainEveryDays, scoring, realized quality) up to its endDate or the data's last
day; it prints each goal's candidates at creation, its retrain decisions, the creation
forecast against the actual total, bucket conversion at creation and the realized
quality of its matured nights.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from segment_pipeline.config.goals import load_goals_text
from segment_pipeline.config.segments import load_segments_text
from segment_pipeline.goals import features
from segment_pipeline.goals.candidates import model_kind
from segment_pipeline.goals.setup import set_up_goal, train
from segment_pipeline.goals.target_groups import target_group
from segment_pipeline.ingest.events import load_events
from segment_pipeline.ingest.sources import discover
from segment_pipeline.stats import bgnbd
from segment_pipeline.stats.bgnbd import CDNOW_PARAMS, BgNbdParams
from segment_pipeline.storage import warehouse

START = date(2025, 1, 6)  # a Monday
ACQUISITION_WEEKS = 12
CREATED_WEEK = 52


def simulate(customers: int, weeks: float, seed: int) -> tuple[pl.DataFrame, dict[str, np.ndarray]]:
    """Events (first purchase at acquisition, then the BG/NBD repeats) and each customer's latents."""
    rng = np.random.default_rng(seed)
    params = BgNbdParams(**CDNOW_PARAMS)
    born = rng.uniform(0, ACQUISITION_WEEKS, customers)
    times, lam, p, deaths = bgnbd.simulate_customers(params, weeks - born, rng)
    users, at = [], []
    for i, repeats in enumerate(times):
        for t in (0.0, *repeats):
            users.append(f"c{i:05d}")
            at.append(born[i] + t)
    at = np.array(at)
    n = len(at)
    ts = [datetime.combine(START, datetime.min.time()) + timedelta(weeks=float(w)) for w in at]
    events = pl.DataFrame(
        {
            "event_id": [f"e{k}" for k in range(n)],
            "user_id": users,
            "event_name": "purchase",
            "ts": ts,
            "spend": np.round(rng.gamma(6.0, 5.0, n), 2),  # monetary independent of frequency (Gamma-Gamma)
            "quantity": rng.integers(1, 4, n),
        }
    )
    return events, {"born": born, "lam": lam, "p": p, "death": born + deaths}


def write_ndjson(events: pl.DataFrame, path: Path) -> None:
    with path.open("w") as out:
        for row in events.iter_rows(named=True):
            out.write(
                json.dumps(
                    {
                        "event_id": row["event_id"],
                        "user_id": row["user_id"],
                        "event_name": row["event_name"],
                        "ts": row["ts"].isoformat() + "Z",
                        "properties": {"spend": row["spend"], "quantity": row["quantity"]},
                    }
                )
                + "\n"
            )


def truth(events: pl.DataFrame, latents: dict, created: date, window_days: int) -> pl.DataFrame:
    """Per customer: the Bayes-optimal and oracle probabilities, and the real outcome."""
    params = BgNbdParams(**CDNOW_PARAMS)
    start = datetime.combine(created, datetime.min.time())
    end = start + timedelta(days=window_days)
    weeks = (events["ts"] - datetime.combine(START, datetime.min.time())).dt.total_microseconds() / (7 * 86_400e6)
    frame = events.with_columns(weeks.alias("w"))
    before = (
        frame.filter(pl.col("ts") < start)
        .group_by("user_id")
        .agg(pl.col("w").min().alias("first"), pl.col("w").max().alias("last"), (pl.len() - 1).alias("x"))
    )
    achieved = frame.filter((pl.col("ts") >= start) & (pl.col("ts") < end)).select("user_id").unique()
    T_now = (created - START).days / 7
    t = window_days / 7
    x = before["x"].to_numpy().astype(float)
    t_x = (before["last"] - before["first"]).to_numpy()
    T = T_now - before["first"].to_numpy()
    bayes = bgnbd.p_purchase(params, t, x, t_x, T)
    index = before["user_id"].str.slice(1).cast(pl.Int64).to_numpy()
    alive = latents["death"][index] > T_now
    oracle = np.where(alive, 1 - np.exp(-latents["lam"][index] * t), 0.0)
    return before.select("user_id").with_columns(
        pl.Series("bayes", bayes),
        pl.Series("oracle", oracle),
        pl.col("user_id").is_in(achieved["user_id"].implode()).cast(pl.Int8).alias("label"),
    )


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels, scores))


def demo_figures(folder: Path) -> None:
    from segment_pipeline.config.project import load_project_config
    from segment_pipeline.demo.generator import DemoSpec, generate_demo
    from segment_pipeline.goals.goal_day import run_goal_day
    from segment_pipeline.goals.outcomes import achievers_by_day
    from segment_pipeline.ingest.profiles import load_profiles
    from segment_pipeline.settings import BUNDLED_CONFIG_DIR

    spec = DemoSpec()
    last_day = spec.start + timedelta(days=spec.days - 1)
    files = generate_demo(folder / "demo", spec)
    config = load_project_config(BUNDLED_CONFIG_DIR)
    tracking_uri = (folder / "mlruns").as_uri()
    with warehouse.connect(folder / "warehouse.duckdb") as con:
        load_events(con, discover(files.events_glob, env_var="DEMO"), snapshot_date=last_day, max_reject_rate=0.01)
        load_profiles(con, discover(str(files.profiles_path), env_var="DEMO"), snapshot_date=last_day)
        for goal in config.goals.goals:
            clock = time.perf_counter()
            day, statuses = goal.frozen_as_of, []
            while day <= min(goal.end_date, last_day):
                result = run_goal_day(con, goal, config.segments, day, tracking_uri=tracking_uri)
                statuses.append(result.status)
                day += timedelta(days=1)
            print(
                f"\n== {goal.name} ({goal.segment}, {goal.created_on}..{goal.end_date}; "
                f"{len(statuses)} nights in {time.perf_counter() - clock:.0f}s; last status {statuses[-1]})"
            )
            if "insufficient_history" in statuses[:1] and statuses[-1] == "insufficient_history":
                print(
                    con.execute(
                        "SELECT message FROM analytics.goal_status WHERE goal_name = ? ORDER BY as_of_date DESC",
                        [goal.name],
                    ).fetchone()[0]
                )
                continue
            for as_of, kind, promoted, reason in con.execute(
                """SELECT as_of_date, model_kind, promoted, reason FROM pipeline_state.goal_model_decisions
                   WHERE goal_name = ? ORDER BY as_of_date""",
                [goal.name],
            ).fetchall():
                print(f"training as of {as_of}: {kind} {'promoted' if promoted else 'rejected'}: {reason}")
            seen = min(goal.end_date, last_day)
            done = achievers_by_day(con, goal, None, goal.created_on, seen).select("user_id")
            creation = (
                con.execute(
                    "SELECT user_id, score, bucket FROM pipeline_state.goal_creation_scores WHERE goal_name = ?",
                    [goal.name],
                )
                .pl()
                .with_columns(pl.col("user_id").is_in(done["user_id"].implode()).alias("hit"))
            )
            predicted = con.execute(
                """SELECT predicted_cumulative FROM pipeline_state.goal_creation_forecasts
                   WHERE goal_name = ? AND day = ?""",
                [goal.name, seen],
            ).fetchone()[0]
            actual = int(creation["hit"].sum())
            print(
                f"creation forecast by {seen}: {predicted:,.1f} vs actual {actual:,} "
                f"({(predicted - actual) / actual:+.1%}); AUC of creation scores {auc(creation['hit'].to_numpy(), creation['score'].to_numpy()):.3f}"
                if actual
                else f"creation forecast by {seen}: {predicted:,.1f}, no achiever yet"
            )
            control = creation.join(
                con.execute(
                    """SELECT user_id FROM analytics.target_groups WHERE goal_name = ? AND "group" = 'control'""",
                    [goal.name],
                ).pl(),
                on="user_id",
            )
            if control.height and control["hit"].sum() and goal.end_date <= last_day:
                # The control gets no campaign: the fair check of a forecast made before it.
                share = float(creation.filter(pl.col("user_id").is_in(control["user_id"].implode()))["score"].sum())
                print(
                    f"control group ({control.height} users): sum of creation scores {share:.1f} vs "
                    f"{int(control['hit'].sum())} achievers ({share / control['hit'].sum() - 1:+.1%})"
                )
            rates = (
                creation.group_by("bucket").agg(pl.len().alias("n"), pl.col("hit").mean().alias("rate")).sort("bucket")
            )
            print("buckets at creation: " + ", ".join(f"{b} {n:,} users {r:.1%}" for b, n, r in rates.iter_rows()))
            quality = con.execute(
                """SELECT count(*), avg(auc), min(auc_ci_low), max(auc_ci_high), avg(brier), avg(top_bucket_lift),
                          sum(predicted_achievers) / sum(achievers) - 1
                   FROM analytics.goal_model_quality WHERE goal_name = ?""",
                [goal.name],
            ).fetchone()
            if quality[0]:
                print(
                    f"realized quality, {quality[0]} matured nights: mean AUC {quality[1]:.3f} "
                    f"(95% CI of nights from {quality[2]:.3f} to {quality[3]:.3f}), mean Brier {quality[4]:.4f}, "
                    f"mean most-likely lift {quality[5]:.2f}x, predicted vs actual achievers {quality[6]:+.1%}"
                )
            else:
                print(f"realized quality: none yet (the window ends {goal.end_date}, the data on {last_day})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=23_000)
    parser.add_argument("--weeks", type=float, default=78)
    parser.add_argument("--window", type=int, default=28, help="goal window in days, from week 52")
    parser.add_argument("--lookback", type=int, default=90)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", help="a folder to keep the warehouse, event file and MLflow store in")
    parser.add_argument("--demo", action="store_true", help="run the bundled demo goals instead")
    args = parser.parse_args()
    if args.demo:
        demo_figures(Path(args.keep or tempfile.mkdtemp(prefix="benchmark_demo_goals_")))
        return
    created = START + timedelta(weeks=CREATED_WEEK)
    end = created + timedelta(days=args.window - 1)
    if (end - START).days >= args.weeks * 7:
        parser.error("the goal window must end within --weeks")
    folder = Path(args.keep or tempfile.mkdtemp(prefix="benchmark_models_"))
    folder.mkdir(parents=True, exist_ok=True)

    clock = time.perf_counter()
    events, latents = simulate(args.customers, args.weeks, args.seed)
    write_ndjson(events, folder / "events.ndjson")
    print(
        f"simulated {args.customers:,} customers, {events.height:,} purchases in {args.weeks:g} weeks "
        f"({time.perf_counter() - clock:.1f}s); goal window {created}..{end}, lookbackDays {args.lookback}"
    )

    segments = load_segments_text("kind: segments\nsegmentDefinitions: []\n")
    goal = load_goals_text(
        f"""kind: goals
goals:
  - goalName: repeat purchase
    segment: All Users
    createdOn: {created}
    endDate: {end}
    objective: maximize
    events: [{{eventType: purchase}}]
    lookbackDays: {args.lookback}
""",
        segments,
    ).goals[0]
    with warehouse.connect(folder / "warehouse.duckdb") as con:
        clock = time.perf_counter()
        report = load_events(
            con,
            discover(str(folder / "events.ndjson"), env_var="BENCHMARK_EVENTS"),
            snapshot_date=end + timedelta(days=1),
            max_reject_rate=0.0,
        )
        print(
            f"ingest: {report.loaded:,} events loaded, {report.rejected} rejected ({time.perf_counter() - clock:.1f}s)"
        )

        clock = time.perf_counter()
        setup = set_up_goal(con, goal, segments, as_of=goal.frozen_as_of, tracking_uri=(folder / "mlruns").as_uri())
        print(f"set_up_goal: {setup.status} ({time.perf_counter() - clock:.1f}s): {setup.message}")
        if setup.status != "active":
            return
        creation = con.execute(
            "SELECT user_id, score, bucket FROM pipeline_state.goal_creation_scores WHERE goal_name = ?", [goal.name]
        ).pl()
        forecast = con.execute(
            "SELECT max(predicted_cumulative) FROM pipeline_state.goal_creation_forecasts WHERE goal_name = ?",
            [goal.name],
        ).fetchone()[0]

        clock = time.perf_counter()
        first = features.first_event_day(con)
        anchors = features.choose_anchors(first, goal.created_on, goal.length_days, goal.lookback_days)
        result = train(con, goal, segments, anchors)
        group = target_group(con, goal.name)
        scoring = features.build_scoring_set(con, goal, group["user_id"], goal.frozen_as_of, spec=result.set.spec)
        print(
            f"candidates retrained for the comparison ({time.perf_counter() - clock:.1f}s), anchors "
            f"{', '.join(map(str, anchors))}"
        )

    known = truth(events, latents, created, args.window)
    frame = known.join(creation, on="user_id", how="inner").join(scoring, on="user_id", how="inner")
    y = frame["label"].to_numpy()
    ceiling = auc(y, frame["bayes"].to_numpy())
    champion = auc(y, frame["score"].to_numpy())
    print(f"\ntarget group {frame.height:,} users, {int(y.sum()):,} achieved in the window ({y.mean():.3%})")
    print(f"{'model':<28}{'AUC (window)':>13}{'held-out AUC':>14}{'held-out Brier':>16}{'forecast err':>14}")
    print(f"{'oracle (latent rate, alive)':<28}{auc(y, frame['oracle'].to_numpy()):>13.4f}")
    print(
        f"{'ceiling (Bayes, true params)':<28}{ceiling:>13.4f}{'':>14}{'':>16}"
        f"{(frame['bayes'].sum() - y.sum()) / y.sum():>+14.1%}"
    )
    for candidate in result.candidates:
        scores = candidate.model.predict_proba(frame.select(candidate.model.feature_columns))
        print(
            f"{model_kind(candidate.model):<28}{auc(y, scores):>13.4f}{candidate.metrics['auc']:>14.4f}"
            f"{candidate.metrics['brier']:>16.4f}{(scores.sum() - y.sum()) / y.sum():>+14.1%}"
        )
    forecast_error = (forecast - y.sum()) / y.sum()
    print(f"{'champion (creation scores)':<28}{champion:>13.4f}{'':>14}{'':>16}{forecast_error:>+14.1%}")
    print(f"selection: {result.selection}")

    rates = frame.group_by("bucket").agg(pl.len().alias("users"), pl.col("label").mean().alias("conversion"))
    rates = {r["bucket"]: r for r in rates.iter_rows(named=True)}
    print(
        "\nbuckets at creation: "
        + ", ".join(
            f"{b} {rates[b]['users']:,} users, {rates[b]['conversion']:.1%} converted" if b in rates else f"{b} EMPTY"
            for b in ("most_likely", "moderately_likely", "least_likely")
        )
    )
    ratio = (
        rates["most_likely"]["conversion"] / rates["least_likely"]["conversion"]
        if {"most_likely", "least_likely"} <= rates.keys() and rates["least_likely"]["conversion"]
        else float("inf")
    )
    checks = {
        f"champion AUC within 0.01 of the ceiling ({champion:.4f} vs {ceiling:.4f})": champion >= ceiling - 0.01,
        f"forecast within 5% of actual achievers ({forecast:,.0f} vs {int(y.sum()):,}: {forecast_error:+.1%})": abs(
            forecast_error
        )
        <= 0.05,
        f"three non-empty buckets, most/least conversion >= 3x ({ratio:.1f}x)": len(rates) == 3 and ratio >= 3,
    }
    print()
    for text, ok in checks.items():
        print(f"{'PASS' if ok else 'FAIL'}: {text}")
    print(f"\nwarehouse, events and MLflow store in {folder}")


if __name__ == "__main__":
    main()
