"""The path every night takes from a goal to its intent buckets visits each goal file once.

``scripts/goal_walk.py`` records, over a real demo night, the first call of every goal
function made from another goal file; a file entered again after the walk left it is a
"return". The nightly path must have none (the one-time setup night is reported by the
script, not held to it)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[1] / "scripts" / "goal_walk.py"


def _goal_walk():
    spec = importlib.util.spec_from_file_location("goal_walk", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_the_nightly_goal_path_visits_each_goal_file_once():
    walk = _goal_walk().take_walk(1500, next_night_only=True)
    files = [file for file, _ in walk.stops]
    # The night reaches the stages it is known to need, in this order, each once.
    stages = ["goals/store.py", "goals/target_groups.py", "goals/outcomes.py", "goals/scoring.py", "goals/status.py"]
    assert [files.index(s) for s in stages] == sorted(files.index(s) for s in stages)
    assert walk.returns() == [], [walk.stops[i] for i, _ in walk.returns()]


def test_a_return_is_a_file_entered_again_after_the_walk_left_it():
    walk = _goal_walk().Walk(goal_files_only=True)
    walk.stops = [("a.py", "f"), ("a.py", "g"), ("b.py", "h"), ("c.py", "i"), ("a.py", "j"), ("c.py", "k")]
    assert walk.returns() == [(4, "a.py"), (5, "c.py")]
