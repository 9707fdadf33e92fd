"""The Spark Connect path (SPARK_REMOTE): the same client code against a Connect server.

``remote="local[1]"`` makes PySpark start a Spark Connect server in this process and
talk to it over gRPC, as it would to a cluster's endpoint: session settings, named
parameters, checkpointed steps and Arrow results all go through Connect.
"""

from __future__ import annotations

from datetime import date

import pytest

from segment_pipeline.config.project import load_project_config
from segment_pipeline.demo.generator import DemoSpec, build_demo_tables
from segment_pipeline.engines.spark_engine import SparkEngine
from segment_pipeline.engines.spark_session import SESSION_CONF, spark_session
from segment_pipeline.settings import BUNDLED_CONFIG_DIR
from segment_pipeline_tests.engines.test_differential import assert_engines_agree, new_warehouse


def test_the_engine_and_goal_boosting_through_spark_connect(tmp_path, caplog):
    """One test, so one process starts the in-process Connect server: it binds Spark Connect's
    port (15002) for the life of the process, and a second pytest worker starting another
    would find it taken."""
    import logging

    import numpy as np

    from segment_pipeline.engines.spark_training import fit_booster, is_connect

    session = spark_session("local[1]", app_name="segment_pipeline_connect_tests")
    try:
        # The demo's memberships through Connect agree with DuckDB's.
        assert type(session).__module__.startswith("pyspark.sql.connect")
        assert {key: session.conf.get(key) for key in SESSION_CONF} == SESSION_CONF
        tables = build_demo_tables(DemoSpec(users=500, days=90))
        con = new_warehouse(None)
        events = tables.events.with_columns(snapshot_date=tables.events["ts"].dt.date())
        con.register("_events", events.to_arrow())
        con.execute(
            "INSERT INTO analytics.event_snapshots"
            " SELECT event_id, user_id, event_name, ts, properties, snapshot_date FROM _events"
        )
        con.register("_profiles", tables.profiles.to_arrow())
        con.execute("CREATE TABLE analytics.profiles AS SELECT * FROM _profiles")
        engine = SparkEngine(session, tmp_path / "lake")
        past = load_project_config(BUNDLED_CONFIG_DIR).segments.past
        rows = assert_engines_agree(engine, con, past, date(2026, 3, 30), all_users=True)
        assert len({name for name, _ in rows}) > len(past) // 2
        assert rows == sorted(rows) and len(rows) > 500
        engine.close()

        # SparkXGBClassifier needs sparkContext and a barrier stage: under Connect the caller
        # boosts on the driver, and a warning says so.
        assert is_connect(session)
        x, y = np.zeros((4, 1), dtype=np.float32), np.array([0, 1, 0, 1])
        with caplog.at_level(logging.WARNING, logger="segment_pipeline.engines.spark_training"):
            assert fit_booster(session, x, y, x, y, ["f"], {"eta": 0.1}, 10, 2) is None
        assert "boosted single-node on the driver" in caplog.text
    finally:
        session.stop()


def test_estimator_parameters_mean_the_single_node_ones():
    from segment_pipeline.engines.spark_training import estimator_params
    from segment_pipeline.goals.training import DEFAULT_PARAMS

    params = estimator_params({**DEFAULT_PARAMS, "seed": 3, "nthread": 2}, 300, 20)
    assert params == {
        "eval_metric": "logloss",
        "tree_method": "hist",
        "max_depth": 6,
        "learning_rate": 0.1,
        "subsample": 0.8,
        "colsample_bytree": 0.8,
        "min_child_weight": 5,
        "max_bin": 256,
        "random_state": 3,
        "n_estimators": 300,
        "early_stopping_rounds": 20,
        "num_workers": 1,
    }
    with pytest.raises(ValueError, match="binary:logistic"):
        estimator_params({"objective": "reg:squarederror"}, 10, 2)
