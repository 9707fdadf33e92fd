"""Intent buckets: cut calibrated scores into most / moderately / least likely.

Cut-offs are chosen on the held-out anchor (the evaluation half) and are score values,
so the same cut-offs apply to the target group at creation and to later nightly scores.

- Default (shares): most likely = top 20% by score, moderately = next 30%, least = rest.
  The conversion rates on the held-out rows must be strictly ordered
  most > moderately > least; if they are not, wider buckets (less noise) are tried in turn,
  and if none is ordered the default is kept with ``ordered=False`` and a note.
- ``precision_level`` (Netmera-style): most likely = the largest top-k by score whose
  held-out conversion reaches the level (k >= ``MIN_PRECISION_ROWS``); moderately = the
  rest whose calibrated score is at least the held-out base rate (more likely than the
  average user), or, if that is empty, the next 30% by score; least = everyone else.

Scoring a population (``assign_buckets`` with ``user_ids``: creation and every night) ranks
users by score, ties broken by a stable hash of ``user_id``. With the shares method the
buckets are the ranks' top 20% / next 30% / rest (or the widened shares chosen), so many
tied scores (sparse data: every one-time buyer alike) can no longer pile everyone into
one bucket. With any method, a population of 3 or more users gets all three buckets
non-empty: the top-ranked user is at least most likely, the bottom-ranked at least least
likely, the next after the most likely at least moderately likely. Without ``user_ids``
(cut-offs alone), users tied on a score share a bucket.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

MOST_LIKELY = "most_likely"
MODERATELY_LIKELY = "moderately_likely"
LEAST_LIKELY = "least_likely"
ACHIEVED = "achieved"
BUCKETS = (MOST_LIKELY, MODERATELY_LIKELY, LEAST_LIKELY)

DEFAULT_SHARES = (0.20, 0.30)
# Tried in order when the default is not strictly ordered: wider buckets average more rows.
FALLBACK_SHARES = (DEFAULT_SHARES, (0.25, 0.35), (0.30, 0.40), (1 / 3, 1 / 3))
MODERATE_SHARE_FALLBACK = 0.30
# A precision measured on fewer held-out users is luck: three achievers out of three is 100%.
MIN_PRECISION_ROWS = 30
# The cut-off of an empty bucket: above any probability, and still valid JSON (unlike inf).
ABOVE_ANY_PROBABILITY = math.nextafter(1.0, 2.0)


@dataclass(frozen=True)
class BucketThresholds:
    """``score >= most_likely_min`` is most likely; ``>= moderately_likely_min`` moderately."""

    most_likely_min: float
    moderately_likely_min: float
    method: str  # "shares" or "precision"
    ordered: bool  # held-out conversion strictly most > moderately > least
    note: str
    precision_level: float | None = None
    shares: tuple[float, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BucketThresholds:
        shares = data.get("shares")
        return cls(**{**data, "shares": tuple(shares) if shares is not None else None})


def choose_thresholds(
    scores: np.ndarray, labels: np.ndarray, *, precision_level: float | None = None, user_ids=None
) -> BucketThresholds:
    """Cut-offs from held-out ``scores`` (calibrated) and their 0/1 ``labels``; with
    ``user_ids`` the shares are judged by rank, as ``assign_buckets`` will apply them."""
    s, y = _arrays(scores, labels)
    if len(s) == 0:
        raise ValueError("no held-out scores to choose bucket thresholds from")
    if precision_level is not None:
        return _by_precision(s, y, precision_level)
    for most_share, moderate_share in FALLBACK_SHARES:
        most_min = _cut_at_share(s, most_share)
        moderate_min = min(_cut_at_share(s, most_share + moderate_share), most_min)
        rates = _rates(s, y, most_min, moderate_min)
        if user_ids is not None:
            trial = BucketThresholds(most_min, moderate_min, "shares", True, "", shares=(most_share, moderate_share))
            names = np.asarray(assign_buckets(s, trial, user_ids))
            rates = [float(y[names == b].mean()) if (names == b).any() else math.nan for b in BUCKETS]
        if _strictly_ordered(rates):
            widened = (
                "" if (most_share, moderate_share) == DEFAULT_SHARES else " (widened: the default was not ordered)"
            )
            return BucketThresholds(
                most_min,
                moderate_min,
                "shares",
                True,
                f"top {most_share:.0%} / next {moderate_share:.0%}{widened}; held-out conversion {_fmt(rates)}",
                shares=(most_share, moderate_share),
            )
    most_min = _cut_at_share(s, DEFAULT_SHARES[0])
    moderate_min = min(_cut_at_share(s, sum(DEFAULT_SHARES)), most_min)
    rates = _rates(s, y, most_min, moderate_min)
    return BucketThresholds(
        most_min,
        moderate_min,
        "shares",
        False,
        f"held-out conversion is not strictly ordered for any bucket split ({_fmt(rates)}): "
        "the model separates achievers too weakly for intent buckets to mean much",
        shares=DEFAULT_SHARES,
    )


def assign_buckets(scores: np.ndarray, thresholds: BucketThresholds, user_ids=None) -> list[str]:
    """``most_likely`` / ``moderately_likely`` / ``least_likely`` for each score; with
    ``user_ids``, by rank within this population (see the module docstring)."""
    s = np.asarray(scores, dtype=np.float64)
    if user_ids is None:
        names = np.where(
            s >= thresholds.most_likely_min,
            MOST_LIKELY,
            np.where(s >= thresholds.moderately_likely_min, MODERATELY_LIKELY, LEAST_LIKELY),
        )
        return names.tolist()
    ids = [str(u) for u in user_ids]
    if len(ids) != len(s):
        raise ValueError(f"scores and user_ids differ in length: {len(s)} vs {len(ids)}")
    n = len(s)
    order = rank_order(s, ids)  # best first
    if thresholds.method == "shares" and thresholds.shares is not None:
        most_share, moderate_share = thresholds.shares
        k_most = math.ceil(most_share * n - 1e-9)
        k_upper = math.ceil((most_share + moderate_share) * n - 1e-9)
    else:
        k_most = int(np.sum(s >= thresholds.most_likely_min))
        k_upper = int(np.sum(s >= thresholds.moderately_likely_min))
    if n >= 3:
        k_most = min(max(k_most, 1), n - 2)
        k_upper = min(max(k_upper, k_most + 1), n - 1)
    ranked = np.empty(n, dtype=object)
    ranked[order[:k_most]] = MOST_LIKELY
    ranked[order[k_most:k_upper]] = MODERATELY_LIKELY
    ranked[order[k_upper:]] = LEAST_LIKELY
    return ranked.tolist()


def rank_order(scores: np.ndarray, user_ids: list[str]) -> np.ndarray:
    """Indices from the highest score down; ties by a stable hash of the user id, so the
    same users win a tie every night and on every machine."""
    ties = np.array(
        [int.from_bytes(hashlib.blake2b(u.encode(), digest_size=8).digest(), "big") for u in user_ids], dtype=np.uint64
    )
    return np.lexsort((ties, -np.asarray(scores, dtype=np.float64)))


def bucket_report(
    scores: np.ndarray, labels: np.ndarray, thresholds: BucketThresholds, user_ids=None
) -> dict[str, dict[str, float]]:
    """Per bucket: rows, conversion rate, share of rows, lift over the base rate, score range."""
    s, y = _arrays(scores, labels)
    names = np.asarray(assign_buckets(s, thresholds, user_ids))
    base_rate = float(y.mean()) if len(y) else math.nan
    report: dict[str, dict[str, float]] = {}
    for bucket in BUCKETS:
        mask = names == bucket
        n = int(mask.sum())
        rate = float(y[mask].mean()) if n else math.nan
        report[bucket] = {
            "n": n,
            "conversions": int(y[mask].sum()),
            "conversion_rate": rate,
            "share": n / len(s) if len(s) else math.nan,
            "lift": rate / base_rate if n and base_rate else math.nan,
            "min_score": float(s[mask].min()) if n else math.nan,
            "max_score": float(s[mask].max()) if n else math.nan,
        }
    return report


def _by_precision(s: np.ndarray, y: np.ndarray, level: float) -> BucketThresholds:
    if not 0 < level <= 1:
        raise ValueError(f"precision_level must be in (0, 1], got {level}")
    order = np.argsort(-s, kind="stable")
    s_sorted, y_sorted = s[order], y[order]
    k = np.arange(1, len(s) + 1)
    precision = np.cumsum(y_sorted) / k
    # Only cut between different scores: a cut-off must keep tied users together.
    at_boundary = np.append(s_sorted[:-1] > s_sorted[1:], True)
    large_enough = k >= min(MIN_PRECISION_ROWS, len(s))
    reachable = np.flatnonzero(at_boundary & large_enough & (precision >= level))
    base_rate = float(y.mean())
    notes = []
    if len(reachable):
        top_k = int(reachable[-1]) + 1
        most_min = float(s_sorted[top_k - 1])
        notes.append(f"most likely: top {top_k} of {len(s)} reach precision {precision[top_k - 1]:.3f} >= {level}")
    else:
        top_k, most_min = 0, ABOVE_ANY_PROBABILITY
        notes.append(f"no top set reaches precision {level}: most likely is empty")
    if level <= base_rate:
        notes.append(f"the level is not above the base rate {base_rate:.3f}, so every user qualifies")
    moderate_min = min(base_rate, most_min)
    if not np.any((s >= moderate_min) & (s < most_min)):
        moderate_min = min(_cut_at_share(s, top_k / len(s) + MODERATE_SHARE_FALLBACK), most_min)
        notes.append("no user below the cut-off scores at least the base rate: moderately = next 30% by score")
    else:
        notes.append(f"moderately likely: calibrated score >= base rate {base_rate:.3f}")
    rates = _rates(s, y, most_min, moderate_min)
    ordered = _strictly_ordered(rates)
    notes.append(f"held-out conversion {_fmt(rates)}" + ("" if ordered else ", not strictly ordered"))
    return BucketThresholds(most_min, moderate_min, "precision", ordered, "; ".join(notes), precision_level=level)


def _cut_at_share(s: np.ndarray, share: float) -> float:
    """The lowest score among the top ``share`` of rows (ties at the cut go to the upper bucket)."""
    k = min(len(s), max(1, math.ceil(share * len(s) - 1e-9)))
    return float(np.sort(s)[::-1][k - 1])


def _rates(s: np.ndarray, y: np.ndarray, most_min: float, moderate_min: float) -> list[float]:
    masks = (s >= most_min, (s >= moderate_min) & (s < most_min), s < moderate_min)
    return [float(y[m].mean()) if m.any() else math.nan for m in masks]


def _strictly_ordered(rates: list[float]) -> bool:
    most, moderate, least = rates
    return all(not math.isnan(r) for r in rates) and most > moderate > least


def _fmt(rates: list[float]) -> str:
    return ", ".join(f"{name} {rate:.3f}" for name, rate in zip(BUCKETS, rates, strict=True))


def _arrays(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s, y = np.asarray(scores, dtype=np.float64), np.asarray(labels, dtype=np.float64)
    if s.shape != y.shape:
        raise ValueError(f"scores and labels differ in length: {s.shape} vs {y.shape}")
    return s, y


# Value goals: tiers by predicted value, next to the buckets by probability they sit beside.
HIGH, MEDIUM, LOW = "high", "medium", "low"
TIER_SHARES = (0.20, 0.30)  # high = top 20% by predicted value, medium = next 30%, low = rest


def value_tiers(predicted: np.ndarray, user_ids) -> list[str]:
    """high / medium / low: top 20% / next 30% / rest by predicted value, ties by a stable hash of user_id."""
    ids = [str(u) for u in user_ids]
    n = len(ids)
    order = rank_order(np.asarray(predicted, dtype=np.float64), ids)
    k_high = math.ceil(TIER_SHARES[0] * n - 1e-9)
    k_medium = math.ceil(sum(TIER_SHARES) * n - 1e-9)
    tiers = np.empty(n, dtype=object)
    tiers[order[:k_high]] = HIGH
    tiers[order[k_high:k_medium]] = MEDIUM
    tiers[order[k_medium:]] = LOW
    return tiers.tolist()
