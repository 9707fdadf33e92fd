"""MLflow logging, registry and champion/challenger against a real store in a temp folder."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from segment_pipeline.goals.buckets import bucket_report, choose_thresholds
from segment_pipeline.goals.tracking import (
    CHAMPION_ALIAS,
    ModelRecord,
    compare_with_champion,
    load_champion,
    log_goal_model,
    registered_model_name,
    resolve_store,
)
from segment_pipeline.goals.training import TrainedGoalModel, train_goal_model
from segment_pipeline_tests.goals.test_training import feature_columns, make_goal_frame

GOAL = "Sell concert tickets"
NOISE_FEATURES = ["f8", "f9", "f10"]


@dataclass
class History:
    uri: str
    workdir: Path
    first: TrainedGoalModel
    worse: TrainedGoalModel
    better: TrainedGoalModel
    records: list[ModelRecord]
    champion_after: list[int]


def _log(uri: str, trained: TrainedGoalModel) -> ModelRecord:
    thresholds = choose_thresholds(trained.evaluation_scores, trained.evaluation_labels)
    report = bucket_report(trained.evaluation_scores, trained.evaluation_labels, thresholds)
    return log_goal_model(uri, GOAL, trained, thresholds, report, extra_params={"segment": "All Users"})


@pytest.fixture(scope="module")
def history(tmp_path_factory) -> History:
    """Three nightly trainings of one goal: a first model, a useless one, a good one."""
    root = tmp_path_factory.mktemp("tracking")
    uri = (root / "mlruns").as_uri()  # the project's default form: a file: URI
    workdir = root / "cwd"
    workdir.mkdir()
    frame = make_goal_frame(n_users=6000, anchors=3, seed=5)
    features = feature_columns(frame)
    params = {"num_boost_round": 40}
    first = train_goal_model(frame, features, params=params)
    worse = train_goal_model(frame, NOISE_FEATURES, params=params)
    better = train_goal_model(frame, features, seed=1, params=params)

    previous = os.getcwd()
    os.chdir(workdir)  # nothing may land in the working directory
    try:
        records, champion_after = [], []
        for trained in (first, worse, better):
            records.append(_log(uri, trained))
            champion_after.append(load_champion(uri, GOAL).version)
    finally:
        os.chdir(previous)
    return History(uri, workdir, first, worse, better, records, champion_after)


def test_first_model_becomes_champion(history):
    first = history.records[0]
    assert first.promoted and first.version == 1
    assert first.model_uri == f"models:/{registered_model_name(GOAL)}/1"
    assert history.champion_after[0] == 1


def test_clearly_worse_challenger_is_registered_but_not_promoted(history):
    worse = history.records[1]
    assert worse.version == 2 and not worse.promoted
    assert "clearly worse" in worse.reason and "AUC lower" in worse.reason
    assert history.champion_after[1] == 1
    # What the kept champion scores on this training's evaluation rows: the numbers to forecast with.
    assert worse.champion_version == 1
    assert worse.champion_metrics["auc"] > history.worse.metrics["auc"] + 0.02
    assert np.isfinite(worse.champion_metrics["forecast_rel_error_sd"])


def test_challenger_about_as_good_replaces_the_champion(history):
    better = history.records[2]
    assert better.version == 3 and better.promoted
    assert "replaces champion v1" in better.reason
    assert history.champion_after[2] == 3
    assert better.champion_version == 3 and better.champion_metrics == history.better.metrics


def test_run_holds_params_metrics_artifacts_and_decision(history):
    from mlflow import MlflowClient

    store, _ = resolve_store(history.uri)
    client = MlflowClient(tracking_uri=store, registry_uri=store)
    run = client.get_run(history.records[1].run_id)
    for metric in ("auc", "pr_auc", "brier", "log_loss", "ece", "base_rate", "n_train", "n_holdout", "positives"):
        assert metric in run.data.metrics, metric
    assert run.data.metrics["bucket_most_likely_n"] > 0
    assert run.data.metrics["champion_auc"] > run.data.metrics["auc"] + 0.02  # scored on the same rows
    assert run.data.params["calibration_method"] in ("isotonic", "platt")
    assert run.data.params["segment"] == "All Users"
    assert run.data.tags["promotion"] == "rejected"
    assert run.info.run_name == f"sell-concert-tickets {history.worse.holdout_anchor}"
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"feature_importance.csv", "feature_importance.json", "calibration_curve.csv", "buckets.json"} <= artifacts
    assert "calibration.png" in artifacts

    version = client.get_model_version(registered_model_name(GOAL), "2")
    assert version.tags["promotion"] == "rejected"
    assert int(client.get_model_version_by_alias(registered_model_name(GOAL), CHAMPION_ALIAS).version) == 3


def test_logged_model_has_a_signature_over_the_features(history):
    import mlflow

    mlflow.set_registry_uri(resolve_store(history.uri)[0])
    info = mlflow.models.get_model_info(history.records[0].model_uri)
    assert info.signature is not None
    assert info.signature.inputs.input_names() == history.first.feature_columns


def test_loaded_champion_scores_like_the_trained_model(history):
    champion = load_champion(history.uri, GOAL)
    rows = history.better.evaluation_frame
    np.testing.assert_allclose(champion.predict_proba(rows), history.better.predict_proba(rows), rtol=1e-12)
    assert champion.run_id == history.records[2].run_id


def test_store_stays_in_its_folder(history):
    assert list(history.workdir.iterdir()) == []
    folder = Path(resolve_store(history.uri)[0].removeprefix("sqlite:///")).parent
    assert (folder / "mlflow.db").exists() and (folder / "artifacts").is_dir()


def test_no_champion_for_an_unknown_goal(history):
    assert load_champion(history.uri, "never trained") is None


@pytest.mark.parametrize(
    ("challenger", "champion", "promoted"),
    [
        ({"auc": 0.80, "brier": 0.100}, {"auc": 0.80, "brier": 0.100}, True),
        ({"auc": 0.79, "brier": 0.105}, {"auc": 0.80, "brier": 0.100}, True),  # a little worse: fresher wins
        ({"auc": 0.77, "brier": 0.100}, {"auc": 0.80, "brier": 0.100}, False),  # AUC down 0.03
        ({"auc": 0.80, "brier": 0.115}, {"auc": 0.80, "brier": 0.100}, False),  # Brier up 15%
        ({"auc": float("nan"), "brier": 0.1}, {"auc": float("nan"), "brier": 0.1}, True),  # one class held out
    ],
)
def test_champion_rule(challenger, champion, promoted):
    assert compare_with_champion(challenger, champion)[0] is promoted


def test_store_uris(tmp_path):
    folder = tmp_path / "mlruns"
    store, artifacts = resolve_store(folder.as_uri())
    assert store == f"sqlite:///{folder}/mlflow.db" and artifacts == (folder / "artifacts").as_uri()
    assert resolve_store(str(folder)) == (store, artifacts)
    db = tmp_path / "other" / "mlflow.db"
    assert resolve_store(f"sqlite:///{db}") == (f"sqlite:///{db}", (db.parent / "artifacts").as_uri())
    assert resolve_store("http://mlflow.internal:5000") == ("http://mlflow.internal:5000", None)
