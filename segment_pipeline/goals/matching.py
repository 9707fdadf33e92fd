"""SQL for "this event achieves the goal" (and what it is worth): the same typed matching as segment steps.

An event achieves a goal when its ``event_name`` equals one of the goal's ``eventType``s
and every given ``eventProperties`` key equals the event's property, numbers as numbers,
strings exactly, booleans as booleans (contract sections 4 and 6). The property test is
the segment compiler's, so a goal and a segment with the same event agree on every row.
"""

from __future__ import annotations

from collections.abc import Sequence

from segment_pipeline.config.goals import GoalDefinition, GoalEvent

# The compiler's typed equality and parameter binder are private there; this module is
# their one user outside rules/, so a change of theirs shows up in one place.
from segment_pipeline.rules.compiler import SqlParams, property_condition
from segment_pipeline.rules.dialect import DUCKDB, DuckDBDialect

__all__ = ["SqlParams", "event_types_condition", "goal_event_condition", "goal_value_sql", "value_path"]


def goal_event_condition(events: Sequence[GoalEvent], params: SqlParams, dialect: DuckDBDialect = DUCKDB) -> str:
    """A boolean SQL expression over ``event_name`` and ``properties``: TRUE when the row
    matches one of ``events``, FALSE otherwise (never NULL). Values are bound in ``params``."""
    if not events:
        return "FALSE"
    branches = []
    for event in events:
        conditions = [property_condition(k, v, params, dialect) for k, v in (event.event_properties or {}).items()]
        test = f"({' AND '.join(conditions)}) IS TRUE" if conditions else "TRUE"
        # CASE, not AND: the JSON is only read for events of the goal's types.
        branches.append(f"CASE WHEN event_name = {params.bind(event.event_type, 'VARCHAR')} THEN {test} ELSE FALSE END")
    return "(" + " OR ".join(branches) + ")"


def event_types_condition(events: Sequence[GoalEvent], params: SqlParams) -> str:
    """``event_name IN (...)``: a cheap pre-filter before ``goal_event_condition``."""
    types = dict.fromkeys(event.event_type for event in events)
    if not types:
        return "FALSE"
    return f"event_name IN ({', '.join(params.bind(t, 'VARCHAR') for t in types)})"


def value_path(goal: GoalDefinition) -> str:
    """The JSON path of the goal's ``valueProperty`` in ``properties``."""
    if goal.value_property is None:
        raise ValueError(f"goal '{goal.name}' has no valueProperty: it has no value model")
    return DUCKDB.json_key(goal.value_property)


def goal_value_sql(goal: GoalDefinition, params: SqlParams) -> tuple[str, str, str]:
    """(type pre-filter, goal-event test, the event's value as DOUBLE or NULL) of a value goal."""
    types, is_goal = event_types_condition(goal.events, params), goal_event_condition(goal.events, params)
    path = params.bind(value_path(goal), "VARCHAR")
    # Booleans cast to 1/0 in DuckDB: they are not amounts.
    value = (
        f"CASE WHEN json_type(properties, {path}) = 'BOOLEAN' THEN NULL "
        f"ELSE TRY_CAST(json_extract_string(properties, {path}) AS DOUBLE) END"
    )
    return types, is_goal, value
