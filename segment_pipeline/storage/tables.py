"""The reference of every ``analytics`` table: grain, keys, and what each column means.

The README's table reference is rendered from here (``render_markdown``), the tables are
created from here (``create_sql``), and so are their Dagster column schemas and unique-key
checks (``defs/``); a test checks that the README holds exactly that text and that the
warehouse a full run writes has exactly these columns, so code, docs and warehouse cannot drift.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Table:
    name: str
    grain: str
    keys: tuple[str, ...]
    columns: tuple[tuple[str, str, str], ...]  # name, DuckDB type, meaning
    dynamic_columns: bool = False  # profiles: one column per profile property after user_id
    required: tuple[str, ...] = ()  # NOT NULL besides the key columns
    compression: tuple[tuple[str, str], ...] = ()  # (column, DuckDB method) fixed at CREATE TABLE

    def not_null(self, column: str) -> bool:
        return column in self.keys or column in self.required


def _t(
    name: str,
    grain: str,
    keys: tuple[str, ...],
    *columns: tuple[str, str, str],
    dynamic: bool = False,
    required: tuple[str, ...] = (),
    compression: tuple[tuple[str, str], ...] = (),
) -> Table:
    return Table(name, grain, keys, columns, dynamic, required, compression)


# The text columns of the tables a load writes millions of rows to, with their method fixed:
# left to choose, DuckDB tries every method on every segment it writes, which cost about a
# third of writing the snapshot. FSST suits ids and JSON; a handful of event types, a
# dictionary. (A segment the method cannot take, e.g. one huge text, is stored uncompressed.)
TEXT_COMPRESSION = (("event_id", "fsst"), ("user_id", "fsst"), ("event_name", "dictionary"), ("properties", "fsst"))


TABLES: tuple[Table, ...] = (
    _t(
        "event_snapshots",
        "one row per event",
        ("event_id",),
        (
            "event_id",
            "VARCHAR",
            "the source's event_id, or `derived-<md5>` of the content (suffix `-N` for the N-th identical row)",
        ),
        ("user_id", "VARCHAR", "the user (integers in the source become their digits)"),
        ("event_name", "VARCHAR", "the event type"),
        ("ts", "TIMESTAMP", "when it happened, UTC"),
        ("properties", "JSON", "the event's properties, a JSON object (`{}` when none)"),
        ("snapshot_date", "DATE", "the day of the run that loaded the row"),
        required=("user_id", "event_name", "ts", "properties", "snapshot_date"),
        compression=TEXT_COMPRESSION,
    ),
    _t(
        "rejected_events",
        "one row per bad source row, or per unreadable file",
        ("source",),
        ("snapshot_date", "DATE", "the day of the run that found it"),
        (
            "source",
            "VARCHAR",
            "`path:N`: N is the line (NDJSON, malformed CSV lines) or the record number (Parquet, CSV); "
            "the path alone for a file that could not be read at all",
        ),
        ("reason", "VARCHAR", "why it was not loaded, e.g. `unparseable ts`, `unreadable file: ...`"),
        ("raw", "VARCHAR", "the row as read, as JSON (an excerpt for a too-long line; empty for an unreadable file)"),
        required=("snapshot_date", "reason"),
    ),
    _t(
        "profiles",
        "one row per user",
        ("user_id",),
        ("user_id", "VARCHAR", "the user; then one column per profile property, typed as in the source"),
        dynamic=True,
    ),
    _t(
        "segment_memberships",
        "one row per (day, segment, member); a view over `segment_tags` and the evaluated days, so storage grows "
        "with changes of membership, not days x members",
        ("as_of_date", "segment_name", "user_id"),
        ("as_of_date", "DATE", "the day the segment was evaluated as of (events before the next midnight)"),
        ("segment_name", "VARCHAR", "a past segment of segments.yaml, or `All Users`"),
        ("user_id", "VARCHAR", "a member"),
    ),
    _t(
        "segment_tags",
        "one row per stay of a user in a segment",
        ("user_id", "segment_name", "created_at"),
        ("user_id", "VARCHAR", "the user"),
        ("segment_name", "VARCHAR", "the segment"),
        ("created_at", "TIMESTAMP", "the first as-of day (00:00 UTC) the user was in the segment"),
        ("removed_at", "TIMESTAMP", "the first as-of day the user was out again; NULL while the tag is current"),
    ),
    _t(
        "segment_overlaps",
        "one row per (day, ordered pair of segments sharing a user), and per (day, segment) on the diagonal",
        ("as_of_date", "segment_a", "segment_b"),
        ("as_of_date", "DATE", "the evaluation day"),
        ("segment_a", "VARCHAR", "a segment"),
        ("segment_b", "VARCHAR", "a segment (equal to segment_a on the diagonal)"),
        (
            "users",
            "BIGINT",
            "users in both; the segment's size when a = b (0 kept there); pairs sharing no user have no row",
        ),
        required=("users",),
    ),
    _t(
        "user_scores",
        "one row per (day, score tree, user of All Users)",
        ("as_of_date", "score_name", "user_id"),
        ("as_of_date", "DATE", "the day"),
        ("score_name", "VARCHAR", "a tree of scores.yaml"),
        ("user_id", "VARCHAR", "the user"),
        ("label", "VARCHAR", "the label of the first path whose segments all hold (the default path otherwise)"),
        required=("label",),
    ),
    _t(
        "goal_status",
        "one row per (goal, day from its freeze day on)",
        ("goal_name", "as_of_date"),
        ("goal_name", "VARCHAR", "the goal"),
        ("as_of_date", "DATE", "the day"),
        ("status", "VARCHAR", "`active`, `insufficient_history`, `ended` or `invalid`"),
        (
            "message",
            "VARCHAR",
            "what a person should know: forecast vs actual, the model, a reported config change, the error",
        ),
        ("model_run_id", "VARCHAR", "the MLflow run of the model that scores the goal"),
        required=("status",),
    ),
    _t(
        "target_groups",
        "one row per (goal, user of its frozen target group)",
        ("goal_name", "user_id"),
        ("goal_name", "VARCHAR", "the goal"),
        ("user_id", "VARCHAR", "a member of the goal's segment as of the day before createdOn"),
        ("group", "VARCHAR", "`test` or `control`, by the public hash"),
        ("frozen_on", "DATE", "the day the group was taken as of (the day before createdOn)"),
        required=("group", "frozen_on"),
    ),
    _t(
        "goal_forecasts",
        "one row per (goal, run day, day of the goal window)",
        ("goal_name", "as_of_date", "day"),
        ("goal_name", "VARCHAR", "the goal"),
        ("as_of_date", "DATE", "the run day"),
        ("day", "DATE", "a day of the goal window"),
        ("predicted_cumulative", "DOUBLE", "expected achievers by the end of `day`, forecast at creation"),
        ("predicted_low", "DOUBLE", "lower bound of the 90% interval"),
        ("predicted_high", "DOUBLE", "upper bound of the 90% interval"),
        ("actual_cumulative", "BIGINT", "target-group achievers by the end of `day`; NULL for days after as_of_date"),
        (
            "predicted_value_cumulative",
            "DOUBLE",
            "value goals (`valueProperty`): expected sum of the property by the end of `day`, forecast at creation; "
            "NULL for other goals",
        ),
        ("predicted_value_low", "DOUBLE", "lower bound of its 90% interval"),
        ("predicted_value_high", "DOUBLE", "upper bound of its 90% interval"),
        (
            "actual_value_cumulative",
            "DOUBLE",
            "the target group's sum of the property by the end of `day`; NULL for days after as_of_date",
        ),
    ),
    _t(
        "intent_buckets",
        "one row per (goal, night, target-group user)",
        ("goal_name", "as_of_date", "user_id"),
        ("goal_name", "VARCHAR", "the goal"),
        ("as_of_date", "DATE", "the night's day"),
        ("user_id", "VARCHAR", "the user"),
        ("group", "VARCHAR", "`test` or `control`"),
        ("score", "DOUBLE", "calibrated probability of achieving in what is left of the window (1.0 once achieved)"),
        ("bucket", "VARCHAR", "`most_likely`, `moderately_likely`, `least_likely` or `achieved`"),
        (
            "predicted_value",
            "DOUBLE",
            "value goals: expected sum of the property over the goal's events in what is left of the window; "
            "for achieved users, the sum they realized in the window so far; NULL for other goals",
        ),
        (
            "value_tier",
            "VARCHAR",
            "value goals: `high`, `medium`, `low` (top 20%, next 30%, rest of tonight's open users by predicted_value, "
            "ties by a stable hash of user_id); NULL for achieved users and other goals",
        ),
        required=("group", "bucket"),
    ),
    _t(
        "goal_uplift",
        "one row per (goal, night, bucket)",
        ("goal_name", "as_of_date", "bucket"),
        ("goal_name", "VARCHAR", "the goal"),
        ("as_of_date", "DATE", "the night's day; achievement counted up to its end (the whole window once ended)"),
        ("bucket", "VARCHAR", "`all`, or the bucket the users had at creation (pre-treatment)"),
        ("test_users", "BIGINT", "test-group users"),
        ("test_achievers", "BIGINT", "of them, achievers"),
        ("control_users", "BIGINT", "control-group users"),
        ("control_achievers", "BIGINT", "of them, achievers"),
        ("test_rate", "DOUBLE", "test_achievers / test_users"),
        ("control_rate", "DOUBLE", "control_achievers / control_users"),
        ("abs_uplift", "DOUBLE", "test_rate - control_rate (for minimize goals, negative is the improvement)"),
        ("rel_uplift", "DOUBLE", "abs_uplift / control_rate; NULL when control_rate is 0"),
        ("ci_low", "DOUBLE", "95% Newcombe (Wilson score) interval for abs_uplift, low"),
        ("ci_high", "DOUBLE", "... high"),
        ("p_value", "DOUBLE", "two-sided: pooled z-test, Fisher's exact test when an expected cell is below 5"),
        (
            "srm_p_value",
            "DOUBLE",
            "sample-ratio mismatch against the declared split (chi-square); below 0.001 means a broken split",
        ),
        (
            "test_value_per_user",
            "DOUBLE",
            "value goals: the test users' sum of the property in the window so far, per user (zeros included); "
            "NULL for other goals",
        ),
        ("control_value_per_user", "DOUBLE", "... the control users'"),
        ("value_uplift", "DOUBLE", "test_value_per_user - control_value_per_user"),
        ("value_ci_low", "DOUBLE", "95% Welch interval for value_uplift, low"),
        ("value_ci_high", "DOUBLE", "... high"),
    ),
    _t(
        "goal_model_quality",
        "one row per (goal, scored night) once the goal's window has ended",
        ("goal_name", "prediction_date"),
        ("goal_name", "VARCHAR", "the goal"),
        ("prediction_date", "DATE", "the scored night (`intent_buckets.as_of_date`)"),
        ("model_run_id", "VARCHAR", "the MLflow run of the model that scored that night"),
        ("horizon_end", "DATE", "the end of the window the night's scores predicted (the goal's endDate)"),
        ("users", "BIGINT", "users still open that night (not yet achieved), the ones judged"),
        ("achievers", "BIGINT", "of them, users who achieved after that night, by horizon_end"),
        ("predicted_achievers", "DOUBLE", "the sum of their scores"),
        ("auc", "DOUBLE", "realized ROC AUC of the scores; NULL when everyone or no one achieved"),
        ("auc_ci_low", "DOUBLE", "95% Hanley-McNeil interval for auc, low"),
        ("auc_ci_high", "DOUBLE", "... high"),
        ("brier", "DOUBLE", "mean squared error of the scores against the 0/1 outcome"),
        ("top_bucket_lift", "DOUBLE", "conversion of that night's most_likely bucket over all open users' conversion"),
        required=("horizon_end", "users", "achievers", "predicted_achievers"),
    ),
    _t(
        "engagement_audiences",
        "one row per (goal, night, bucket, user)",
        ("goal_name", "as_of_date", "user_id"),
        ("goal_name", "VARCHAR", "the goal"),
        ("as_of_date", "DATE", "the night's day"),
        ("bucket", "VARCHAR", "`most_likely`, `moderately_likely` or `least_likely`"),
        ("user_id", "VARCHAR", "a test-group user who has not achieved yet (never a control user)"),
        required=("bucket",),
    ),
)

BY_NAME = {t.name: t for t in TABLES}
README_BEGIN = "<!-- table reference: generated from segment_pipeline/storage/tables.py -->"
README_END = "<!-- end of table reference -->"


def column_ddl(name: str) -> str:
    """The column list of ``analytics.<name>`` for CREATE TABLE: types from the reference,
    NOT NULL on the key and the required columns."""
    table = BY_NAME[name]
    methods = dict(table.compression)
    return ", ".join(
        f'"{column}" {kind}'
        + (f" USING COMPRESSION {methods[column]}" if column in methods else "")
        + (" NOT NULL" if table.not_null(column) else "")
        for column, kind, _ in table.columns
    )


def create_sql(name: str) -> str:
    """CREATE TABLE IF NOT EXISTS for ``analytics.<name>``, from the reference."""
    return f'CREATE TABLE IF NOT EXISTS analytics."{name}" ({column_ddl(name)})'


def render_markdown() -> str:
    """The README's table reference."""
    parts = [README_BEGIN]
    for table in TABLES:
        parts.append(f"\n### `analytics.{table.name}`\n\nGrain: {table.grain}. Key: `{', '.join(table.keys)}`.\n")
        parts.append("| column | type | meaning |\n|---|---|---|")
        parts += [f"| `{name}` | {kind} | {meaning} |" for name, kind, meaning in table.columns]
    parts.append("\n" + README_END)
    return "\n".join(parts)
