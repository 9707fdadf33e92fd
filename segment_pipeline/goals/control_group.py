"""The public, deterministic control-group assignment (contract section 6).

Campaign tools reproduce it with the same formula, so it must never change:
a user is ``control`` when the first 8 hex digits of
``sha256(f"{goal_name}:{user_id}")``, read as an integer and divided by 2**32,
fall below ``control_percent / 100``.
"""

from __future__ import annotations

import hashlib

CONTROL = "control"
TEST = "test"


def control_hash_fraction(goal_name: str, user_id: str) -> float:
    """The user's position in [0, 1) for this goal."""
    digest = hashlib.sha256(f"{goal_name}:{user_id}".encode()).hexdigest()
    return int(digest[:8], 16) / 2**32


def assign_group(goal_name: str, user_id: str, control_percent: float) -> str:
    """``control`` or ``test`` for one user of one goal."""
    if control_hash_fraction(goal_name, user_id) < control_percent / 100:
        return CONTROL
    return TEST
