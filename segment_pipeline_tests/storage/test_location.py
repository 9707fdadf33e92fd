"""The warehouse location check, on real paths: one line naming the path, the variable and the fix."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from segment_pipeline.storage.location import WarehouseLocationError, check_writable_warehouse


def test_a_missing_folder_is_created_and_an_existing_file_passes(tmp_path):
    path = tmp_path / "new" / "deeper" / "warehouse.duckdb"
    check_writable_warehouse(path)
    assert path.parent.is_dir() and list(path.parent.iterdir()) == []  # the probe leaves nothing
    path.write_bytes(b"")
    check_writable_warehouse(path)


@pytest.mark.parametrize(
    ("where", "says"),
    [
        ("file/warehouse.duckdb", "is a file where a folder should be"),
        ("file/a/b/warehouse.duckdb", "is a file where a folder should be"),
        ("folder", "is a folder, not a file"),
    ],
)
def test_a_path_that_cannot_hold_the_warehouse_is_one_line(tmp_path, where, says):
    (tmp_path / "file").write_text("x")
    (tmp_path / "folder").mkdir()
    with pytest.raises(WarehouseLocationError) as failed:
        check_writable_warehouse(tmp_path / where)
    message = str(failed.value)
    assert "\n" not in message and says in message
    assert message.startswith(f"SEGMENT_PIPELINE_WAREHOUSE={tmp_path / where}")
    assert not (tmp_path / "file").is_dir()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder(tmp_path):
    (tmp_path / "ro").mkdir()
    (tmp_path / "ro").chmod(0o555)
    with pytest.raises(WarehouseLocationError, match=r"cannot write in the folder .*ro \(permission denied\)"):
        check_writable_warehouse(tmp_path / "ro" / "warehouse.duckdb")


@pytest.mark.skipif(not Path("/sys").is_dir(), reason="sysfs: a folder where nobody may create files")
def test_a_folder_nobody_may_write_even_root():
    with pytest.raises(WarehouseLocationError, match=r"SEGMENT_PIPELINE_WAREHOUSE=/sys/warehouse.duckdb: cannot write"):
        check_writable_warehouse(Path("/sys/warehouse.duckdb"))
