"""Checks on goal outputs that campaign tools and uplift reports rely on, in one step after the goals."""

import dagster as dg
import duckdb

from segment_pipeline.defs.findings import check_result, unique_key_results, unique_key_specs
from segment_pipeline.defs.goals.assets import ENGAGEMENT_AUDIENCES, GOAL_SPECS, GOAL_STATUS, GOAL_UPLIFT, TARGET_GROUPS
from segment_pipeline.defs.partitions import daily_partitions, run_days
from segment_pipeline.defs.previews import rows_table
from segment_pipeline.defs.resources import ConfigResource, WarehouseResource
from segment_pipeline.goals.target_groups import control_share_bounds
from segment_pipeline.quality.output_checks import control_users_in_audiences, invalid_goals, sample_ratio_mismatches
from segment_pipeline.storage.warehouse import ANALYTICS, table_exists

CONTROL_SHARE_CHECK = "control_share_matches_declared_percent"
NO_INVALID_GOAL_CHECK = "no_goal_invalid"
SRM_CHECK = "no_sample_ratio_mismatch"
NO_CONTROL_IN_AUDIENCES_CHECK = "no_control_user_in_audiences"
GOAL_TABLES = [spec.key.path[-1] for spec in GOAL_SPECS]  # every table the goals step writes


def control_share(con: duckdb.DuckDBPyConnection, declared: dict[str, float]) -> dg.AssetCheckResult:
    """Each frozen target group's control share lies within the 99.9% binomial range of its
    declared controlGroupPercent: outside it, the assignment is not the public hash."""
    counts = (
        con.execute(
            """SELECT goal_name, count(*), count(*) FILTER (WHERE "group" = 'control')
               FROM analytics.target_groups GROUP BY 1 ORDER BY 1"""
        ).fetchall()
        if table_exists(con, ANALYTICS, "target_groups")
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
        asset_key=TARGET_GROUPS,
        check_name=CONTROL_SHARE_CHECK,
        passed=passed,
        metadata={
            "groups": dg.MetadataValue.md(
                rows_table(["goal", "users", "control", "share", "declared", "99.9% range", ""], rows)
            )
        },
    )


def _specs(partitions: dg.DailyPartitionsDefinition) -> list[dg.AssetCheckSpec]:
    def spec(name: str, asset: dg.AssetKey, blocking: bool, description: str) -> dg.AssetCheckSpec:
        return dg.AssetCheckSpec(
            name, asset=asset, partitions_def=partitions, blocking=blocking, description=description
        )

    return [
        spec(
            CONTROL_SHARE_CHECK,
            TARGET_GROUPS,
            False,
            "Each target group's control share is within the 99.9% range of its declared percent.",
        ),
        spec(
            NO_INVALID_GOAL_CHECK,
            GOAL_STATUS,
            False,
            "No goal's night ended invalid (its buckets, audiences and uplift would be stale).",
        ),
        spec(
            SRM_CHECK,
            GOAL_UPLIFT,
            False,
            "Each goal's test/control sizes fit its declared control share (SRM p >= 0.001).",
        ),
        spec(
            NO_CONTROL_IN_AUDIENCES_CHECK,
            ENGAGEMENT_AUDIENCES,
            True,
            "No control-group user is in any engagement audience.",
        ),
        *unique_key_specs(GOAL_TABLES, partitions),
    ]


def goal_checks(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource, project_config: ConfigResource):
    """What a campaign manager must know before acting on tonight's goals; one step, so the
    checks cost the run one connection."""
    days = run_days(context)
    declared = {g.name: g.control_group_percent for g in project_config.load().goals.goals}
    with warehouse.connect(read_only=True) as con:
        results = [
            control_share(con, declared),
            check_result(GOAL_STATUS, NO_INVALID_GOAL_CHECK, invalid_goals(con, days), dg.AssetCheckSeverity.WARN),
            check_result(GOAL_UPLIFT, SRM_CHECK, sample_ratio_mismatches(con, days)),
            check_result(ENGAGEMENT_AUDIENCES, NO_CONTROL_IN_AUDIENCES_CHECK, control_users_in_audiences(con, days)),
            *unique_key_results(con, GOAL_TABLES, days),
        ]
    yield from results


@dg.definitions
def defs() -> dg.Definitions:
    checks = dg.multi_asset_check(name="goal_checks", specs=_specs(daily_partitions()))(goal_checks)
    return dg.Definitions(asset_checks=[checks])
