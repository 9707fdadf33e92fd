"""MLflow tracking and registry for goal models, with a champion/challenger rule.

Store: MLflow 3 refuses the plain file store (``file:`` URIs, ``./mlruns``) unless
``MLFLOW_ALLOW_FILE_STORE`` is set, and the model registry wants a database anyway. A
``file:`` URI or a plain folder therefore maps to ``sqlite:///<folder>/mlflow.db`` with
artifacts in ``<folder>/artifacts``; ``sqlite:`` URIs keep artifacts next to the database
file; other URIs (an MLflow server) are used as given. Telemetry is switched off
(``MLFLOW_DISABLE_TELEMETRY=true`` unless set) when this module is imported, which must
happen before MLflow's first import in the process; then nothing reaches the network.

Each call to ``log_goal_model`` makes one run in the experiment ``segment_pipeline goals``
(with each candidate of that training, XGBoost and the baselines, as a nested run) and
one version of the registered model ``goal-<slug>``, whatever its kind (``model_kind`` tag). The version becomes the
``champion`` alias unless it is clearly worse than the current champion on the *new*
held-out rows (the champion is loaded and scored on them): AUC lower by more than
``MAX_AUC_DROP`` or Brier score higher by more than ``MAX_BRIER_INCREASE``. A fresher model
that is about as good wins, since it has seen the latest behaviour.

MLflow is imported inside the functions: importing it takes seconds. Loading a logged
model needs this package importable (the model pickles ``GoalModel`` by reference).
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import re
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

import numpy as np
import polars as pl

from segment_pipeline.goals.buckets import BucketThresholds
from segment_pipeline.goals.mlflow_store import TrackingStoreError, ensure_sqlite_store, mlflow_module
from segment_pipeline.goals.training import (
    ScoringModel,
    TrainedGoalModel,
    bootstrap_rel_error_sd,
    evaluation_metrics,
    xgboost_module,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure


EXPERIMENT_NAME = "segment_pipeline goals"
# MLflow 3's UI opens an experiment on its GenAI overview unless the experiment says it is
# classic model development; then it opens on the runs table.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
CHAMPION_ALIAS = "champion"
REGISTRY_ALIAS = object()  # log_goal_model's default: judge against the registry's champion alias
MODEL_ARTIFACT = "model"
MAX_AUC_DROP = 0.02
MAX_BRIER_INCREASE = 0.10  # relative
SIGNATURE_ROWS = 1000


@dataclass(frozen=True)
class ModelRecord:
    """The logged version and the decision; ``champion_*`` describe the champion after it.

    ``champion_metrics`` are measured on this training's evaluation rows, so when the
    champion was kept its ``forecast_rel_error`` is the one to forecast with.
    """

    run_id: str
    model_uri: str
    version: int
    promoted: bool
    reason: str
    champion_version: int = 0
    champion_metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ChampionModel:
    """The registered champion, ready for nightly scoring."""

    model: Any  # a goal model of any kind (GoalModel, or a baseline of goals/baselines.py)
    version: int
    run_id: str
    model_uri: str

    @property
    def kind(self) -> str:
        return getattr(self.model, "kind", "xgboost")

    @property
    def feature_columns(self) -> list[str]:
        return self.model.feature_columns

    def predict_proba(self, frame: Any) -> np.ndarray:
        return self.model.predict_proba(frame)


def registered_model_name(goal_name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", goal_name.lower()).strip("-")
    return f"goal-{slug or 'unnamed'}"


def resolve_store(tracking_uri: str) -> tuple[str, str | None]:
    """(store URI MLflow can use for runs and the registry, artifact root or None for the server's)."""
    parsed = urlparse(tracking_uri)
    if parsed.scheme in ("", "file"):
        folder = Path(unquote(parsed.path) if parsed.scheme else tracking_uri).resolve()
        folder.mkdir(parents=True, exist_ok=True)
        ensure_sqlite_store(folder / "mlflow.db")
        return f"sqlite:///{folder / 'mlflow.db'}", (folder / "artifacts").as_uri()
    if parsed.scheme == "sqlite":
        database = Path(tracking_uri[len("sqlite:///") :]).resolve()
        database.parent.mkdir(parents=True, exist_ok=True)
        ensure_sqlite_store(database)
        return f"sqlite:///{database}", (database.parent / "artifacts").as_uri()
    return tracking_uri, None


def compare_with_champion(challenger: dict[str, float], champion: dict[str, float]) -> tuple[bool, str]:
    """(promote the challenger?, why), both sets of metrics measured on the same rows."""
    summary = (
        f"AUC {challenger['auc']:.4f} vs champion {champion['auc']:.4f}, "
        f"Brier {challenger['brier']:.4f} vs champion {champion['brier']:.4f}"
    )
    problems = []
    auc_drop = champion["auc"] - challenger["auc"]
    if math.isfinite(auc_drop) and auc_drop > MAX_AUC_DROP:
        problems.append(f"AUC lower by {auc_drop:.4f} (> {MAX_AUC_DROP})")
    if challenger["brier"] > champion["brier"] * (1 + MAX_BRIER_INCREASE):
        problems.append(f"Brier higher by more than {MAX_BRIER_INCREASE:.0%}")
    if problems:
        return False, f"challenger clearly worse on the same held-out rows ({'; '.join(problems)}): {summary}"
    return True, f"challenger not clearly worse on the same held-out rows: {summary}"


def log_goal_model(
    tracking_uri: str,
    goal_name: str,
    trained: TrainedGoalModel,
    thresholds: BucketThresholds,
    bucket_report: dict[str, dict[str, float]],
    *,
    extra_params: dict[str, Any] | None = None,
    as_of: date | None = None,
    candidates: Sequence[TrainedGoalModel] = (),
    selection: str = "",
    champion_uri: str | object | None = REGISTRY_ALIAS,
) -> ModelRecord:
    """Log a run, register a version, and make it champion unless clearly worse.

    ``candidates`` (every model of this training, the winner ``trained`` among them) are
    logged as nested runs with their held-out metrics; ``selection`` says why ``trained`` won."""
    mlflow, client, artifact_root = _connect(tracking_uri)
    from mlflow.models import infer_signature

    name = registered_model_name(goal_name)
    # The warehouse says which model is champion (None: none yet). A run killed after it moved
    # the registry alias never published, so judging against the alias would judge an orphan.
    champion = (
        _load(client, name)
        if champion_uri is REGISTRY_ALIAS
        else (_load(client, name, str(champion_uri)) if champion_uri else None)
    )
    as_of = as_of or trained.holdout_anchor
    run_name = f"{name.removeprefix('goal-')} {as_of}"
    experiment_id = _experiment_id(client, artifact_root)
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name) as run:
        kind = getattr(trained.model, "kind", "xgboost")
        mlflow.set_tags(
            {
                "goal_name": goal_name,
                "as_of": str(as_of),
                "holdout_anchor": str(trained.holdout_anchor),
                "model_kind": kind,
                "selection": selection[:5000],
            }
        )
        for candidate in candidates:
            candidate_kind = getattr(candidate.model, "kind", "xgboost")
            mlflow.log_metrics(
                _finite(
                    {
                        f"candidate_{candidate_kind}_{k}": v
                        for k, v in candidate.metrics.items()
                        if k in ("auc", "brier", "log_loss", "ece", "forecast_rel_error")
                    }
                )
            )
            with mlflow.start_run(experiment_id=experiment_id, run_name=f"{run_name} {candidate_kind}", nested=True):
                mlflow.set_tags(
                    {
                        "goal_name": goal_name,
                        "as_of": str(as_of),
                        "model_kind": candidate_kind,
                        "selected": str(candidate is trained).lower(),
                    }
                )
                mlflow.log_params({k: str(v)[:6000] for k, v in candidate.params.items()})
                mlflow.log_metrics(_finite(candidate.metrics))
        mlflow.log_params(_params(trained, thresholds, extra_params or {}))
        mlflow.log_metrics(_finite({**trained.metrics, **_bucket_metrics(bucket_report)}))
        _log_artifacts(mlflow, trained, thresholds, bucket_report)

        sample = trained.evaluation_frame.head(SIGNATURE_ROWS)
        features = sample.select(pl.col(c).cast(pl.Float64) for c in trained.feature_columns).to_pandas()
        with _without_mlflow_advice():
            info = mlflow.pyfunc.log_model(
                name=MODEL_ARTIFACT,
                python_model=_pyfunc_model(trained.model),
                signature=infer_signature(features, trained.evaluation_scores[: sample.height]),
                pip_requirements=_requirements(mlflow),
                registered_model_name=name,
            )
        version = int(info.registered_model_version)
        promoted, reason, champion_metrics = _decide(trained, champion)
        mlflow.log_metrics(_finite({f"champion_{k}": v for k, v in champion_metrics.items()}))
        mlflow.set_tags({"promotion": "champion" if promoted else "rejected", "promotion_reason": reason})
    if promoted:
        client.set_registered_model_alias(name, CHAMPION_ALIAS, str(version))
    client.set_model_version_tag(name, str(version), "promotion", "champion" if promoted else "rejected")
    client.set_model_version_tag(name, str(version), "promotion_reason", reason)
    kept = champion if champion is not None and not promoted else None
    return ModelRecord(
        run.info.run_id,
        f"models:/{name}/{version}",
        version,
        promoted,
        reason,
        champion_version=kept.version if kept else version,
        champion_metrics=champion_metrics if kept else trained.metrics,
    )


def log_realized_metrics(tracking_uri: str, entries: list[tuple[str, int, dict[str, float]]]) -> None:
    """``(run_id, step, metrics)`` each: realized quality logged on the run that scored it."""
    import time

    mlflow_module()
    from mlflow.entities import Metric

    _, client, _ = _connect(tracking_uri)
    now = int(time.time() * 1000)
    for run_id, step, metrics in entries:
        batch = [Metric(k, v, now, step) for k, v in _finite(metrics).items()]
        if batch:
            client.log_batch(run_id, metrics=batch)


def load_champion(tracking_uri: str, goal_name: str, model_uri: str | None = None) -> ChampionModel | None:
    """The goal's champion: the version ``model_uri`` names (the warehouse's record), else the
    registry's champion alias; None when there is none."""
    xgboost_module()  # an XGBoost champion unpickles xgboost: load it with the process settings it reads
    _, client, _ = _connect(tracking_uri)
    return _load(client, registered_model_name(goal_name), model_uri)


def require_champion(tracking_uri: str, goal_name: str, model_uri: str | None = None) -> ChampionModel:
    """``load_champion``, for a goal that has a model: a store without it is a failure to name."""
    champion = load_champion(tracking_uri, goal_name, model_uri)
    if champion is None:
        raise TrackingStoreError(
            f"goal {goal_name!r} has a model, but the store {tracking_uri} has no champion model for it; "
            "restore the store or set MLFLOW_TRACKING_URI"
        )
    return champion


def _connect(tracking_uri: str) -> tuple[Any, Any, str | None]:
    mlflow = mlflow_module()
    from mlflow import MlflowClient

    store, artifact_root = resolve_store(tracking_uri)
    # "Creating initial MLflow database tables..." on a new store is not news for the console.
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)
    mlflow.set_tracking_uri(store)
    mlflow.set_registry_uri(store)
    return mlflow, MlflowClient(tracking_uri=store, registry_uri=store), artifact_root


def _experiment_id(client: Any, artifact_root: str | None) -> str:
    mlflow_module()
    from mlflow.exceptions import MlflowException

    experiment = client.get_experiment_by_name(EXPERIMENT_NAME)
    if experiment is None:
        with contextlib.suppress(MlflowException):  # created meanwhile by a parallel run
            client.create_experiment(EXPERIMENT_NAME, artifact_location=artifact_root)
        experiment = client.get_experiment_by_name(EXPERIMENT_NAME)
    if experiment.tags.get(EXPERIMENT_KIND_TAG) != EXPERIMENT_KIND:
        client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
    return experiment.experiment_id


def _load(client: Any, name: str, model_uri: str | None = None) -> ChampionModel | None:
    mlflow = mlflow_module()
    from mlflow.exceptions import MlflowException

    try:
        if model_uri:
            version = client.get_model_version(name, model_uri.rsplit("/", 1)[-1])
        else:
            version = client.get_model_version_by_alias(name, CHAMPION_ALIAS)
    except MlflowException:
        return None
    uri = f"models:/{name}/{version.version}"
    with _without_mlflow_advice():  # unpickling re-creates the model class
        model = mlflow.pyfunc.load_model(uri).unwrap_python_model().goal_model
    return ChampionModel(model, int(version.version), version.run_id, uri)


def _decide(trained: TrainedGoalModel, champion: ChampionModel | None) -> tuple[bool, str, dict[str, float]]:
    if champion is None:
        return True, "first model for this goal", {}
    missing = sorted(set(champion.feature_columns) - set(trained.evaluation_frame.columns))
    if missing:
        return True, f"champion v{champion.version} needs features no longer built: {missing}", {}
    scores = champion.predict_proba(trained.evaluation_frame)
    champion_metrics = evaluation_metrics(trained.evaluation_labels, scores)
    champion_metrics["forecast_rel_error_sd"] = bootstrap_rel_error_sd(trained.evaluation_labels, scores)
    promoted, reason = compare_with_champion(trained.metrics, champion_metrics)
    verb = "replaces" if promoted else "keeps"
    return promoted, f"{verb} champion v{champion.version} ({champion.kind}): {reason}", champion_metrics


@contextmanager
def _without_mlflow_advice() -> Iterator[None]:
    """Silence advice that does not apply: the signature is given explicitly, an input
    example would put a copy of user features into the model artifact, and the pickled
    model is our own class written by this process (the models-from-code alternative would
    ship a script per goal). MLflow's "registered model / created version" lines are
    printed to stderr; the goal's status and the run's metadata already say it."""
    pickle_advice = _DropMessages("serialized using CloudPickle")
    pyfunc_logger = logging.getLogger("mlflow.pyfunc")
    pyfunc_logger.addFilter(pickle_advice)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
            warnings.filterwarnings("ignore", message=".*type hints to the `predict` method")
            warnings.filterwarnings("ignore", message=".*input example was not provided")
            yield
    finally:
        pyfunc_logger.removeFilter(pickle_advice)


class _DropMessages(logging.Filter):
    def __init__(self, fragment: str) -> None:
        super().__init__()
        self.fragment = fragment

    def filter(self, record: logging.LogRecord) -> bool:
        return self.fragment not in record.getMessage()


def _pyfunc_model(goal_model: ScoringModel) -> Any:
    # Defined here so importing this module does not import MLflow; cloudpickle stores
    # the class by value, and the model's own class by reference.
    mlflow_module()
    from mlflow.pyfunc.model import PythonModel

    class GoalPyfuncModel(PythonModel):
        """Calibrated probability of achieving the goal, one per input row."""

        def __init__(self, model: ScoringModel) -> None:
            self.goal_model = model

        def predict(self, context, model_input, params=None):
            return self.goal_model.predict_proba(model_input)

    return GoalPyfuncModel(goal_model)


def _requirements(mlflow: Any) -> list[str]:
    # Explicit, so MLflow does not infer them by re-importing the model in a subprocess.
    import cloudpickle
    import pandas

    xgboost = xgboost_module()
    packages = {
        "mlflow": mlflow,
        "xgboost": xgboost,
        "numpy": np,
        "polars": pl,
        "pandas": pandas,
        "cloudpickle": cloudpickle,
    }
    return [f"{name}=={module.__version__}" for name, module in packages.items()]


def _params(trained: TrainedGoalModel, thresholds: BucketThresholds, extra: dict[str, Any]) -> dict[str, str]:
    kind = getattr(trained.model, "kind", "xgboost")
    prefix = "xgb" if kind == "xgboost" else kind
    params = {f"{prefix}_{k}": v for k, v in trained.params.items()}
    params["model_kind"] = kind
    params.update(
        calibration_method=trained.calibration_method,
        calibration_reason=trained.calibration_reason,
        holdout_anchor=trained.holdout_anchor,
        train_anchors=",".join(str(a) for a in trained.train_anchors),
        n_features=len(trained.feature_columns),
        bucket_method=thresholds.method,
        bucket_most_likely_min=thresholds.most_likely_min,
        bucket_moderately_likely_min=thresholds.moderately_likely_min,
        bucket_precision_level=thresholds.precision_level,
        buckets_ordered=thresholds.ordered,
    )
    params.update(extra)
    return {k: str(v)[:6000] for k, v in params.items()}


def _bucket_metrics(report: dict[str, dict[str, float]]) -> dict[str, float]:
    return {
        f"bucket_{bucket}_{field}": float(value)
        for bucket, stats in report.items()
        for field, value in stats.items()
        if field in ("n", "conversion_rate", "share", "lift")
    }


def _log_artifacts(mlflow: Any, trained: TrainedGoalModel, thresholds: BucketThresholds, report: dict) -> None:
    mlflow.log_text(_csv(trained.feature_importance), "feature_importance.csv")
    mlflow.log_dict(_json_safe(trained.feature_importance.to_dicts()), "feature_importance.json")
    mlflow.log_text(_csv(trained.calibration_curve), "calibration_curve.csv")
    mlflow.log_dict(_json_safe({"thresholds": thresholds.to_dict(), "report": report}), "buckets.json")
    mlflow.log_dict({"feature_columns": trained.feature_columns, "notes": trained.notes}, "model_inputs.json")
    mlflow.log_figure(_calibration_figure(trained.calibration_curve), "calibration.png")


def _calibration_figure(curve: pl.DataFrame) -> Figure:
    from matplotlib.figure import Figure  # no pyplot: no global backend or figure registry

    predicted = curve.get_column("mean_predicted").to_numpy()
    observed = curve.get_column("observed_rate").to_numpy()
    figure = Figure(figsize=(5, 5))
    axes = figure.subplots()
    highest = curve.select(pl.col("mean_predicted", "observed_rate").max().fill_null(0.0)).max_horizontal().item()
    top = max(float(highest), 0.01) * 1.05
    axes.plot([0, top], [0, top], linestyle="--", color="grey", label="perfect calibration")
    axes.plot(predicted, observed, marker="o", label="model (equal-count bins)")
    axes.set(xlabel="mean predicted probability", ylabel="observed rate", xlim=(0, top), ylim=(0, top))
    axes.set_title("Calibration on the held-out evaluation half")
    axes.legend(loc="upper left")
    return figure


def _csv(frame: pl.DataFrame) -> str:
    buffer = io.StringIO()
    frame.write_csv(buffer)
    return buffer.getvalue()


def _finite(metrics: dict[str, float]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if v is not None and math.isfinite(float(v))}


def _json_safe(value: Any) -> Any:
    """Plain JSON: NaN and infinities become null, other objects their text."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if value is None or isinstance(value, (str, int, bool)):
        return value
    return str(value)
