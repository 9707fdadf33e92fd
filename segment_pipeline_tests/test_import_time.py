"""Importing the project does nothing but define things: no environment written, no files made."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_importing_every_module_writes_no_environment_variable_and_no_file(tmp_path):
    script = textwrap.dedent(
        """
        import importlib, json, os, pkgutil
        import segment_pipeline
        import dagster, duckdb, numpy, polars, pyarrow  # third-party libraries set their own (polars: jemalloc)
        before = dict(os.environ)
        for module in pkgutil.walk_packages(segment_pipeline.__path__, "segment_pipeline."):
            importlib.import_module(module.name)
        after = dict(os.environ)
        print(json.dumps({k: after.get(k) for k in set(before) | set(after) if before.get(k) != after.get(k)}))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "{}"
    assert list(tmp_path.iterdir()) == []
