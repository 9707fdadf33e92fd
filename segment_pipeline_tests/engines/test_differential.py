"""The Spark engine against the DuckDB engine, row for row, on a real local Spark session.

Random valid segments over random events (the compiler's property-test strategies),
adversarial property keys and values, and the demo config on 3,000 users: the members
must be identical, and so must the control-group hash (also against Python's).
One Spark session for the module (its start costs 10-40 s); local[2], small data.
"""

from __future__ import annotations

import json
import unicodedata
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segment_pipeline.config.goals import GoalEvent
from segment_pipeline.config.project import load_project_config
from segment_pipeline.config.segments import ALL_USERS, SegmentDefinition
from segment_pipeline.demo.generator import DemoSpec, build_demo_tables
from segment_pipeline.engines.duckdb_engine import DUCKDB_ENGINE
from segment_pipeline.engines.spark_engine import SparkEngine
from segment_pipeline.engines.spark_session import spark_session
from segment_pipeline.goals.control_group import assign_group
from segment_pipeline.goals.matching import SqlParams, goal_event_condition
from segment_pipeline.goals.target_groups import group_sql
from segment_pipeline.ingest import state
from segment_pipeline.ingest.events import load_events
from segment_pipeline.ingest.sources import discover
from segment_pipeline.rules.compiler import read_profile_columns
from segment_pipeline.settings import BUNDLED_CONFIG_DIR
from segment_pipeline.storage import warehouse
from segment_pipeline_tests.goals.test_rollups import NIGHTS, load_spend_goal_world, without_summaries
from segment_pipeline_tests.rules.test_compiler_properties import (
    PROFILE_COLUMNS,
    D,
    events_for,
    load,
    profiles,
    segment_lists,
)


@pytest.fixture(scope="module")
def spark():
    session = spark_session(cores=2, app_name="segment_pipeline_tests")
    yield session
    session.stop()


@pytest.fixture(scope="module")
def engine(spark, tmp_path_factory) -> SparkEngine:
    spark_engine = SparkEngine(spark, tmp_path_factory.mktemp("lake"))
    yield spark_engine
    spark_engine.close()


def new_warehouse(profile_columns: dict[str, str] | None) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    con.execute("CREATE SCHEMA analytics")
    con.execute(
        "CREATE TABLE analytics.event_snapshots (event_id VARCHAR, user_id VARCHAR,"
        " event_name VARCHAR, ts TIMESTAMP, properties JSON, snapshot_date DATE)"
    )
    if profile_columns is not None:
        columns = ", ".join(f"{c} {t}" for c, t in profile_columns.items())
        con.execute(f"CREATE TABLE analytics.profiles (user_id VARCHAR, {columns})")
    return con


@pytest.fixture(scope="module")
def con():
    connection = new_warehouse(PROFILE_COLUMNS)
    yield connection
    connection.close()


def members(engine, con, definitions, as_of: date, all_users: bool) -> list[tuple[str, str]]:
    con.execute("CREATE OR REPLACE TEMP TABLE _m (segment_name VARCHAR, user_id VARCHAR)")
    engine.insert_segment_members(
        con, "_m", definitions, as_of, profile_columns=read_profile_columns(con), include_all_users=all_users
    )
    return con.execute("SELECT segment_name, user_id FROM _m ORDER BY ALL").fetchall()


def assert_engines_agree(engine, con, definitions, as_of: date, all_users: bool) -> list[tuple[str, str]]:
    expected = members(DUCKDB_ENGINE, con, definitions, as_of, all_users)
    assert members(engine, con, definitions, as_of, all_users) == expected
    return expected


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(definitions=segment_lists, profile_rows=profiles, all_users=st.booleans(), data=st.data())
def test_random_segments_agree(engine, con, definitions, profile_rows, all_users, data):
    event_rows = data.draw(events_for(definitions), label="event_rows")
    load(con, event_rows, profile_rows)
    assert_engines_agree(engine, con, list(definitions), D, all_users)


NFC, NFD = unicodedata.normalize("NFC", "é"), unicodedata.normalize("NFD", "é")
ODD_KEYS = ["a/b", "dot.key", 'q"uote', "it's", "~1", "", NFC, NFD, "k"]
STEP_VALUES = [
    5,
    "5",
    5.0,
    2.5,
    0.1,
    True,
    "true",
    False,
    0,
    -0.0,
    2**53,
    2**53 + 1,
    2**63,
    2**64 - 1,
    2**64,
    2**64 + 1,
    -(2**63),
    1e300,
    NFC,
    NFD,
    "",
    'q"u\\ote\n',
    "null",
]
# JSON texts of values, some only spelled differently (5.0, 5e0, -0, 1E2), some of another type.
EVENT_VALUE_TEXTS = [
    *(json.dumps(v) for v in STEP_VALUES),
    *(json.dumps(v, ensure_ascii=False) for v in (NFC, NFD, 'q"u\\ote\n')),
    "5.0",
    "5e0",
    "50e-1",
    "-0",
    "0.0",
    "1E2",
    "9007199254740993.0",
    "18446744073709551617",
    "-9223372036854775809",
    "123456789012345678901234567890123456789012",
    "0.30000000000000004",
    "null",
    "[5]",
    '{"k": 5}',
    '"TRUE"',
]


def test_adversarial_keys_and_values_agree(engine):
    """Every (odd key, value) as a segment; one user per (odd key, value text) event."""
    con = new_warehouse(None)
    definitions = [
        SegmentDefinition.model_validate(
            {
                "segmentName": f"s{k}_{v}",
                "segmentType": "past",
                "segmentSubtype": 1,
                "segmentTimeframe": 2,
                "eventSequence": [
                    {"eventType": "a", "actionInaction": "action", "eventProperties": {key: value}, "minCount": 1}
                ],
            }
        )
        for k, key in enumerate(ODD_KEYS)
        for v, value in enumerate(STEP_VALUES)
    ]
    rows = []
    for k, key in enumerate(ODD_KEYS):
        for t, text in enumerate(EVENT_VALUE_TEXTS):
            properties = "{" + json.dumps(key) + ": " + text + ', "other": 1}'
            rows.append([f"e{k}_{t}", f"u{k}_{t}", "a", datetime.combine(D, datetime.min.time()), properties, D])
        # A key given twice: both engines take the first.
        for j, (first, second) in enumerate([("5", '"5"'), ('"5"', "5"), ("true", "5")]):
            properties = "{" + f"{json.dumps(key)}: {first}, {json.dumps(key)}: {second}" + "}"
            rows.append([f"d{k}_{j}", f"d{k}_{j}", "a", datetime.combine(D, datetime.min.time()), properties, D])
    con.executemany("INSERT INTO analytics.event_snapshots VALUES (?, ?, ?, ?, ?, ?)", rows)
    expected = assert_engines_agree(engine, con, definitions, D, all_users=False)
    assert_goal_matching_agrees(engine, con)
    # Not vacuous: most segments have members, and none has them all.
    sizes = {}
    for name, _ in expected:
        sizes[name] = sizes.get(name, 0) + 1
    assert len(sizes) > len(definitions) * 0.8
    assert max(sizes.values()) < len(EVENT_VALUE_TEXTS)


def assert_goal_matching_agrees(engine, con) -> None:
    """Goals of several events with two properties each: the same events achieve each on both
    engines (one query per engine, a column per goal)."""
    goals = [
        [GoalEvent.model_validate({"eventType": "a", "eventProperties": {key: value, "other": 1}}) for value in values]
        for key in ODD_KEYS
        for values in (STEP_VALUES[:8], STEP_VALUES[8:16], STEP_VALUES[16:])
    ]
    results = []
    for run in (DUCKDB_ENGINE, engine):
        params = SqlParams()
        tests = ", ".join(f"{goal_event_condition(goal, params, run.dialect)} AS g{i}" for i, goal in enumerate(goals))
        sql = f"SELECT event_id, {tests} FROM analytics.event_snapshots ORDER BY event_id"
        results.append(run.query(con, sql, params.values).to_pylist())
    assert results[1] == results[0]
    assert sum(value is True for row in results[0] for value in row.values()) > len(goals)


DEMO_DAY = date(2026, 6, 20)


@pytest.fixture(scope="module")
def demo_con():
    tables = build_demo_tables(DemoSpec(users=3000))
    con = new_warehouse(None)
    events = tables.events.with_columns(snapshot_date=tables.events["ts"].dt.date())
    con.register("_events", events.to_arrow())
    con.execute(
        "INSERT INTO analytics.event_snapshots SELECT event_id, user_id, event_name, ts, properties, snapshot_date FROM _events"
    )
    con.register("_profiles", tables.profiles.to_arrow())
    con.execute("CREATE TABLE analytics.profiles AS SELECT * FROM _profiles")
    yield con
    con.close()


def test_demo_config_memberships_agree(engine, demo_con):
    config = load_project_config(BUNDLED_CONFIG_DIR)
    past = config.segments.past
    expected = assert_engines_agree(engine, demo_con, past, DEMO_DAY, all_users=True)
    populated = {name for name, _ in expected}
    assert len(populated) >= len(past) * 0.7, populated
    # The same day a week earlier, in chunks of two segments: other windows, other queries.
    before = DEMO_DAY - timedelta(days=7)
    con = demo_con
    con.execute("CREATE OR REPLACE TEMP TABLE _m (segment_name VARCHAR, user_id VARCHAR)")
    got = members(engine, con, past[:4], before, all_users=False)
    assert got == members(DUCKDB_ENGINE, con, past[:4], before, all_users=False)


def test_control_group_hash_agrees(engine, demo_con):
    """The freeze's SQL on both engines, and Python's formula, put every user in the same group."""
    users = "SELECT DISTINCT user_id FROM analytics.event_snapshots"
    for goal, percent in [("spring_upgrade", 10), ("win:back ü", 12.5), ("x", 50)]:
        params = {"goal": goal, "percent": percent}
        sql = "SELECT user_id, {} AS grp FROM ({}) ORDER BY user_id"
        duck = DUCKDB_ENGINE.query(demo_con, sql.format(group_sql(), users), params).to_pylist()
        spark = engine.query(demo_con, sql.format(group_sql(engine.dialect), users), params).to_pylist()
        assert spark == duck
        assert [r["grp"] for r in duck] == [assign_group(goal, r["user_id"], percent) for r in duck]
        assert 0 < sum(r["grp"] == "control" for r in duck) < len(duck)


def test_lake_copy_follows_the_warehouse(engine, tmp_path: Path):
    """A changed warehouse is copied again; an unchanged one is not."""
    con = new_warehouse(None)
    ts = datetime.combine(D, datetime.min.time())
    con.execute("INSERT INTO analytics.event_snapshots VALUES ('e1', 'u1', 'a', ?, '{}', ?)", [ts, D])
    assert engine.sync(con) is True
    assert engine.sync(con) is False
    con.execute("UPDATE analytics.event_snapshots SET user_id = 'u2'")
    assert engine.sync(con) is True
    assert engine.query(con, "SELECT user_id FROM analytics.event_snapshots").to_pylist() == [{"user_id": "u2"}]
    con.execute("UPDATE analytics.event_snapshots SET event_id = 'e2'")
    assert engine.sync(con) is True
    con.execute("CREATE TABLE analytics.profiles AS SELECT 'u2' AS user_id, 'SF' AS city")
    assert engine.sync(con) is True
    assert engine.query(con, "SELECT * FROM analytics.profiles").to_pylist() == [{"user_id": "u2", "city": "SF"}]
    con.execute("DROP TABLE analytics.profiles")
    assert engine.sync(con) is True
    with pytest.raises(Exception, match="TABLE_OR_VIEW_NOT_FOUND"):
        engine.query(con, "SELECT * FROM analytics.profiles")


def test_nightly_memberships_asset_on_spark_gives_the_duckdb_tables(spark, tmp_path):
    """The Dagster assets up to memberships, tags and overlaps, once per engine on the
    same small demo: every analytics table identical."""
    import dagster as dg

    from segment_pipeline.definitions import defs as load_definitions
    from segment_pipeline.defs.engines.resources import EngineResource
    from segment_pipeline.defs.segments.assets import SEGMENT_MEMBERSHIPS
    from segment_pipeline_tests.defs.conftest import SMALL_DEMO_DAY, small_demo_resources
    from segment_pipeline_tests.defs.test_pipeline import table_dump

    dumps = {}
    for kind in ("duckdb", "spark"):
        folder = tmp_path / kind
        resources = small_demo_resources(folder) | {"engine": EngineResource(kind=kind)}
        result = dg.materialize(
            list(load_definitions().assets or []),
            selection=dg.AssetSelection.assets(SEGMENT_MEMBERSHIPS).upstream().required_multi_asset_neighbors(),
            resources=resources,
            partition_key=SMALL_DEMO_DAY,
        )
        assert result.success
        dumps[kind] = table_dump(folder / "warehouse.duckdb")
    assert dumps["spark"] == dumps["duckdb"]
    assert {"segment_memberships", "segment_tags", "segment_overlaps"} <= set(dumps["duckdb"])
    assert len(dumps["duckdb"]["segment_memberships"]) > 1000


# Goal features: the training and scoring frames of the feature SQL on both engines.


def assert_feature_frames_agree(engine, con, goal, segments, anchors, scoring_users, scoring_day):
    """The training set (spec derived on DuckDB, then fixed) and a scoring set, built by each
    engine: identical frames, spec and anchor stats. Returns the DuckDB training set."""
    from polars.testing import assert_frame_equal

    from segment_pipeline.goals.features import build_scoring_set, build_training_set

    duck = build_training_set(con, goal, segments, anchors, engine=DUCKDB_ENGINE)
    spark = build_training_set(con, goal, segments, anchors, engine=engine)
    assert spark.spec == duck.spec  # derived on each engine: same event types, categories, values
    assert_frame_equal(spark.frame, duck.frame)
    assert_frame_equal(spark.anchor_stats, duck.anchor_stats)
    scored = [
        build_scoring_set(con, goal, scoring_users, scoring_day, spec=duck.spec, engine=run)
        for run in (DUCKDB_ENGINE, engine)
    ]
    assert_frame_equal(scored[1], scored[0])
    return duck, scored[0]


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=NIGHTS, all_users=st.booleans(), from_events=st.booleans())
def test_goal_features_agree_on_random_events(engine, tmp_path_factory, batches, all_users, from_events):
    """Random nights of events (late ones too, odd ``spend`` values): features from the
    rollups, or from the events when the summaries do not cover the snapshot."""
    tmp = tmp_path_factory.mktemp("features")
    with warehouse.connect(tmp / "w.duckdb") as con:
        segments, goal, anchors = load_spend_goal_world(tmp, con, batches, all_users=all_users)
        if from_events:
            without_summaries(con)
        assert_feature_frames_agree(
            engine, con, goal, segments, anchors, [f"u{u}" for u in range(10)], date(2026, 2, 6)
        )


@pytest.fixture(scope="module")
def demo_goal_world(tmp_path_factory):
    """The demo on 1,000 users loaded as a night's load does (rollups kept), its first goal
    and that goal's two latest anchors."""
    from segment_pipeline.goals.features import choose_anchors, first_event_day

    tmp = tmp_path_factory.mktemp("demo_goal")
    config = load_project_config(BUNDLED_CONFIG_DIR)
    tables = build_demo_tables(DemoSpec(users=1000))
    with warehouse.connect(tmp / "w.duckdb") as con:
        (tmp / "events").mkdir()
        tables.events.write_parquet(tmp / "events" / "demo.parquet")
        load_events(con, discover(str(tmp / "events" / "*"), env_var="E"), snapshot_date=DEMO_DAY, max_reject_rate=0)
        con.register("_profiles", tables.profiles.to_arrow())
        con.execute("CREATE TABLE analytics.profiles AS SELECT * FROM _profiles")
        assert state.is_current(con)
        goal = config.goals.by_name["sell concert tickets"]
        anchors = choose_anchors(first_event_day(con), goal.created_on, goal.length_days, goal.lookback_days)[-2:]
        yield con, config, goal, anchors, tmp


def test_goal_features_agree_on_the_demo(engine, demo_goal_world):
    """Training anchors (population, labels, sampling, flags, lifetime and value features,
    profile categories) and tonight's scoring set of every user: identical on both engines."""
    con, config, goal, anchors, _ = demo_goal_world
    users = [r[0] for r in con.execute("SELECT user_id FROM pipeline_state.users ORDER BY 1").fetchall()]
    duck, scored = assert_feature_frames_agree(engine, con, goal, config.segments, anchors, users, DEMO_DAY)
    assert len(anchors) == 2 and duck.frame.height > 500 and duck.frame["label"].sum() > 10
    assert scored.height == len(users)


def test_a_goal_model_boosted_on_spark_is_registered_with_the_duckdb_auc(engine, demo_goal_world, caplog):
    """SparkXGBClassifier (same parameters, calibration and MLflow logging) against the
    single-node booster on the same training set: a registered champion, the same held-out AUC."""
    import logging

    from segment_pipeline.engines import using
    from segment_pipeline.goals import tracking
    from segment_pipeline.goals.buckets import bucket_report, choose_thresholds
    from segment_pipeline.goals.features import build_training_set, choose_anchors, first_event_day
    from segment_pipeline.goals.training import train_goal_model

    con, config, goal, _, tmp = demo_goal_world
    # Every user at every training anchor (the features' own test takes two anchors of the
    # goal's segment): more rows than one Arrow batch of the Spark worker.
    goal = goal.model_copy(update={"segment": ALL_USERS})
    anchors = choose_anchors(first_event_day(con), goal.created_on, goal.length_days, goal.lookback_days)
    training = build_training_set(con, goal, config.segments, anchors, engine=DUCKDB_ENGINE)
    assert training.frame.height > 10_000
    single = train_goal_model(training.frame, training.feature_columns)
    with using(engine), caplog.at_level(logging.INFO, logger="segment_pipeline.engines.spark_training"):
        boosted = train_goal_model(training.frame, training.feature_columns)
    assert "boosted with SparkXGBClassifier" in caplog.text
    assert abs(boosted.metrics["auc"] - single.metrics["auc"]) < 0.005
    assert boosted.metrics["auc"] > 0.6 and boosted.best_iteration > 0
    thresholds = choose_thresholds(
        boosted.evaluation_scores, boosted.evaluation_labels, precision_level=goal.precision_level
    )
    report = bucket_report(boosted.evaluation_scores, boosted.evaluation_labels, thresholds)
    uri = (tmp / "mlruns").as_uri()
    record = tracking.log_goal_model(uri, goal.name, boosted, thresholds, report, as_of=DEMO_DAY)
    champion = tracking.require_champion(uri, goal.name)
    assert record.promoted and champion.version == record.version
    assert champion.predict_proba(boosted.evaluation_frame) == pytest.approx(boosted.evaluation_scores)
