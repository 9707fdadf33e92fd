"""The output checks on a real DuckDB warehouse: each rule passes on clean rows and names the broken ones."""

from __future__ import annotations

from datetime import date

import pytest

from segment_pipeline.quality.output_checks import (
    control_users_in_audiences,
    duplicate_keys,
    invalid_goals,
    sample_ratio_mismatches,
)
from segment_pipeline.storage.tables import BY_NAME, TABLES
from segment_pipeline.storage.warehouse import quote_ident

D1, D2 = date(2026, 2, 20), date(2026, 2, 21)


def create(con, name: str) -> None:
    columns = ", ".join(f"{quote_ident(c)} {kind}" for c, kind, _ in BY_NAME[name].columns)
    con.execute(f"CREATE TABLE analytics.{quote_ident(name)} ({columns})")


def test_each_check_passes_while_its_table_is_not_written_yet(con):
    assert invalid_goals(con, [D1]).passed
    assert sample_ratio_mismatches(con, [D1]).passed
    assert control_users_in_audiences(con, [D1]).passed
    for table in TABLES:
        finding = duplicate_keys(con, table, [D1])
        assert finding.passed and "not written yet" in finding.summary, table.name


def test_invalid_goals_are_named_on_the_runs_days_only(con):
    create(con, "goal_status")
    con.execute(
        """INSERT INTO analytics.goal_status VALUES
           ('a', ?, 'active', 'fine', 'r1'), ('b', ?, 'invalid', 'KeyError: x', NULL), ('c', ?, 'invalid', 'old', NULL)""",
        [D2, D2, D1],
    )
    finding = invalid_goals(con, [D2])
    assert not finding.passed and finding.count == 1
    assert finding.examples == [("b", D2, "KeyError: x")]
    assert finding.columns == ("goal_name", "as_of_date", "message")
    assert invalid_goals(con, [D1, D2]).count == 2


@pytest.mark.parametrize(
    ("srm_p", "bucket", "alarm"), [(1e-4, "all", True), (0.2, "all", False), (1e-4, "most_likely", False)]
)
def test_sample_ratio_mismatch_alarms_below_one_in_a_thousand_on_the_whole_split(con, srm_p, bucket, alarm):
    create(con, "goal_uplift")
    con.execute(
        "INSERT INTO analytics.goal_uplift (goal_name, as_of_date, bucket, test_users, control_users, srm_p_value) "
        "VALUES ('g', ?, ?, 900, 40, ?)",
        [D1, bucket, srm_p],
    )
    finding = sample_ratio_mismatches(con, [D1])
    assert finding.passed is not alarm
    if alarm:
        assert finding.examples == [("g", D1, 900, 40, srm_p)]


def test_a_control_user_in_an_audience_is_found_and_test_users_are_not(con):
    create(con, "target_groups")
    create(con, "engagement_audiences")
    con.execute(
        """INSERT INTO analytics.target_groups VALUES
           ('g', 'u1', 'test', ?), ('g', 'u2', 'control', ?), ('h', 'u2', 'test', ?)""",
        [D1, D1, D1],
    )
    con.execute(
        "INSERT INTO analytics.engagement_audiences VALUES ('g', ?, 'most_likely', 'u1'), ('h', ?, 'least_likely', 'u2')",
        [D2, D2],
    )
    assert control_users_in_audiences(con, [D2]).passed  # u2 is control of g only, and in h's audience
    con.execute("INSERT INTO analytics.engagement_audiences VALUES ('g', ?, 'least_likely', 'u2')", [D2])
    finding = control_users_in_audiences(con, [D2])
    assert not finding.passed
    assert finding.examples == [("g", D2, "least_likely", "u2")]


def test_duplicate_keys_follow_the_registry_and_look_at_the_runs_days_when_keyed_by_day(con):
    create(con, "goal_status")
    con.execute(
        "INSERT INTO analytics.goal_status VALUES ('a', ?, 'active', '', NULL), ('a', ?, 'ended', '', NULL)",
        [D1, D1],
    )
    con.execute("INSERT INTO analytics.goal_status VALUES ('a', ?, 'active', '', NULL)", [D2])
    assert duplicate_keys(con, BY_NAME["goal_status"], [D2]).passed
    finding = duplicate_keys(con, BY_NAME["goal_status"], [D1, D2])
    assert not finding.passed
    assert finding.columns == ("goal_name", "as_of_date", "rows")
    assert finding.examples == [("a", D1, 2)]


def test_a_table_without_a_day_in_its_key_is_checked_whole(con):
    create(con, "target_groups")
    con.execute(
        "INSERT INTO analytics.target_groups VALUES ('g', 'u1', 'test', ?), ('g', 'u1', 'control', ?)", [D1, D2]
    )
    finding = duplicate_keys(con, BY_NAME["target_groups"], [D2])
    assert not finding.passed and finding.examples == [("g", "u1", 2)]
