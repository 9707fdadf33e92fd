"""Freezing a goal's target group: the segment's members the day before the goal starts.

The group is written once to ``analytics.target_groups`` and never changed again: later
runs, new events and config edits leave it alone (contract section 6). The goal and
segment definitions it was frozen with are kept in ``pipeline_state.goal_freezes``, so
an edit of a frozen goal is reported rather than silently applied or ignored.

Membership is point-in-time: the compiler sees only events before createdOn 00:00,
whichever day the freeze runs. ``frozen_on`` is that as-of day (createdOn - 1), so a
rebuild of the warehouse from the same events gives the same rows.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date
from typing import Any

import duckdb
import polars as pl

from segment_pipeline.config.goals import GoalDefinition
from segment_pipeline.config.segments import ALL_USERS, SegmentConfig
from segment_pipeline.goals.control_group import CONTROL, TEST
from segment_pipeline.rules.compiler import compile_past_segments, read_profile_columns
from segment_pipeline.rules.dialect import DUCKDB, DuckDBDialect
from segment_pipeline.storage.tables import column_ddl
from segment_pipeline.storage.warehouse import ANALYTICS, STATE, one_row, table_ref, transaction

TARGET_GROUPS = (ANALYTICS, "target_groups")
FREEZES = (STATE, "goal_freezes")

DDL = {
    TARGET_GROUPS: column_ddl("target_groups"),
    FREEZES: """goal_name VARCHAR PRIMARY KEY, frozen_on DATE NOT NULL, definition_json VARCHAR NOT NULL,
                definition_hash VARCHAR NOT NULL, members BIGINT NOT NULL, control BIGINT NOT NULL""",
}

# The contract's hash in SQL: the first 8 hex digits of sha256("goal:user") over 2**32. The
# division and comparison are the same IEEE double operations as control_group.assign_group.
# Spark needs the constants as DOUBLE (``dialect.double``): it divides decimals exactly otherwise.


def group_sql(dialect: DuckDBDialect = DUCKDB) -> str:
    """``control`` or ``test`` for ``user_id``, from the parameters ``$goal`` and ``$percent``."""
    return f"""CASE WHEN CAST({dialect.hash32("$goal || ':' || user_id")} AS DOUBLE)
                   / {dialect.double("4294967296.0")} < CAST($percent AS DOUBLE) / {dialect.double("100.0")} THEN '{CONTROL}' ELSE '{TEST}' END"""


_GROUP_SQL = group_sql()


@dataclass(frozen=True)
class FreezeResult:
    goal_name: str
    frozen_on: date
    members: int
    control: int
    newly_frozen: bool  # False: the group existed already and nothing was written
    definition_change: str | None  # set when the config now differs from the frozen definition
    definition: dict[str, Any] | None = None  # the stored {"goal", "segment"} definition, when there is one

    @property
    def test(self) -> int:
        return self.members - self.control


def ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    for key, columns in DDL.items():
        con.execute(f"CREATE TABLE IF NOT EXISTS {table_ref(*key)} ({columns})")


def goal_definition(goal: GoalDefinition, segments: SegmentConfig) -> dict[str, Any]:
    """What the freeze depends on and records: the goal as configured and its segment's definition."""
    segment = segments.by_name.get(goal.segment)
    if goal.segment == ALL_USERS:
        segment_json: dict[str, Any] = {"segmentName": ALL_USERS, "builtIn": True}
    elif segment is None:
        segment_json = {"segmentName": goal.segment, "undefined": True}
    else:
        segment_json = segment.model_dump(mode="json", by_alias=True)
    return {"goal": goal.model_dump(mode="json", by_alias=True), "segment": segment_json}


def definition_hash(definition: dict[str, Any]) -> str:
    return hashlib.sha256(_canonical(definition).encode()).hexdigest()


def _canonical(definition: dict[str, Any]) -> str:
    return json.dumps(definition, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def freeze_target_group(
    con: duckdb.DuckDBPyConnection, goal: GoalDefinition, segments: SegmentConfig, *, as_of: date | None = None
) -> FreezeResult:
    """Freeze ``goal``'s target group once, in one transaction; a frozen goal is left as it is.

    ``as_of`` is the day the run covers: a freeze needs every event before createdOn, so a
    run for a day before ``createdOn - 1`` raises ``ValueError`` instead of freezing too early.
    """
    if as_of is not None and as_of < goal.frozen_as_of:
        raise ValueError(
            f"goal '{goal.name}': its target group is the members as of {goal.frozen_as_of}, "
            f"but the run covers only {as_of}; freeze it from the run of {goal.frozen_as_of} on"
        )
    ensure_tables(con)
    definition = goal_definition(goal, segments)
    with transaction(con):
        existing = _existing(con, goal.name)
        if existing is not None:
            frozen_on, members, control, stored = existing
            change = _change_message(goal, frozen_on, stored, definition) if stored is not None else None
            return FreezeResult(goal.name, frozen_on, members, control, False, change, stored)
        _write_group(con, goal, segments)
        members, control = one_row(
            con,
            f"""SELECT count(*), count(*) FILTER (WHERE "group" = '{CONTROL}')
                FROM {table_ref(*TARGET_GROUPS)} WHERE goal_name = ?""",
            [goal.name],
        )
        con.execute(
            f"INSERT INTO {table_ref(*FREEZES)} VALUES (?, ?, ?, ?, ?, ?)",
            [goal.name, goal.frozen_as_of, _canonical(definition), definition_hash(definition), members, control],
        )
    return FreezeResult(goal.name, goal.frozen_as_of, members, control, True, None, definition)


@dataclass(frozen=True)
class OpenGoal:
    """A goal's frozen state, read once a night: the freeze, the definition and the group."""

    freeze: FreezeResult
    frozen: GoalDefinition | None  # the goal as frozen (None: frozen by something other than this module)
    group: pl.DataFrame  # user_id, group
    days_left: int  # whole days of the (frozen) window after the night


def open_goal(
    con: duckdb.DuckDBPyConnection, goal: GoalDefinition, segments: SegmentConfig, *, as_of: date
) -> OpenGoal | None:
    """None on a night before the goal's freeze day; else freeze the group if it is not yet,
    then what the night needs of it, in one visit."""
    if as_of < goal.frozen_as_of:
        return None
    freeze = freeze_target_group(con, goal, segments, as_of=as_of)
    frozen = _as_goal(freeze.definition) if freeze.definition else None
    days_left = (frozen or goal).days_left_after(as_of)
    return OpenGoal(freeze, frozen, target_group(con, goal.name), days_left)


def _write_group(con: duckdb.DuckDBPyConnection, goal: GoalDefinition, segments: SegmentConfig) -> None:
    if goal.segment != ALL_USERS and goal.segment not in segments.by_name:
        raise ValueError(f"goal '{goal.name}': segment '{goal.segment}' is not defined; nothing was frozen")
    past = [] if goal.segment == ALL_USERS else [segments.by_name[goal.segment]]
    query = compile_past_segments(
        past,
        as_of=goal.frozen_as_of,
        profile_columns=read_profile_columns(con),
        include_all_users=goal.segment == ALL_USERS,
    )
    params = dict(query.params) | {
        "goal": goal.name,
        "percent": goal.control_group_percent,
        "frozen_on": goal.frozen_as_of,
    }
    con.execute(
        f"""INSERT INTO {table_ref(*TARGET_GROUPS)}
            SELECT $goal, user_id, {_GROUP_SQL}, CAST($frozen_on AS DATE)
            FROM (SELECT DISTINCT user_id FROM ({query.sql}))
            ORDER BY user_id""",
        params,
    )


def _existing(con: duckdb.DuckDBPyConnection, goal_name: str) -> tuple[date, int, int, dict | None] | None:
    """(frozen_on, members, control, definition) of a frozen goal; the definition is None
    when only ``target_groups`` rows exist (written by something other than this module)."""
    row = con.execute(
        f"SELECT frozen_on, members, control, definition_json FROM {table_ref(*FREEZES)} WHERE goal_name = ?",
        [goal_name],
    ).fetchone()
    if row is not None:
        return row[0], row[1], row[2], json.loads(row[3])
    row = one_row(
        con,
        f"""SELECT min(frozen_on), count(*), count(*) FILTER (WHERE "group" = '{CONTROL}')
            FROM {table_ref(*TARGET_GROUPS)} WHERE goal_name = ?""",
        [goal_name],
    )
    return (row[0], row[1], row[2], None) if row[1] else None


def target_group(con: duckdb.DuckDBPyConnection, goal_name: str) -> pl.DataFrame:
    """The frozen group: ``user_id, group``, by user_id."""
    return con.execute(
        f'SELECT user_id, "group" FROM {table_ref(*TARGET_GROUPS)} WHERE goal_name = ? ORDER BY user_id', [goal_name]
    ).pl()


def record_model_keys(con: duckdb.DuckDBPyConnection, goal_name: str, values: dict[str, Any]) -> None:
    """Write model-only keys (by alias) into the frozen definition: edits applied at the first
    training. The target group does not depend on them, so it and its hash stay valid."""
    definition = frozen_definition(con, goal_name)
    if definition is None:
        return
    definition["goal"].update(values)
    con.execute(
        f"UPDATE {table_ref(*FREEZES)} SET definition_json = ?, definition_hash = ? WHERE goal_name = ?",
        [_canonical(definition), definition_hash(definition), goal_name],
    )


def frozen_definition(con: duckdb.DuckDBPyConnection, goal_name: str) -> dict[str, Any] | None:
    """The ``{"goal": ..., "segment": ...}`` definition the goal was frozen with, or None."""
    ensure_tables(con)
    row = con.execute(f"SELECT definition_json FROM {table_ref(*FREEZES)} WHERE goal_name = ?", [goal_name]).fetchone()
    return json.loads(row[0]) if row else None


def frozen_goal(con: duckdb.DuckDBPyConnection, goal_name: str) -> GoalDefinition | None:
    """The goal as it was when frozen: use it to keep a frozen goal's meaning after config edits."""
    definition = frozen_definition(con, goal_name)
    return _as_goal(definition) if definition else None


def _as_goal(definition: dict[str, Any]) -> GoalDefinition:
    return GoalDefinition.model_validate(definition["goal"], strict=False)


def definition_changed(
    con: duckdb.DuckDBPyConnection, goal: GoalDefinition, segments: SegmentConfig, ignore_keys: tuple[str, ...] = ()
) -> str | None:
    """A message when ``goal`` or its segment differs from what it was frozen with; None otherwise
    (also when the goal is not frozen yet). Goal keys in ``ignore_keys`` (edits that are
    applied, not refused) are left out."""
    ensure_tables(con)
    existing = _existing(con, goal.name)
    if existing is None or existing[3] is None:
        return None
    current = goal_definition(goal, segments)
    stored = json.loads(json.dumps(existing[3]))
    for key in ignore_keys:
        if key in current["goal"]:
            stored.setdefault("goal", {})[key] = current["goal"][key]
    return _change_message(goal, existing[0], stored, current)


def _change_message(goal: GoalDefinition, frozen_on: date, stored: dict, current: dict) -> str | None:
    changes = _diff(stored.get("goal", {}), current["goal"], "")
    old_segment, new_segment = stored.get("segment", {}), current["segment"]
    segment_changes = _diff(old_segment, new_segment, "")
    same_segment = old_segment.get("segmentName") == new_segment.get("segmentName")
    if same_segment and new_segment.get("undefined") and not old_segment.get("undefined"):
        changes.append(f"segment '{new_segment['segmentName']}' is no longer defined")
    elif same_segment and segment_changes:
        changes.append(f"segment '{new_segment.get('segmentName')}' definition: " + ", ".join(segment_changes))
    if not changes:
        return None
    return (
        f"goal '{goal.name}' was frozen as of {frozen_on} with another definition; changed since: "
        f"{'; '.join(changes)}. The frozen target group is kept and the change is not applied to it. "
        "Fix: revert the change, or add the new definition as a new goal with its own goalName"
    )


def _diff(old: Any, new: Any, where: str) -> list[str]:
    """``key: old -> new`` for each changed value; keys only one side has are schema changes, not edits."""
    if isinstance(old, dict) and isinstance(new, dict):
        found = []
        for key in [k for k in new if k in old]:
            found += _diff(old[key], new[key], f"{where}.{key}" if where else key)
        return found
    if old == new:
        return []
    return [f"{where or 'value'}: {json.dumps(old)} -> {json.dumps(new)}"]


def control_share_bounds(n: int, percent: float, alpha: float = 0.001) -> tuple[float, float]:
    """The control share range a fair hash stays inside with probability at least ``1 - alpha``.

    Control membership is a Bernoulli(percent/100) draw per user, so the control count of
    ``n`` users is Binomial(n, p); the bounds are its ``alpha/2`` and ``1 - alpha/2``
    quantiles over ``n``. A share outside them points to a broken assignment.
    """
    from scipy.stats import binom  # imported here: scipy.stats costs seconds at every start-up

    if n <= 0:
        return 0.0, 1.0
    p = percent / 100
    low = binom.ppf(alpha / 2, n, p)
    high = binom.isf(alpha / 2, n, p)
    return float(low) / n, float(high) / n
