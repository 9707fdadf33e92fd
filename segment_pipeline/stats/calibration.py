"""Calibration: a raw margin (a logit) mapped to a probability whose sum forecasts the positives.

Isotonic when the calibration rows hold at least ``MIN_ISOTONIC_CLASS_ROWS`` of each class,
Platt scaling (a logistic fit on the margin) otherwise: isotonic steps overfit when
positives are few. Both reproduce the calibration rows' mean exactly.
"""

from __future__ import annotations

import numpy as np

MIN_ISOTONIC_CLASS_ROWS = 200


def fit_calibration(margin: np.ndarray, labels: np.ndarray) -> tuple[str, np.ndarray, np.ndarray, str]:
    """(method, x, y, why) mapping a raw margin (a logit) to a probability; see the module docstring."""
    positives, negatives = int(labels.sum()), int(len(labels) - labels.sum())
    if min(positives, negatives) >= MIN_ISOTONIC_CLASS_ROWS:
        from sklearn.isotonic import IsotonicRegression

        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(sigmoid(margin), labels)
        reason = (
            f"isotonic: the tuning half has {positives} positives and {negatives} negatives "
            f"(>= {MIN_ISOTONIC_CLASS_ROWS} of each), enough for a nonparametric fit"
        )
        x, y = np.asarray(iso.X_thresholds_, dtype=np.float64), np.asarray(iso.y_thresholds_, dtype=np.float64)
        return "isotonic", x, y, reason
    from sklearn.linear_model import LogisticRegression

    platt = LogisticRegression(C=1e6, max_iter=1000).fit(margin.reshape(-1, 1), labels)
    reason = (
        f"platt: the tuning half has only {positives} positives and {negatives} negatives "
        f"(< {MIN_ISOTONIC_CLASS_ROWS} of a class); isotonic steps would overfit"
    )
    coefficients = np.array([platt.coef_[0, 0], platt.intercept_[0]], dtype=np.float64)
    return "platt", coefficients, np.zeros(0), reason


def apply_calibration(method: str, x: np.ndarray, y: np.ndarray, margin: np.ndarray) -> np.ndarray:
    if method == "isotonic":
        return np.interp(sigmoid(margin), x, y)
    slope, intercept = x
    return sigmoid(slope * margin + intercept)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))
