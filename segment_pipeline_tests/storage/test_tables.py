"""The table reference is the README's, and the export writes what the warehouse holds."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pyarrow.parquet as pq

from segment_pipeline.storage.export import export_tables
from segment_pipeline.storage.tables import TABLES, render_markdown

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_holds_the_rendered_table_reference():
    assert render_markdown() in README.read_text(), "run: .venv/bin/python scripts/render_table_reference.py"


def test_every_contract_column_is_documented_once():
    for table in TABLES:
        names = [c[0] for c in table.columns]
        assert len(names) == len(set(names)), table.name
        assert all(meaning for _, _, meaning in table.columns), table.name


def test_export_streams_every_table_to_parquet(con, tmp_path):
    con.execute("CREATE TABLE analytics.segment_memberships (as_of_date DATE, segment_name VARCHAR, user_id VARCHAR)")
    con.execute(
        "INSERT INTO analytics.segment_memberships SELECT ?, 's', 'u' || i FROM range(250001) t(i)", [date(2026, 6, 1)]
    )
    con.execute(
        "CREATE TABLE analytics.user_scores (as_of_date DATE, score_name VARCHAR, user_id VARCHAR, label VARCHAR)"
    )
    written = export_tables(con, tmp_path / "out")
    assert written == {"segment_memberships": 250_001, "user_scores": 0}
    table = pq.read_table(tmp_path / "out" / "segment_memberships.parquet")
    assert table.num_rows == 250_001 and table.column_names == ["as_of_date", "segment_name", "user_id"]
    assert not list((tmp_path / "out").glob(".*partial"))
