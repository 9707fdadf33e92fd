"""Every warehouse connection is capped by SEGMENT_PIPELINE_MEMORY_LIMIT and spills next to the file."""

from pathlib import Path

import pytest

from segment_pipeline.settings import SettingsError, load_settings, memory_limit
from segment_pipeline.storage import warehouse


def test_the_limit_is_a_share_of_ram_or_a_size_and_defaults_to_15_percent():
    ram_mib = int(Path("/proc/meminfo").read_text().split()[1]) // 1024
    default = int(memory_limit({}).removesuffix("MiB"))
    assert abs(default - 0.15 * ram_mib) <= 0.01 * ram_mib
    assert memory_limit({"SEGMENT_PIPELINE_MEMORY_LIMIT": "8GB"}) == f"{8 * 10**9 // 2**20}MiB"
    assert memory_limit({"SEGMENT_PIPELINE_MEMORY_LIMIT": "512 MiB"}) == "512MiB"
    assert load_settings({"SEGMENT_PIPELINE_MEMORY_LIMIT": "25%"}).memory_limit.endswith("MiB")


@pytest.mark.parametrize("bad", ["lots", "0%", "150%", "10MB", "8 parsecs"])
def test_a_bad_limit_is_one_line_naming_the_variable_and_the_fix(bad):
    with pytest.raises(SettingsError, match=r"SEGMENT_PIPELINE_MEMORY_LIMIT=.*set it to .* 40% .* 8GB"):
        load_settings({"SEGMENT_PIPELINE_MEMORY_LIMIT": bad})


@pytest.mark.slow
def test_a_connection_carries_the_limit_and_spills_to_a_folder_next_to_the_warehouse(tmp_path, monkeypatch):
    monkeypatch.setenv("SEGMENT_PIPELINE_MEMORY_LIMIT", "100MB")
    path = tmp_path / "w.duckdb"
    with warehouse.connect(path) as con:
        assert con.execute("SELECT current_setting('memory_limit')").fetchone()[0] == "95.0 MiB"
        assert con.execute("SELECT current_setting('temp_directory')").fetchone()[0] == str(tmp_path / "w.duckdb.tmp")
        # About 400 MB of text in a temp table: four times the limit, so it must spill to succeed.
        con.execute("CREATE TEMP TABLE big AS SELECT i, repeat('x', 100) || i AS s FROM range(4000000) t(i)")
        spilled = con.execute("SELECT coalesce(sum(size), 0) FROM duckdb_temporary_files()").fetchone()[0]
        assert spilled > 100 * 10**6
        assert con.execute("SELECT count(DISTINCT s) FROM big").fetchone()[0] == 4_000_000
    with warehouse.connect(path, read_only=True) as con:
        assert con.execute("SELECT current_setting('memory_limit')").fetchone()[0] == "95.0 MiB"


def test_releasing_duckdb_memory_before_a_fit_frees_it_and_restores_the_exact_limit(tmp_path):
    path = tmp_path / "w.duckdb"
    with warehouse.connect(path, memory_limit="1000MB") as con:
        before = con.execute("SELECT current_setting('memory_limit')").fetchone()[0]
        # About 500 MB of blocks held in memory, under the limit.
        con.execute("CREATE TEMP TABLE big AS SELECT i, repeat('x', 100) || i AS s FROM range(4000000) t(i)")
        used = con.execute("SELECT sum(memory_usage_bytes) FROM duckdb_memory()").fetchone()[0]
        assert used > 300 * 10**6
        for _ in range(3):  # the limit comes back the same however often it is released
            warehouse.release_cached_memory(con)
        assert con.execute("SELECT sum(memory_usage_bytes) FROM duckdb_memory()").fetchone()[0] <= 256 * 10**6
        assert con.execute("SELECT current_setting('memory_limit')").fetchone()[0] == before
        assert con.execute("SELECT count(DISTINCT s) FROM big").fetchone()[0] == 4_000_000
