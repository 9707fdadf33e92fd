"""Links from reports and the Dagster UI to a model's run page in the MLflow UI."""

from __future__ import annotations

from functools import cache

from segment_pipeline.goals.mlflow_store import mlflow_module
from segment_pipeline.goals.tracking import resolve_store

# MLflow 3's UI opens experiments in its GenAI view unless told the workflow is classic ML.
WORKFLOW_QUERY = "?workflowType=machine_learning"


def run_page_url(ui_url: str, tracking_uri: str, run_id: str) -> str | None:
    """``<ui>/#/experiments/<experiment>/runs/<run>``, or None when the store does not know the run."""
    experiment = _experiment_of(tracking_uri, run_id)
    if experiment is None:
        return None
    return f"{ui_url.rstrip('/')}/#/experiments/{experiment}/runs/{run_id}{WORKFLOW_QUERY}"


def experiment_runs_url(ui_url: str, tracking_uri: str, run_id: str) -> str | None:
    """The runs table of the experiment that holds ``run_id``."""
    experiment = _experiment_of(tracking_uri, run_id)
    return None if experiment is None else f"{ui_url.rstrip('/')}/#/experiments/{experiment}/runs{WORKFLOW_QUERY}"


@cache
def _experiment_of(tracking_uri: str, run_id: str) -> str | None:
    mlflow_module()
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    store, _ = resolve_store(tracking_uri)
    try:
        return MlflowClient(tracking_uri=store).get_run(run_id).info.experiment_id
    except MlflowException:
        return None


def mlflow_ui_command(tracking_uri: str) -> str:
    """The command that serves this store's UI at the default address."""
    store, artifacts = resolve_store(tracking_uri)
    extra = f" --default-artifact-root {artifacts}" if artifacts else ""
    return f".venv/bin/mlflow ui --backend-store-uri {store}{extra} --port 5000"
