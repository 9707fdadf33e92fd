"""Checks on goal outputs that campaign tools and uplift reports rely on."""

import dagster as dg

from segment_pipeline.defs.findings import check_result, unique_key_checks
from segment_pipeline.defs.goals.assets import ENGAGEMENT_AUDIENCES, GOAL_SPECS, GOAL_STATUS, GOAL_UPLIFT, TARGET_GROUPS
from segment_pipeline.defs.partitions import daily_partitions, run_days
from segment_pipeline.defs.previews import rows_table
from segment_pipeline.defs.resources import ConfigResource, WarehouseResource
from segment_pipeline.goals.target_groups import control_share_bounds
from segment_pipeline.quality.output_checks import control_users_in_audiences, invalid_goals, sample_ratio_mismatches

CONTROL_SHARE_CHECK = "control_share_matches_declared_percent"
NO_INVALID_GOAL_CHECK = "no_goal_invalid"
SRM_CHECK = "no_sample_ratio_mismatch"
NO_CONTROL_IN_AUDIENCES_CHECK = "no_control_user_in_audiences"


def control_share_matches_declared_percent(
    warehouse: WarehouseResource, project_config: ConfigResource
) -> dg.AssetCheckResult:
    """Each frozen target group's control share lies within the 99.9% binomial range of its
    declared controlGroupPercent: outside it, the assignment is not the public hash."""
    declared = {g.name: g.control_group_percent for g in project_config.load().goals.goals}
    with warehouse.connect(read_only=True) as con:
        counts = (
            con.execute(
                """SELECT goal_name, count(*), count(*) FILTER (WHERE "group" = 'control')
               FROM analytics.target_groups GROUP BY 1 ORDER BY 1"""
            ).fetchall()
            if con.execute(
                "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'analytics' AND table_name = 'target_groups'"
            ).fetchone()[0]
            else []
        )
    rows, passed = [], True
    for goal, n, control in counts:
        if goal not in declared:
            continue
        low, high = control_share_bounds(n, declared[goal])
        ok = low <= control / n <= high
        passed &= ok
        rows.append(
            [
                goal,
                n,
                control,
                f"{control / n:.2%}",
                f"{declared[goal]}%",
                f"[{low:.2%}, {high:.2%}]",
                "ok" if ok else "OUT",
            ]
        )
    return dg.AssetCheckResult(
        passed=passed,
        metadata={
            "groups": dg.MetadataValue.md(
                rows_table(["goal", "users", "control", "share", "declared", "99.9% range", ""], rows)
            )
        },
    )


def _alarm_specs(partitions: dg.DailyPartitionsDefinition) -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(
            NO_INVALID_GOAL_CHECK,
            asset=GOAL_STATUS,
            partitions_def=partitions,
            blocking=False,
            description="No goal's night ended invalid (its buckets, audiences and uplift would be stale).",
        ),
        dg.AssetCheckSpec(
            SRM_CHECK,
            asset=GOAL_UPLIFT,
            partitions_def=partitions,
            blocking=False,
            description="Each goal's test/control sizes fit its declared control share (SRM p >= 0.001).",
        ),
        dg.AssetCheckSpec(
            NO_CONTROL_IN_AUDIENCES_CHECK,
            asset=ENGAGEMENT_AUDIENCES,
            partitions_def=partitions,
            blocking=True,
            description="No control-group user is in any engagement audience.",
        ),
    ]


def goal_alarms(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource):
    """What a campaign manager must know before acting on tonight's goals."""
    days = run_days(context)
    with warehouse.connect(read_only=True) as con:
        invalid = invalid_goals(con, days)
        srm = sample_ratio_mismatches(con, days)
        control = control_users_in_audiences(con, days)
    yield check_result(GOAL_STATUS, NO_INVALID_GOAL_CHECK, invalid, dg.AssetCheckSeverity.WARN)
    yield check_result(GOAL_UPLIFT, SRM_CHECK, srm)
    yield check_result(ENGAGEMENT_AUDIENCES, NO_CONTROL_IN_AUDIENCES_CHECK, control)


GOAL_TABLES = [spec.key.path[-1] for spec in GOAL_SPECS]  # every table the goals step writes


@dg.definitions
def defs() -> dg.Definitions:
    partitions = daily_partitions()
    return dg.Definitions(
        asset_checks=[
            dg.asset_check(asset=TARGET_GROUPS, name=CONTROL_SHARE_CHECK, partitions_def=partitions, blocking=False)(
                control_share_matches_declared_percent
            ),
            dg.multi_asset_check(name="goal_alarms", specs=_alarm_specs(partitions))(goal_alarms),
            unique_key_checks("goal_unique_keys", GOAL_TABLES, partitions),
        ]
    )
