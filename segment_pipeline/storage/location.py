"""Checking, before a run writes anything, that the warehouse file can be written where it is."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from segment_pipeline.settings import SettingsError

WAREHOUSE_VARIABLE = "SEGMENT_PIPELINE_WAREHOUSE"


class WarehouseLocationError(SettingsError):
    """The warehouse path cannot hold a writable DuckDB file; the message names the path and the fix."""


def check_writable_warehouse(path: Path) -> None:
    """Create the warehouse's folder if needed, and prove a file can be written in it.

    The folder probe writes a real file: permission bits alone do not tell (root ignores
    them, a read-only mount does not). The warehouse file itself is never opened here: closing
    any handle to it would drop the lock DuckDB holds on it in this process.
    """
    fix = f"point {WAREHOUSE_VARIABLE} at a .duckdb file in a folder you can write"
    where = f"{WAREHOUSE_VARIABLE}={path}"
    if path.is_dir():
        raise WarehouseLocationError(f"{where} is a folder, not a file; {fix} (e.g. {path / 'warehouse.duckdb'})")
    blocker = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise WarehouseLocationError(f"{where}: {blocker} is a file where a folder should be; {fix}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".write_probe_"):
            pass
    except OSError as exc:
        why = (exc.strerror or type(exc).__name__).lower()
        raise WarehouseLocationError(f"{where}: cannot write in the folder {path.parent} ({why}); {fix}") from exc
    if path.exists() and not os.access(path, os.W_OK):
        raise WarehouseLocationError(f"{where}: the file is read-only; {fix}")
