"""The real nightly graph with 2,000 extra past segments; the config is validated once per run."""

from __future__ import annotations

import random
import textwrap
from datetime import date

import dagster as dg
import pytest

from segment_pipeline.config.project import validation_count
from segment_pipeline.config.segments import load_segments_text
from segment_pipeline.definitions import defs as load_definitions
from segment_pipeline.defs.segments.assets import SEGMENT_MEMBERSHIPS, TREND_COLUMNS
from segment_pipeline.settings import BUNDLED_CONFIG_DIR
from segment_pipeline.storage.connections import open_duckdb
from segment_pipeline_tests.defs.conftest import SMALL_DEMO_DAY, small_demo_resources
from segment_pipeline_tests.rules.reference import past_segment_members
from segment_pipeline_tests.segments.many_segments import many_segments_yaml

defs = load_definitions()

ASSETS = list(defs.assets or [])
# As the nightly job runs them: freshness is judged by its sensor, against the clock.
CHECKS = [c for c in defs.asset_checks or [] if all(k.name != "freshness_check" for k in c.check_keys)]


def config_with_many_segments(tmp_path, n: int):
    """The bundled config with ``n`` generated past segments appended to segments.yaml."""
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    for name in ("goals.yaml", "scores.yaml"):
        (config_dir / name).write_text((BUNDLED_CONFIG_DIR / name).read_text())
    generated = many_segments_yaml(n).split("segmentDefinitions:\n", 1)[1]
    bundled = (BUNDLED_CONFIG_DIR / "segments.yaml").read_text()
    (config_dir / "segments.yaml").write_text(bundled.rstrip("\n") + "\n" + textwrap.indent(generated, "  "))
    return config_dir


def members_of(con, day: date) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for name, user in con.execute(
        "SELECT segment_name, user_id FROM analytics.segment_memberships WHERE as_of_date = ?", [day]
    ).fetchall():
        found.setdefault(name, set()).add(user)
    return found


@pytest.mark.slow
def test_two_thousand_segments_run_the_whole_graph_and_validate_the_config_once(tmp_path):
    config_dir = config_with_many_segments(tmp_path, 2_000)
    resources = small_demo_resources(tmp_path, config_dir=config_dir)
    validations = validation_count()

    result = dg.materialize(ASSETS + CHECKS, resources=resources, partition_key=SMALL_DEMO_DAY)

    assert result.success
    # Every asset and check asked for the config; its files were read and checked once.
    assert validation_count() == validations + 1
    meta = next(
        m.metadata
        for m in result.asset_materializations_for_node("segment_memberships")
        if m.asset_key == SEGMENT_MEMBERSHIPS
    )
    # The size trend stays a readable table: the largest segments only, and it says so.
    trend = meta["sizes_over_time"].value
    assert trend.splitlines()[0].count("|") == TREND_COLUMNS + 2 and "largest of" in trend
    segments = load_segments_text((config_dir / "segments.yaml").read_text(), "segments.yaml").past
    day = date.fromisoformat(SMALL_DEMO_DAY)
    with open_duckdb(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        got = members_of(con, day)
        evaluated = con.execute(
            "SELECT count(*) FROM pipeline_state.segment_evaluations WHERE as_of_date = ?", [day]
        ).fetchone()[0]
        events = [
            {"user_id": u, "event_name": n, "ts": t, "properties": p}
            for u, n, t, p in con.execute(
                "SELECT user_id, event_name, ts, CAST(properties AS VARCHAR) FROM analytics.event_snapshots"
            ).fetchall()
        ]
        columns = [r[0] for r in con.execute("DESCRIBE analytics.profiles").fetchall()]
        profiles = [
            dict(zip(columns, row, strict=True)) for row in con.execute("SELECT * FROM analytics.profiles").fetchall()
        ]
    assert evaluated == len(segments) + 1  # and All Users
    sample = random.Random(11).sample(segments, 12)
    for segment in sample:
        assert got.get(segment.name, set()) == past_segment_members(segment, events, profiles, day), segment.name
    assert any(got.get(s.name) for s in sample)

    # The same config again in the same process: nothing to validate.
    assert dg.materialize(ASSETS + CHECKS, resources=resources, partition_key=SMALL_DEMO_DAY).success
    assert validation_count() == validations + 1
