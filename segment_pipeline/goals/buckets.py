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

Users tied on a score always share a bucket, so shares can exceed their targets a little.
"""

from __future__ import annotations

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
    scores: np.ndarray, labels: np.ndarray, *, precision_level: float | None = None
) -> BucketThresholds:
    """Cut-offs from held-out ``scores`` (calibrated) and their 0/1 ``labels``."""
    s, y = _arrays(scores, labels)
    if len(s) == 0:
        raise ValueError("no held-out scores to choose bucket thresholds from")
    if precision_level is not None:
        return _by_precision(s, y, precision_level)
    for most_share, moderate_share in FALLBACK_SHARES:
        most_min = _cut_at_share(s, most_share)
        moderate_min = min(_cut_at_share(s, most_share + moderate_share), most_min)
        rates = _rates(s, y, most_min, moderate_min)
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


def assign_buckets(scores: np.ndarray, thresholds: BucketThresholds) -> list[str]:
    """``most_likely`` / ``moderately_likely`` / ``least_likely`` for each score."""
    s = np.asarray(scores, dtype=np.float64)
    names = np.where(
        s >= thresholds.most_likely_min,
        MOST_LIKELY,
        np.where(s >= thresholds.moderately_likely_min, MODERATELY_LIKELY, LEAST_LIKELY),
    )
    return names.tolist()


def bucket_report(scores: np.ndarray, labels: np.ndarray, thresholds: BucketThresholds) -> dict[str, dict[str, float]]:
    """Per bucket: rows, conversion rate, share of rows, lift over the base rate, score range."""
    s, y = _arrays(scores, labels)
    names = np.asarray(assign_buckets(s, thresholds))
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
