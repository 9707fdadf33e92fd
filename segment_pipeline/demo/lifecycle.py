"""Marketing campaigns, subscription renewals and uninstalls.

The goal campaign is the planted causal effect: on 2026-06-08 every still-installed
San Francisco user outside the "sell concert tickets" control group gets a concert
push, and from then on buys concert tickets markedly more often. Control users never
get it, so the pipeline's test-vs-control uplift measures a real effect.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import polars as pl

from segment_pipeline.demo.behaviour import SessionPlan, alive_on
from segment_pipeline.demo.frames import emit, timestamps
from segment_pipeline.demo.population import (
    COMEDY,
    CONCERT,
    FESTIVAL,
    PLANS,
    PLUS,
    PREMIUM,
    SPORTS,
    Population,
)

GOAL_CAMPAIGN = "concert_push"
GOAL_CAMPAIGN_DAY = date(2026, 6, 8)

# (day, campaign, category it promotes or -1); sent as pushes to push-enabled users.
PUSH_CAMPAIGNS = (
    (date(2026, 1, 9), "new_year_deals", -1),
    (date(2026, 2, 12), "valentines_comedy", COMEDY),
    (date(2026, 3, 19), "spring_sale", -1),
    (date(2026, 4, 16), "playoffs", SPORTS),
    (date(2026, 5, 14), "festival_season", FESTIVAL),
)
NEWSLETTER = "newsletter"  # e-mail to opted-in users every other Monday
PUSH_SECOND = 17 * 3600  # 09:00 in San Francisco
NEWSLETTER_SECOND = 14 * 3600
RENEWAL_SECOND = 5 * 3600
UPGRADE_BASE, UPGRADE_BY_ENGAGEMENT = 0.02, 0.08  # plus -> premium, per renewal


@dataclass(frozen=True)
class Lifecycle:
    frames: list[pl.DataFrame]
    open_sessions: SessionPlan  # sessions started by opening a push
    final_plan: np.ndarray  # plan at the end of the period (for the profile table)


def _push(
    pop: Population,
    start: date,
    day: int,
    name: str,
    audience: np.ndarray,
    hint: int,
    open_rate: np.ndarray,
    boost: bool,
    rng: np.random.Generator,
) -> tuple[list[pl.DataFrame], SessionPlan]:
    """A push to ``audience``; openers open it and start a session shortly after."""
    users = np.flatnonzero(audience).astype(np.int32)
    sent = PUSH_SECOND + rng.uniform(0, 600, len(users))
    opened = pop.push_enabled[users] & (rng.random(len(users)) < open_rate[users])
    open_at = np.minimum(sent[opened] + 60 + rng.exponential(1500, int(opened.sum())), 72_000)
    openers = users[opened]
    size = len(openers)
    frames = [
        emit(
            "campaign_sent",
            users,
            timestamps(start, day, sent),
            campaign=np.full(len(users), name),
            channel=np.full(len(users), "push"),
        ),
        emit(
            "notification_opened",
            openers,
            timestamps(start, day, open_at),
            campaign=np.full(size, name),
        ),
    ]
    sessions = SessionPlan(
        user=openers,
        day=np.full(size, day, np.int32),
        recent=np.ones(size),  # the push itself is the recent touch
        vigour=pop.engagement[openers],
        fixed_start=open_at + rng.uniform(2, 15, size),
        hint=np.full(size, hint, np.int8),
        boost=np.full(size, boost),
    )
    return frames, sessions


def campaigns(
    pop: Population, start: date, days: int, recipients: np.ndarray, rng: np.random.Generator
) -> tuple[list[pl.DataFrame], SessionPlan]:
    """Promotional pushes, the goal push to ``recipients`` and the e-mail newsletter."""
    frames: list[pl.DataFrame] = []
    plans: list[SessionPlan] = []
    base_open = 0.04 + 0.14 * pop.engagement_rank
    pushes: list[tuple[date, str, int, np.ndarray | None]] = [(d, name, hint, None) for d, name, hint in PUSH_CAMPAIGNS]
    pushes.append((GOAL_CAMPAIGN_DAY, GOAL_CAMPAIGN, CONCERT, recipients))
    for when, name, hint, audience in sorted(pushes, key=lambda p: p[0]):
        day = (when - start).days
        if not 0 <= day < days:
            continue
        goal = audience is not None
        if audience is not None:
            open_rate = 0.20 + 0.30 * pop.engagement_rank
        else:
            audience = pop.push_enabled & alive_on(pop, day)
            open_rate = base_open
        more, plan = _push(pop, start, day, name, audience, hint, open_rate, goal, rng)
        frames += more
        plans.append(plan)

    first_monday = (7 - start.weekday()) % 7
    for day in range(first_monday, days, 14):
        users = np.flatnonzero(pop.opt_in & alive_on(pop, day)).astype(np.int32)
        sent = NEWSLETTER_SECOND + rng.uniform(0, 900, len(users))
        frames.append(
            emit(
                "campaign_sent",
                users,
                timestamps(start, day, sent),
                campaign=np.full(len(users), NEWSLETTER),
                channel=np.full(len(users), "email"),
            )
        )
    if not plans:
        dtypes = (np.int32, np.int32, float, float, float, np.int8, bool)
        plans.append(SessionPlan(*(np.zeros(0, dtype) for dtype in dtypes)))
    return frames, SessionPlan.concat(*plans)


def renewals(pop: Population, start: date, days: int, rng: np.random.Generator) -> tuple[pl.DataFrame, np.ndarray]:
    """Monthly renewals of paying users on their signup day of month; some plus users
    upgrade to premium at a renewal (more often when engaged)."""
    plan = pop.plan.copy()
    first = int(pop.signup_day.min())
    day_of_month = np.array([(start + timedelta(days=d)).day for d in range(first, days)])
    renewal_dom = np.minimum(day_of_month[pop.signup_day - first], 28)
    users_out, ts_out, plan_out = [], [], []
    for day in range(days):
        dom = (start + timedelta(days=day)).day
        due = (plan >= PLUS) & (renewal_dom == dom) & (pop.signup_day < day) & alive_on(pop, day)
        users = np.flatnonzero(due).astype(np.int32)
        upgrade_odds = UPGRADE_BASE + UPGRADE_BY_ENGAGEMENT * pop.engagement_rank[users]
        upgrade = (plan[users] == PLUS) & (rng.random(len(users)) < upgrade_odds)
        plan[users[upgrade]] = PREMIUM
        users_out.append(users)
        plan_out.append(plan[users])
        ts_out.append(timestamps(start, day, RENEWAL_SECOND + rng.uniform(0, 3600, len(users))))
    frame = emit(
        "subscription_renewed",
        np.concatenate(users_out),
        np.concatenate(ts_out),
        plan=np.asarray(PLANS)[np.concatenate(plan_out).astype(np.int64)],
    )
    return frame, plan


def uninstalls(pop: Population, start: date, days: int, rng: np.random.Generator) -> pl.DataFrame:
    """A user's last event, on a day with no other activity of theirs."""
    users = np.flatnonzero(pop.uninstall_day < days).astype(np.int32)
    seconds = rng.uniform(6 * 3600, 23 * 3600, len(users))
    return emit("uninstall", users, timestamps(start, pop.uninstall_day[users], seconds))


def build_lifecycle(
    pop: Population, start: date, days: int, recipients: np.ndarray, rng: np.random.Generator
) -> Lifecycle:
    frames, open_sessions = campaigns(pop, start, days, recipients, rng)
    renewed, final_plan = renewals(pop, start, days, rng)
    frames += [renewed, uninstalls(pop, start, days, rng)]
    return Lifecycle(frames=frames, open_sessions=open_sessions, final_plan=final_plan)
