"""Daily app sessions and the shopping funnel inside each session.

A user's daily session count is Poisson(engagement x weekday x slow drift x fading);
the loop runs over days, vectorised over users. Each session then becomes a funnel of
events a few seconds to minutes apart: app_launch -> login? -> search? -> item_viewed
xN -> add_to_cart? -> checkout_viewed? -> charged? -> rating_given?. Purchase odds
rise with engagement, recent activity, a paying plan and (for San Francisco users)
concert taste, so past activity truly predicts future purchases.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import polars as pl

from segment_pipeline.demo.frames import emit, labels, timestamps
from segment_pipeline.demo.population import (
    CATEGORIES,
    CITY_UTC_OFFSET,
    CONCERT,
    LOGIN_METHODS,
    MEDIAN_SESSION_RATE,
    NEVER,
    OSES,
    PAYMENT_METHODS,
    Population,
)

WEEKDAY_FACTOR = np.array([0.90, 0.88, 0.92, 0.98, 1.12, 1.25, 1.10])  # Monday first
DRIFT_KEEP, DRIFT_NOISE = 0.97, 0.08  # slow day-to-day wander of engagement
RECENT_DECAY = 0.8  # weight of yesterday's sessions in "recent activity"
FADE_TAU_DAYS, FADE_FLOOR = 6.0, 0.04
MAX_SESSIONS = 8  # per user and day
DORMANT_DAYS, DORMANT_UNINSTALL_HAZARD = 21, 0.003  # daily, once dormant
CAMPAIGN_RATE_LIFT = 1.2  # recipients of the goal campaign come back a bit more
ENGAGED_EXTRA_ITEM_RANK = 0.75  # engagement rank from which a basket holds one more item

# Local-time hour weights for session starts: morning, lunch and evening peaks.
HOUR_WEIGHTS = np.array(
    [0.5, 0.3, 0.2, 0.1, 0.1, 0.3, 1.2, 2.5, 3.5, 3.0, 2.8, 3.0,
     4.5, 4.0, 3.0, 3.0, 3.2, 4.0, 5.0, 6.0, 6.5, 6.0, 4.0, 2.0]
)  # fmt: skip
HOUR_CUM = np.cumsum(HOUR_WEIGHTS) / HOUR_WEIGHTS.sum()
HOUR_CUM[-1] = 1.0

INTENT_BASE = -1.9
PLAN_BONUS = np.array([0.0, 0.25, 0.6])  # free, plus, premium
CATEGORY_BONUS = np.array([0.1, 0.0, -0.1, -0.2, 0.0])
SF_CONCERT_BONUS = 0.5
BOOST_CONCERT_SWITCH = 0.3  # share of a boosted session steered to concerts
BOOST_CONCERT_BONUS = 0.8
HINT_FOLLOW = 0.7  # a session opened from a push shows the pushed category
CATEGORY_PRICE = np.array([85.0, 70.0, 60.0, 35.0, 150.0])
STAR_CUM = np.cumsum([0.05, 0.07, 0.15, 0.33, 0.40])
STAR_CUM[-1] = 1.0  # stars 1..5, never 6


@dataclass(frozen=True)
class SessionPlan:
    """One entry per session; ``fixed_start`` is NaN when a plausible hour is drawn."""

    user: np.ndarray  # int32
    day: np.ndarray  # int32
    recent: np.ndarray  # decayed session count of earlier days
    vigour: np.ndarray  # that day's session rate of the user
    fixed_start: np.ndarray  # seconds into the day, or NaN
    hint: np.ndarray  # int8 category pushed to the user, -1 for none
    boost: np.ndarray  # bool: under the goal campaign's effect

    @staticmethod
    def concat(*plans: SessionPlan) -> SessionPlan:
        return SessionPlan(
            **{
                field: np.concatenate([getattr(plan, field) for plan in plans])
                for field in SessionPlan.__dataclass_fields__
            }
        )


def alive_on(pop: Population, day: int) -> np.ndarray:
    """Signed up and not yet uninstalled on ``day``."""
    return (pop.signup_day <= day) & (day < pop.uninstall_day)


@dataclass(frozen=True)
class DailyActivity:
    sessions: SessionPlan
    uninstall_day: np.ndarray  # faders' planned uninstalls plus dormant users' ones
    campaign_recipients: np.ndarray  # bool: got the goal campaign


def plan_daily_sessions(
    pop: Population, start: date, days: int, campaign_day: int, rng: np.random.Generator
) -> DailyActivity:
    """Organic sessions, day by day. On ``campaign_day`` the still-installed users of
    the goal's test group receive the goal campaign and are boosted from the next day.
    Users dormant for weeks also uninstall now and then."""
    n = pop.size
    drift = np.zeros(n)
    recent = np.zeros(n)
    uninstall_day = pop.uninstall_day.copy()
    last_active = np.where(pop.signup_day < 0, -rng.integers(0, 30, n), pop.signup_day)
    recipients = np.zeros(n, bool)
    boost_from = np.full(n, NEVER)
    chunks: list[tuple[np.ndarray, ...]] = []
    for day in range(days):
        drift = DRIFT_KEEP * drift + DRIFT_NOISE * rng.standard_normal(n)
        dormant = (day - last_active >= DORMANT_DAYS) & (pop.signup_day < day)
        quits = dormant & (day < uninstall_day) & (rng.random(n) < DORMANT_UNINSTALL_HAZARD)
        uninstall_day[quits] = day
        alive = (pop.signup_day <= day) & (day < uninstall_day)
        if day == campaign_day:
            recipients = pop.goal_test & alive
            boost_from = np.where(recipients, day + 1, NEVER)

        since_fade = np.maximum(day - pop.fade_day, 0)
        fade = np.where(day >= pop.fade_day, np.maximum(FADE_FLOOR, np.exp(-since_fade / FADE_TAU_DAYS)), 1.0)
        vigour = pop.engagement * np.exp(drift) * fade
        vigour = np.where(day >= boost_from, vigour * CAMPAIGN_RATE_LIFT, vigour)
        weekday = WEEKDAY_FACTOR[(start.toordinal() + day - 1) % 7]
        count = np.minimum(rng.poisson(np.where(alive, vigour * weekday, 0.0)), MAX_SESSIONS)
        first_day = pop.signup_day == day
        count[first_day] = np.maximum(count[first_day], 1)  # signing up is a session
        users = np.flatnonzero(count).astype(np.int32)
        chunks.append((users, count[users], recent[users], vigour[users]))
        recent = RECENT_DECAY * recent + count
        last_active[users] = day

    counts = np.concatenate([c[1] for c in chunks])
    day_of = np.concatenate([np.full(len(c[0]), d, np.int32) for d, c in enumerate(chunks)])
    user = np.repeat(np.concatenate([c[0] for c in chunks]), counts).astype(np.int32)
    day = np.repeat(day_of, counts)
    size = len(user)
    sessions = SessionPlan(
        user=user,
        day=day,
        recent=np.repeat(np.concatenate([c[2] for c in chunks]), counts),
        vigour=np.repeat(np.concatenate([c[3] for c in chunks]), counts),
        fixed_start=np.full(size, np.nan),
        hint=np.full(size, -1, np.int8),
        boost=day >= boost_from[user],
    )
    return DailyActivity(sessions, uninstall_day, recipients)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _session_starts(pop: Population, plan: SessionPlan, rng: np.random.Generator) -> np.ndarray:
    """Seconds after 00:00 UTC: a local waking hour converted with the city's offset."""
    size = len(plan.user)
    hour = np.searchsorted(HOUR_CUM, rng.random(size), side="right")
    local = hour * 3600 + rng.uniform(0, 3600, size)
    offset = np.asarray(CITY_UTC_OFFSET)[pop.city[plan.user]] * 3600
    drawn = np.mod(local - offset, 86_400)
    return np.where(np.isnan(plan.fixed_start), drawn, plan.fixed_start)


@dataclass(frozen=True)
class Funnel:
    """Which steps each session reaches and when (seconds after its app_launch)."""

    category: np.ndarray
    login: np.ndarray
    search: np.ndarray
    cart: np.ndarray
    checkout: np.ndarray
    charge: np.ndarray
    rating: np.ndarray
    view_session: np.ndarray  # one entry per item view: its session
    t_view: np.ndarray  # one entry per item view
    t_login: np.ndarray
    t_search: np.ndarray
    t_cart: np.ndarray
    t_checkout: np.ndarray
    t_charge: np.ndarray
    t_rating: np.ndarray
    length: np.ndarray


def _funnel(pop: Population, plan: SessionPlan, rng: np.random.Generator) -> Funnel:
    size = len(plan.user)
    user = plan.user
    cat = np.minimum((rng.random(size)[:, None] >= pop.category_cum[user]).sum(axis=1), 4)
    follows_hint = (plan.hint >= 0) & (rng.random(size) < HINT_FOLLOW)
    cat = np.where(follows_hint, plan.hint, cat)
    cat = np.where(plan.boost & (rng.random(size) < BOOST_CONCERT_SWITCH), CONCERT, cat)
    is_concert = cat == CONCERT

    intent = (
        INTENT_BASE
        + 0.5 * np.log(plan.vigour / MEDIAN_SESSION_RATE)
        + 0.35 * np.log1p(plan.recent)
        + PLAN_BONUS[pop.plan[user]]
        + CATEGORY_BONUS[cat]
        + SF_CONCERT_BONUS * (pop.is_sf[user] & is_concert)
        + BOOST_CONCERT_BONUS * (plan.boost & is_concert)
    )
    login = rng.random(size) < 0.3
    search = rng.random(size) < 0.35
    n_views = 1 + np.minimum(rng.poisson(1.2, size), 11)
    cart = rng.random(size) < _sigmoid(intent)
    checkout = cart & (rng.random(size) < 0.62)
    charge = checkout & (rng.random(size) < _sigmoid(intent + 1.2))
    rating = charge & (rng.random(size) < 0.3)

    # Every step comes at least a few seconds after the one before.
    t_login = np.where(login, rng.uniform(3, 30, size), 0.0)
    t_search = t_login + np.where(search, rng.uniform(8, 90, size), 0.0)
    view_session = np.repeat(np.arange(size), n_views)
    elapsed = np.cumsum(12 + rng.exponential(70, len(view_session)))
    first_view = np.cumsum(n_views) - n_views
    before = np.concatenate([[0.0], elapsed])[first_view]
    t_view = t_search[view_session] + elapsed - before[view_session]
    t_last_view = t_view[first_view + n_views - 1]
    t_cart = t_last_view + 15 + rng.exponential(50, size)
    t_checkout = t_cart + 10 + rng.exponential(40, size)
    t_charge = t_checkout + 25 + rng.exponential(80, size)
    t_rating = t_charge + 60 + rng.exponential(300, size)
    length = np.select([rating, charge, checkout, cart], [t_rating, t_charge, t_checkout, t_cart], t_last_view)
    return Funnel(
        cat, login, search, cart, checkout, charge, rating, view_session, t_view,
        t_login, t_search, t_cart, t_checkout, t_charge, t_rating, length,
    )  # fmt: skip


def session_events(pop: Population, plan: SessionPlan, start: date, rng: np.random.Generator) -> list[pl.DataFrame]:
    """Every event of every planned session, one frame per event type."""
    size = len(plan.user)
    if size == 0:
        return []
    user = plan.user
    f = _funnel(pop, plan, rng)
    # Keep each session inside its UTC day, so a day's events are complete at midnight:
    # a session that would run past midnight starts earlier instead.
    begin = _session_starts(pop, plan, rng)
    too_late = begin + f.length > 86_399
    earlier = 86_399 - f.length - rng.uniform(0, 3600, size)
    begin = np.maximum(np.where(too_late, earlier, begin), 0.0)

    def at(step: np.ndarray, offset: np.ndarray) -> np.ndarray:
        return timestamps(start, plan.day[step], begin[step] + offset[step])

    everyone = np.ones(size, bool)
    price = np.round(CATEGORY_PRICE[f.category] * np.exp(rng.normal(0, 0.35, size)), 2)
    items = 1 + np.minimum(rng.poisson(0.6, size), 5)
    # Planted value structure, without drawing (the event stream stays as it was): the
    # most engaged quarter buys an extra item, and the goal campaign adds one too.
    items = items + (pop.engagement_rank[user] >= ENGAGED_EXTRA_ITEM_RANK) + plan.boost.astype(items.dtype)
    own_method = rng.random(size) < 0.88
    method = np.where(own_method, pop.payment_method[user], rng.integers(0, 3, size))
    views = f.view_session
    view_category = labels(CATEGORIES, f.category[views])
    item_no = np.strings.zfill(np.minimum(rng.zipf(1.4, len(views)), 500).astype(str), 4)
    stars = 1 + np.searchsorted(STAR_CUM, rng.random(int(f.rating.sum())), side="right")
    cart, paid = f.cart, f.charge
    return [
        emit(
            "app_launch",
            user,
            at(everyone, np.zeros(size)),
            os=labels(OSES, pop.os[user]),
            push_enabled=pop.push_enabled[user],
        ),
        emit(
            "login",
            user[f.login],
            at(f.login, f.t_login),
            method=labels(LOGIN_METHODS, pop.login_method[user[f.login]]),
        ),
        emit(
            "search",
            user[f.search],
            at(f.search, f.t_search),
            query_len=2 + rng.poisson(9, int(f.search.sum())),
        ),
        emit(
            "item_viewed",
            user[views],
            timestamps(start, plan.day[views], begin[views] + f.t_view),
            category=view_category,
            item_id=np.strings.add(np.strings.add(view_category, "-"), item_no),
        ),
        emit(
            "add_to_cart",
            user[cart],
            at(cart, f.t_cart),
            category=labels(CATEGORIES, f.category[cart]),
            price=price[cart],
        ),
        emit("checkout_viewed", user[f.checkout], at(f.checkout, f.t_checkout)),
        emit(
            "charged",
            user[paid],
            at(paid, f.t_charge),
            category=labels(CATEGORIES, f.category[paid]),
            amount=np.round(price[paid] * items[paid], 2),
            payment_method=labels(PAYMENT_METHODS, method[paid]),
            items=items[paid],
        ),
        emit("rating_given", user[f.rating], at(f.rating, f.t_rating), stars=stars),
    ]
