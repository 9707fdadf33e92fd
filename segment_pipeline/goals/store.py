"""Goal output tables (contract section 7) and the state the pipeline keeps between nights:
their DDL (the output tables' from ``storage/tables.py``; ``goal_status``'s from its owner,
``goals/status.py``), the stored model and the decisions of its trainings."""

from __future__ import annotations

import json
from dataclasses import dataclass

import duckdb

from segment_pipeline.goals import status
from segment_pipeline.goals.feature_spec import FeatureSpec
from segment_pipeline.storage.tables import column_ddl
from segment_pipeline.storage.warehouse import ANALYTICS, STATE, quote_ident, table_ref

GOAL_FORECASTS = (ANALYTICS, "goal_forecasts")
INTENT_BUCKETS = (ANALYTICS, "intent_buckets")
AUDIENCES = (ANALYTICS, "engagement_audiences")
MODEL_QUALITY = (ANALYTICS, "goal_model_quality")
MODEL_DECISIONS = (STATE, "goal_model_decisions")
GOAL_MODELS = (STATE, "goal_models")
CREATION_FORECASTS = (STATE, "goal_creation_forecasts")
CREATION_SCORES = (STATE, "goal_creation_scores")
VALUE_MODELS = (STATE, "goal_value_models")
CREATION_VALUE_FORECASTS = (STATE, "goal_creation_value_forecasts")

DDL = {
    **status.DDL,
    **{key: column_ddl(key[1]) for key in (GOAL_FORECASTS, INTENT_BUCKETS, MODEL_QUALITY)},
    # Every training of a goal (creation and each retrain): which kind won and whether it became champion.
    MODEL_DECISIONS: """goal_name VARCHAR NOT NULL, as_of_date DATE NOT NULL, model_kind VARCHAR NOT NULL,
                        promoted BOOLEAN NOT NULL, reason VARCHAR NOT NULL, run_id VARCHAR,
                        champion_run_id VARCHAR, champion_kind VARCHAR""",
    # The model a goal scores with, and what it was trained and judged on.
    GOAL_MODELS: """goal_name VARCHAR PRIMARY KEY, trained_as_of DATE NOT NULL, run_id VARCHAR NOT NULL,
                    model_uri VARCHAR NOT NULL, version INTEGER NOT NULL, thresholds_json VARCHAR NOT NULL,
                    spec_json VARCHAR NOT NULL, metrics_json VARCHAR NOT NULL""",
    # The forecast made at creation, day by day, kept as made.
    CREATION_FORECASTS: """goal_name VARCHAR NOT NULL, day DATE NOT NULL, predicted_cumulative DOUBLE NOT NULL,
                           predicted_low DOUBLE NOT NULL, predicted_high DOUBLE NOT NULL""",
    # Each target-group user's score and bucket at creation: pre-treatment, for uplift by bucket.
    CREATION_SCORES: """goal_name VARCHAR NOT NULL, user_id VARCHAR NOT NULL, "group" VARCHAR NOT NULL,
                        score DOUBLE NOT NULL, bucket VARCHAR NOT NULL""",
    # A value goal's value model (pickled: its kind's own class), trained once at creation.
    VALUE_MODELS: """goal_name VARCHAR PRIMARY KEY, trained_as_of DATE NOT NULL, kind VARCHAR NOT NULL,
                     model BLOB NOT NULL, metrics_json VARCHAR NOT NULL, spend_cv DOUBLE NOT NULL""",
    # A value goal's value forecast made at creation, day by day, kept as made.
    CREATION_VALUE_FORECASTS: """goal_name VARCHAR NOT NULL, day DATE NOT NULL, predicted_value_cumulative DOUBLE NOT NULL,
                                 predicted_value_low DOUBLE NOT NULL, predicted_value_high DOUBLE NOT NULL""",
}

# Value-goal columns (contract section 7), NULL for other goals; added to warehouses made before them.
VALUE_COLUMNS = {
    INTENT_BUCKETS: {"predicted_value": "DOUBLE", "value_tier": "VARCHAR"},
    GOAL_FORECASTS: {
        "predicted_value_cumulative": "DOUBLE",
        "predicted_value_low": "DOUBLE",
        "predicted_value_high": "DOUBLE",
        "actual_value_cumulative": "DOUBLE",
    },
}


# Audiences are the test-group users of each night's buckets who have not achieved: a view, so
# they cost no storage of their own and can never disagree with intent_buckets.
_AUDIENCES_VIEW = f"""CREATE OR REPLACE VIEW {table_ref(*AUDIENCES)} AS
    SELECT goal_name, as_of_date, bucket, user_id FROM {table_ref(*INTENT_BUCKETS)}
    WHERE "group" = 'test' AND bucket <> 'achieved'"""


def ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    for key, columns in DDL.items():
        con.execute(f"CREATE TABLE IF NOT EXISTS {table_ref(*key)} ({columns})")
    for key, columns in VALUE_COLUMNS.items():
        add_columns(con, key, columns)
    kind = con.execute(
        "SELECT table_type FROM information_schema.tables WHERE table_schema = ? AND table_name = ?", list(AUDIENCES)
    ).fetchone()
    if kind and kind[0] == "BASE TABLE":  # a warehouse from before the view: its rows are intent_buckets'
        con.execute(f"DROP TABLE {table_ref(*AUDIENCES)}")
        kind = None
    if not kind:
        con.execute(_AUDIENCES_VIEW)


def add_columns(con: duckdb.DuckDBPyConnection, key: tuple[str, str], columns: dict[str, str]) -> None:
    for name, kind in columns.items():
        con.execute(f"ALTER TABLE {table_ref(*key)} ADD COLUMN IF NOT EXISTS {quote_ident(name)} {kind}")


@dataclass(frozen=True)
class GoalState:
    """What the pipeline kept of a goal between nights, read once a night."""

    model: dict | None  # stored_model
    decision: dict | None  # last_decision


def load_state(con: duckdb.DuckDBPyConnection, goal_name: str) -> GoalState:
    ensure_tables(con)
    return GoalState(stored_model(con, goal_name), last_decision(con, goal_name))


def stored_model(con: duckdb.DuckDBPyConnection, goal_name: str) -> dict | None:
    row = con.execute(
        """SELECT run_id, model_uri, version, thresholds_json, spec_json, metrics_json, trained_as_of
           FROM pipeline_state.goal_models WHERE goal_name = ?""",
        [goal_name],
    ).fetchone()
    if row is None:
        return None
    run_id, model_uri, version, thresholds, spec, metrics, trained_as_of = row
    return {
        "run_id": run_id,
        "model_uri": model_uri,
        "version": version,
        "trained_as_of": trained_as_of,
        "thresholds": json.loads(thresholds),
        "spec": FeatureSpec.from_json(spec),
        "metrics": json.loads(metrics),
    }


def require_stored_model(con: duckdb.DuckDBPyConnection, goal_name: str) -> dict:
    """``stored_model`` for a step that runs only after the goal's first training."""
    stored = stored_model(con, goal_name)
    if stored is None:
        raise LookupError(f"goal '{goal_name}' has no trained model in pipeline_state.goal_models yet")
    return stored


def last_decision(con: duckdb.DuckDBPyConnection, goal_name: str) -> dict | None:
    """The latest training's decision (``pipeline_state.goal_model_decisions``)."""
    row = con.execute(
        """SELECT as_of_date, model_kind, promoted, reason, champion_kind FROM pipeline_state.goal_model_decisions
           WHERE goal_name = ? ORDER BY as_of_date DESC LIMIT 1""",
        [goal_name],
    ).fetchone()
    if row is None:
        return None
    return dict(zip(("as_of_date", "model_kind", "promoted", "reason", "champion_kind"), row, strict=True))


def record_decision(con: duckdb.DuckDBPyConnection, row: list) -> None:
    """One training's decision (``goal_model_decisions``), replacing that day's earlier one."""
    con.execute("DELETE FROM pipeline_state.goal_model_decisions WHERE goal_name = ? AND as_of_date = ?", row[:2])
    con.execute("INSERT INTO pipeline_state.goal_model_decisions VALUES (?, ?, ?, ?, ?, ?, ?, ?)", row)
