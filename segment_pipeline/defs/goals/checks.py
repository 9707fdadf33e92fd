"""Checks on goal outputs that campaign tools and uplift reports rely on."""

import dagster as dg

from segment_pipeline.defs.goals.assets import TARGET_GROUPS
from segment_pipeline.defs.partitions import daily_partitions
from segment_pipeline.defs.previews import rows_table
from segment_pipeline.defs.resources import ConfigResource, WarehouseResource
from segment_pipeline.goals.target_groups import control_share_bounds
from segment_pipeline.storage.warehouse import scalar

CONTROL_SHARE_CHECK = "control_share_matches_declared_percent"


@dg.asset_check(asset=TARGET_GROUPS, name=CONTROL_SHARE_CHECK, partitions_def=daily_partitions, blocking=False)
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
            if scalar(
                con,
                "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'analytics' AND table_name = 'target_groups'",
            )
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
