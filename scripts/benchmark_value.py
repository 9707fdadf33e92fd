"""Benchmark: value goals on a simulated BG/NBD x Gamma-Gamma population whose truth is known.

Customers follow the BG/NBD process with the CDNOW estimates (as ``benchmark_models.py``)
and spend per purchase ``z ~ Gamma(p, nu)``, ``nu ~ Gamma(q, gamma)`` per customer with the
CDNOW spend estimates p = 6.25, q = 3.74, gamma = 15.44 (Fader, Hardie and Lee 2005). The
events go through the real ingest; a value goal (``valueProperty: spend``) on All Users is
set up by the real goal code (``set_up_goal``: probability champion, both value kinds, value
champion, creation value forecast), as the nightly job would.

Reported on the target group in the goal window:
- the creation value forecast's total against the actual total value;
- per value kind (the hurdle model, the BG/NBD x Gamma-Gamma baseline) refitted on the same
  training set: total error, MAE, Spearman rank correlation with the TRUE expected value
  (BG/NBD x Gamma-Gamma conditional expectation under the true parameters, given each
  customer's history before createdOn) and with the realized value.
Done when: total predicted value within 10% of actual, and the champion's rank correlation
with the true expected value at least the baseline's.

    .venv/bin/python scripts/benchmark_value.py [--customers 23000] [--window 28] [--seed 1]
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
from segment_pipeline.goals import features, value_model
from segment_pipeline.goals.setup import set_up_goal, train
from segment_pipeline.goals.target_groups import target_group
from segment_pipeline.goals.tracking import load_champion
from segment_pipeline.goals.value_setup import load_value_model
from segment_pipeline.ingest.events import load_events
from segment_pipeline.ingest.sources import discover
from segment_pipeline.stats import bgnbd, gamma_gamma
from segment_pipeline.stats.bgnbd import CDNOW_PARAMS, BgNbdParams
from segment_pipeline.stats.gamma_gamma import CDNOW_SPEND_PARAMS, GammaGammaParams
from segment_pipeline.stats.value import spearman, value_errors
from segment_pipeline.storage import warehouse

START = date(2025, 1, 6)  # a Monday
ACQUISITION_WEEKS = 12
CREATED_WEEK = 52


def simulate(customers: int, weeks: float, seed: int) -> pl.DataFrame:
    """Purchases (the first at acquisition, then BG/NBD repeats) with Gamma-Gamma spend."""
    rng = np.random.default_rng(seed)
    born = rng.uniform(0, ACQUISITION_WEEKS, customers)
    times, _, _, _ = bgnbd.simulate_customers(BgNbdParams(**CDNOW_PARAMS), weeks - born, rng)
    counts = np.array([len(t) + 1 for t in times])
    spends, _ = gamma_gamma.simulate_spend(GammaGammaParams(**CDNOW_SPEND_PARAMS), counts, rng)
    users, at, spend = [], [], []
    for i, repeats in enumerate(times):
        for k, t in enumerate((0.0, *repeats)):
            users.append(f"c{i:05d}")
            at.append(born[i] + t)
            spend.append(round(float(spends[i][k]), 2))
    origin = datetime.combine(START, datetime.min.time())
    return pl.DataFrame(
        {
            "event_id": [f"e{k}" for k in range(len(at))],
            "user_id": users,
            "event_name": "purchase",
            "ts": [origin + timedelta(weeks=float(w)) for w in at],
            "spend": spend,
        }
    )


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
                        "properties": {"spend": row["spend"]},
                    }
                )
                + "\n"
            )


def truth(events: pl.DataFrame, created: date, window_days: int) -> pl.DataFrame:
    """Per customer: the true expected value in the window given the history, and the realized value."""
    start = datetime.combine(created, datetime.min.time())
    end = start + timedelta(days=window_days)
    origin = datetime.combine(START, datetime.min.time())
    frame = events.with_columns(((pl.col("ts") - origin).dt.total_microseconds() / (7 * 86_400e6)).alias("w"))
    before = (
        frame.filter(pl.col("ts") < start)
        .group_by("user_id")
        .agg(
            pl.col("w").min().alias("first"),
            pl.col("w").max().alias("last"),
            (pl.len() - 1).alias("x"),
            pl.col("spend").mean().alias("m"),
            pl.len().alias("n"),
        )
        .sort("user_id")
    )
    realized = (
        frame.filter((pl.col("ts") >= start) & (pl.col("ts") < end))
        .group_by("user_id")
        .agg(pl.col("spend").sum().alias("actual"))
    )
    T_now = (created - START).days / 7
    x = before["x"].to_numpy().astype(float)
    purchases = bgnbd.conditional_expected(
        BgNbdParams(**CDNOW_PARAMS),
        window_days / 7,
        x,
        (before["last"] - before["first"]).to_numpy(),
        T_now - before["first"].to_numpy(),
    )
    spend = gamma_gamma.conditional_expected_spend(
        GammaGammaParams(**CDNOW_SPEND_PARAMS), before["n"].to_numpy(), before["m"].to_numpy()
    )
    return (
        before.select("user_id")
        .with_columns(pl.Series("true_expected", purchases * spend))
        .join(realized, on="user_id", how="left")
        .with_columns(pl.col("actual").fill_null(0.0))
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=23_000)
    parser.add_argument("--weeks", type=float, default=78)
    parser.add_argument("--window", type=int, default=28, help="goal window in days, from week 52")
    parser.add_argument("--lookback", type=int, default=90)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", help="a folder to keep the warehouse, event file and MLflow store in")
    args = parser.parse_args()
    created = START + timedelta(weeks=CREATED_WEEK)
    end = created + timedelta(days=args.window - 1)
    folder = Path(args.keep or tempfile.mkdtemp(prefix="benchmark_value_"))
    folder.mkdir(parents=True, exist_ok=True)

    clock = time.perf_counter()
    events = simulate(args.customers, args.weeks, args.seed)
    write_ndjson(events, folder / "events.ndjson")
    print(
        f"simulated {args.customers:,} customers, {events.height:,} purchases ({time.perf_counter() - clock:.1f}s); "
        f"goal window {created}..{end}"
    )
    segments = load_segments_text("kind: segments\nsegmentDefinitions: []\n")
    goal = load_goals_text(
        f"""kind: goals
goals:
  - goalName: repeat revenue
    segment: All Users
    createdOn: {created}
    endDate: {end}
    objective: maximize
    events: [{{eventType: purchase}}]
    lookbackDays: {args.lookback}
    valueProperty: spend
""",
        segments,
    ).goals[0]
    tracking_uri = (folder / "mlruns").as_uri()
    with warehouse.connect(folder / "warehouse.duckdb") as con:
        load_events(
            con,
            discover(str(folder / "events.ndjson"), env_var="BENCHMARK_EVENTS"),
            snapshot_date=end + timedelta(days=1),
            max_reject_rate=0.0,
        )
        clock = time.perf_counter()
        setup = set_up_goal(con, goal, segments, as_of=goal.frozen_as_of, tracking_uri=tracking_uri)
        print(f"set_up_goal: {setup.status} ({time.perf_counter() - clock:.1f}s): {setup.message}")
        if setup.status != "active":
            return
        forecast = con.execute(
            """SELECT max(predicted_value_cumulative), max(predicted_value_low), max(predicted_value_high)
            FROM pipeline_state.goal_creation_value_forecasts WHERE goal_name = ?""",
            [goal.name],
        ).fetchone()
        champion_kind = load_value_model(con, goal.name)[1]
        # Both kinds on the same training set, scored on the target group at creation.
        first = features.first_event_day(con)
        anchors = features.choose_anchors(first, goal.created_on, goal.length_days, goal.lookback_days)
        result = train(con, goal, segments, anchors)
        probability = load_champion(tracking_uri, goal.name).model
        values = value_model.window_values(con, goal, result.set.frame)
        candidates, notes = value_model.train_value_models(
            result.set.frame, values, result.set.feature_columns, probability, goal.value_property
        )
        group = target_group(con, goal.name)
        scoring = features.build_scoring_set(con, goal, group["user_id"], goal.frozen_as_of, spec=result.set.spec)

    known = truth(events, created, args.window).join(scoring, on="user_id", how="inner")
    p = probability.predict_proba(known)
    actual, true_expected = known["actual"].to_numpy(), known["true_expected"].to_numpy()
    total = actual.sum()
    print(
        f"\ntarget group {known.height:,} customers, actual value in the window {total:,.0f}; "
        f"true-parameter expectation {true_expected.sum():,.0f}"
    )
    print(
        f"{'kind':<22}{'total pred':>12}{'total err':>11}{'MAE':>9}{'rho(true E)':>13}{'rho(actual)':>13}"
        f"{'held-out MAE':>14}"
    )
    rho = {}
    for c in candidates:
        predicted = c.model.predict_value(known, p)
        errors = value_errors(predicted, actual)
        rho[c.model.kind] = spearman(predicted, true_expected)
        print(
            f"{c.model.kind:<22}{predicted.sum():>12,.0f}{errors['value_total_rel_error']:>+11.1%}"
            f"{errors['value_mae']:>9.2f}{rho[c.model.kind]:>13.4f}{errors['value_spearman']:>13.4f}"
            f"{c.metrics['value_mae']:>14.3f}"
        )
    print(
        f"{'truth (true params)':<22}{true_expected.sum():>12,.0f}{(true_expected.sum() - total) / total:>+11.1%}"
        f"{np.mean(np.abs(true_expected - actual)):>9.2f}{1.0:>13.4f}{spearman(true_expected, actual):>13.4f}"
    )
    if notes:
        print("notes: " + "; ".join(notes))
    error = (forecast[0] - total) / total
    print(
        f"\nvalue champion: {champion_kind}; creation value forecast {forecast[0]:,.0f} "
        f"(90% {forecast[1]:,.0f} to {forecast[2]:,.0f}) vs actual {total:,.0f}: {error:+.1%}"
    )
    checks = {
        f"creation value forecast within 10% of actual ({error:+.1%})": abs(error) <= 0.10,
        f"champion's rank correlation with the true expected value >= the baseline's "
        f"({rho.get(champion_kind, float('nan')):.4f} vs {rho.get('bgnbd_gamma_gamma', float('nan')):.4f})": rho.get(
            champion_kind, -1
        )
        >= rho.get("bgnbd_gamma_gamma", 2) - 1e-12,
    }
    for text, ok in checks.items():
        print(f"{'PASS' if ok else 'FAIL'}: {text}")
    print(f"\nwarehouse, events and MLflow store in {folder}")


if __name__ == "__main__":
    main()
