"""Goal output tables (contract section 7) and the state the pipeline keeps between nights."""

from __future__ import annotations

import duckdb

from segment_pipeline.storage.warehouse import ANALYTICS, STATE, quote_ident, table_ref

GOAL_STATUS = (ANALYTICS, "goal_status")
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
    GOAL_STATUS: """goal_name VARCHAR NOT NULL, as_of_date DATE NOT NULL, status VARCHAR NOT NULL,
                    message VARCHAR, model_run_id VARCHAR""",
    GOAL_FORECASTS: """goal_name VARCHAR NOT NULL, as_of_date DATE NOT NULL, day DATE NOT NULL,
                       predicted_cumulative DOUBLE, predicted_low DOUBLE, predicted_high DOUBLE,
                       actual_cumulative BIGINT""",
    INTENT_BUCKETS: """goal_name VARCHAR NOT NULL, as_of_date DATE NOT NULL, user_id VARCHAR NOT NULL,
                       "group" VARCHAR NOT NULL, score DOUBLE, bucket VARCHAR NOT NULL""",
    AUDIENCES: "goal_name VARCHAR NOT NULL, as_of_date DATE NOT NULL, bucket VARCHAR NOT NULL, user_id VARCHAR NOT NULL",
    MODEL_QUALITY: """goal_name VARCHAR NOT NULL, prediction_date DATE NOT NULL, model_run_id VARCHAR,
                      horizon_end DATE NOT NULL, users BIGINT NOT NULL, achievers BIGINT NOT NULL,
                      predicted_achievers DOUBLE NOT NULL, auc DOUBLE, auc_ci_low DOUBLE, auc_ci_high DOUBLE,
                      brier DOUBLE, top_bucket_lift DOUBLE""",
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


def ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    for key, columns in DDL.items():
        con.execute(f"CREATE TABLE IF NOT EXISTS {table_ref(*key)} ({columns})")
    for key, columns in VALUE_COLUMNS.items():
        add_columns(con, key, columns)


def add_columns(con: duckdb.DuckDBPyConnection, key: tuple[str, str], columns: dict[str, str]) -> None:
    for name, kind in columns.items():
        con.execute(f"ALTER TABLE {table_ref(*key)} ADD COLUMN IF NOT EXISTS {quote_ident(name)} {kind}")
