"""After a run, `dg dev` (a real subprocess) shows it: the project's dagster.yaml keeps run history
in `.dagster_home/` under the working directory, where the next command finds it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.instance.ref import InstanceRef

from segment_pipeline.definitions import defs as load_definitions
from segment_pipeline.settings import project_root
from segment_pipeline_tests.defs.conftest import small_demo_resources
from segment_pipeline_tests.reports.browser import browser_page

DAY = "2026-02-20"
DG = Path(sys.executable).with_name("dg")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def graphql(port: int, query: str) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["data"]


@pytest.fixture
def project_dir(tmp_path, monkeypatch):
    """A working directory holding the project's dagster.yaml, as the project root does."""
    shutil.copy(project_root() / "dagster.yaml", tmp_path / "dagster.yaml")
    monkeypatch.chdir(tmp_path)  # the instance's storage paths are relative to it
    return tmp_path


@pytest.mark.slow
def test_dg_dev_shows_the_run_that_came_before(project_dir):
    # The instance a CLI command makes with DAGSTER_HOME unset: a throw-away root, dagster.yaml from the cwd.
    throwaway = project_dir / ".tmp_dagster_home_test"
    definitions = load_definitions()
    # As the nightly job: every check but freshness, which its own sensor runs.
    checks = [c for c in definitions.asset_checks or [] if all(k.name != "freshness_check" for k in c.check_keys)]
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(throwaway), config_dir=str(project_dir))) as instance:
        result = dg.materialize(
            list(definitions.assets or []) + checks,
            resources=small_demo_resources(project_dir),
            partition_key=DAY,
            instance=instance,
        )
        assert result.success
    # Nothing went to the root the CLI throws away on exit: it is all in .dagster_home/.
    assert not throwaway.exists() and (project_dir / ".dagster_home" / "storage").is_dir()

    port = free_port()
    env = {
        **os.environ,
        "SEGMENT_PIPELINE_WAREHOUSE": str(project_dir / "warehouse.duckdb"),
        "MLFLOW_TRACKING_URI": (project_dir / "mlruns").as_uri(),
    }
    server = subprocess.Popen(
        [str(DG), "dev", "-m", "segment_pipeline.definitions", "--port", str(port), "--host", "127.0.0.1"],
        cwd=project_dir,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2)
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, "dg dev did not come up"
                time.sleep(1)
        query = """{ assetNodes(assetKeys: [{path: ["analytics", "goal_status"]}, {path: ["goal_reports"]}]) {
            assetKey { path } assetMaterializations(limit: 1) { runId partition } } }"""
        for _ in range(60):  # the code location loads in the background
            nodes = graphql(port, query)["assetNodes"]
            if len(nodes) == 2:
                break
            time.sleep(1)
        materialized = {"/".join(n["assetKey"]["path"]): n["assetMaterializations"] for n in nodes}
        assert materialized["analytics/goal_status"] == [{"runId": result.run_id, "partition": DAY}]
        assert materialized["goal_reports"][0]["partition"] == DAY

        with browser_page((1400, 1000)) as (page, _visit):
            page.goto(f"http://127.0.0.1:{port}/assets/analytics/goal_status")
            page.get_by_text("Latest materialization").first.wait_for(timeout=60_000)
            page.get_by_text(DAY).first.wait_for(timeout=30_000)
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
        server.wait()
