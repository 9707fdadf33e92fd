"""Who the demo users are: profile attributes and the latent traits that drive behaviour.

Everything here is drawn once per user, vectorised. The latent traits (engagement,
category taste, fading and uninstall days) are never written out; the pipeline has
to rediscover them from events.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from segment_pipeline.goals.control_group import CONTROL, assign_group

CITIES = ("San Francisco", "New York", "London", "Berlin", "Austin", "Toronto", "Sydney", "Paris")
CITY_WEIGHTS = (0.145, 0.19, 0.155, 0.11, 0.10, 0.10, 0.09, 0.11)
# Hours from UTC (no daylight saving): sessions happen at local waking hours.
CITY_UTC_OFFSET = (-8, -5, 0, 1, -6, -5, 10, 1)
SAN_FRANCISCO = 0

CATEGORIES = ("concert", "sports", "theatre", "comedy", "festival")
CONCERT, SPORTS, THEATRE, COMEDY, FESTIVAL = range(5)
PLANS = ("free", "plus", "premium")
FREE, PLUS, PREMIUM = range(3)
OSES = ("ios", "android", "web")
IOS, ANDROID, WEB = range(3)
PAYMENT_METHODS = ("visa", "mastercard", "paypal", "apple_pay")
LOGIN_METHODS = ("password", "google", "apple")

NEVER = 1_000_000  # a day index no simulation reaches

# Median sessions per day of a user; engagement is log-normal around it (heavy tail).
MEDIAN_SESSION_RATE = 0.06
ENGAGEMENT_SIGMA = 1.0
EXISTING_USER_SHARE = 0.35  # signed up before the demo period starts
FADER_SHARE = 0.15
FADER_UNINSTALL_SHARE = 0.8
MISSING_PROFILE_SHARE = 0.03

# The demo goal whose test group gets a real campaign (see lifecycle.py).
GOAL_NAME = "sell concert tickets"
GOAL_CONTROL_PERCENT = 5


@dataclass(frozen=True)
class Population:
    """One entry per user (index = numeric part of the user id)."""

    city: np.ndarray  # int8 index into CITIES
    os: np.ndarray  # int8 index into OSES
    plan: np.ndarray  # int8 index into PLANS, the plan at the start
    age: np.ndarray  # int16
    opt_in: np.ndarray  # bool: marketing e-mails allowed
    push_enabled: np.ndarray  # bool: can receive and open pushes
    signup_day: np.ndarray  # int32 day index; negative = before the demo period
    engagement: np.ndarray  # float: expected sessions per day before seasonality
    engagement_rank: np.ndarray  # float in [0, 1)
    category_cum: np.ndarray  # (n, 5) cumulative category preference
    payment_method: np.ndarray  # int8 index into PAYMENT_METHODS (preferred)
    login_method: np.ndarray  # int8 index into LOGIN_METHODS
    fade_day: np.ndarray  # int32: first day of a fading habit, NEVER if none
    uninstall_day: np.ndarray  # int32: day of the uninstall, NEVER if none
    has_profile: np.ndarray  # bool
    goal_test: np.ndarray  # bool: San Francisco user outside the demo goal's control

    @property
    def size(self) -> int:
        return len(self.city)

    @property
    def is_sf(self) -> np.ndarray:
        return self.city == SAN_FRANCISCO


def user_label(index: int) -> str:
    return f"u{index:06d}"


def _categorical(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One draw per row from row-wise probabilities (n, k)."""
    cum = np.cumsum(probs, axis=1)
    draws = rng.random(len(probs)) * cum[:, -1]
    return np.minimum((draws[:, None] >= cum).sum(axis=1), probs.shape[1] - 1).astype(np.int8)


def build_population(n: int, days: int, rng: np.random.Generator) -> Population:
    city = rng.choice(len(CITIES), size=n, p=CITY_WEIGHTS).astype(np.int8)
    os_ = rng.choice(len(OSES), size=n, p=(0.42, 0.40, 0.18)).astype(np.int8)
    age = np.clip(np.round(16 + rng.gamma(4.0, 4.8, n)), 16, 80).astype(np.int16)

    engagement = MEDIAN_SESSION_RATE * np.exp(rng.normal(0.0, ENGAGEMENT_SIGMA, n))
    rank = np.empty(n)
    rank[np.argsort(engagement, kind="stable")] = np.arange(n) / max(n, 1)

    # Paying plans are more common among engaged users.
    p_premium = 0.04 + 0.12 * rank
    p_plus = 0.16 + 0.16 * rank
    plan = _categorical(rng, np.column_stack([1 - p_premium - p_plus, p_plus, p_premium]))

    opt_in = rng.random(n) < 0.40 + 0.25 * rank
    push_enabled = (os_ != WEB) & (rng.random(n) < 0.75)

    existing = rng.random(n) < EXISTING_USER_SHARE
    last_signup = max(1, days - 3)
    signup_day = np.where(existing, -rng.integers(1, 720, n), rng.integers(0, last_signup, n)).astype(np.int32)

    # Category taste: Dirichlet via normalised gammas, shifted by city and age.
    alpha = np.tile(np.array([0.9, 1.0, 0.55, 0.6, 0.5]), (n, 1))
    alpha[city == SAN_FRANCISCO, CONCERT] *= 3.0
    alpha[age < 30, FESTIVAL] *= 2.0
    alpha[age >= 45, THEATRE] *= 2.0
    taste = rng.gamma(alpha)
    taste = 0.1 / len(CATEGORIES) + 0.9 * taste / taste.sum(axis=1, keepdims=True)
    category_cum = np.cumsum(taste, axis=1)

    pay_probs = np.where((os_ == IOS)[:, None], np.array([0.30, 0.20, 0.15, 0.35]), np.array([0.42, 0.30, 0.28, 0.0]))
    payment_method = _categorical(rng, pay_probs)
    login_probs = np.where((os_ == IOS)[:, None], np.array([0.35, 0.20, 0.45]), np.array([0.55, 0.42, 0.03]))
    login_method = _categorical(rng, login_probs)

    active_from = np.maximum(signup_day, 0)
    fader = rng.random(n) < FADER_SHARE
    fade_day = np.where(fader, active_from + 10 + rng.integers(0, max(2, int(days * 0.8)), n), NEVER).astype(np.int32)
    uninstalls = fader & (rng.random(n) < FADER_UNINSTALL_SHARE)
    uninstall_day = np.where(uninstalls, fade_day + rng.integers(18, 43, n), NEVER).astype(np.int32)
    has_profile = rng.random(n) >= MISSING_PROFILE_SHARE
    goal_test = np.zeros(n, bool)
    for index in np.flatnonzero(city == SAN_FRANCISCO):
        group = assign_group(GOAL_NAME, user_label(int(index)), GOAL_CONTROL_PERCENT)
        goal_test[index] = group != CONTROL

    return Population(
        city=city,
        os=os_,
        plan=plan,
        age=age,
        opt_in=opt_in,
        push_enabled=push_enabled,
        signup_day=signup_day,
        engagement=engagement,
        engagement_rank=rank,
        category_cum=category_cum,
        payment_method=payment_method,
        login_method=login_method,
        fade_day=fade_day,
        uninstall_day=uninstall_day,
        has_profile=has_profile,
        goal_test=goal_test,
    )
