"""Score trees: a label per user (S1..S4) from the first path whose segments all hold.

A tree is recomputed on its refresh day (daily; weekly on Mondays; biweekly on
every other Monday counted from 2024-01-01; monthly on the 1st; quarterly on
Jan/Apr/Jul/Oct 1st) and its labels are carried forward unchanged on the days
between. A tree with no earlier labels is computed on the day it first runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import duckdb

from segment_pipeline.config.scores import ScoreDefinition
from segment_pipeline.config.segments import ALL_USERS
from segment_pipeline.storage.tables import column_ddl
from segment_pipeline.storage.warehouse import scalar

USER_SCORES_DDL = column_ddl("user_scores")
_BIWEEKLY_EPOCH = date(2024, 1, 1)  # a Monday


def is_refresh_day(refresh: str, day: date) -> bool:
    if refresh == "daily":
        return True
    if refresh == "weekly":
        return day.weekday() == 0
    if refresh == "biweekly":
        return day.weekday() == 0 and ((day - _BIWEEKLY_EPOCH).days // 7) % 2 == 0
    if refresh == "monthly":
        return day.day == 1
    if refresh == "quarterly":
        return day.day == 1 and day.month in (1, 4, 7, 10)
    raise ValueError(f"unknown refresh cadence {refresh!r}")


@dataclass(frozen=True)
class ScoreRun:
    score_name: str
    mode: str  # computed | carried_forward
    labels: dict[str, int]
    multi_path_users: int  # users for whom more than one path held (the first one won)


def _compute(con: duckdb.DuckDBPyConnection, as_of: date, score: ScoreDefinition) -> int:
    paths = [(i, seg) for i, p in enumerate(score.paths) if not p.default for seg in p.segments]
    required = [(i, len(set(p.segments))) for i, p in enumerate(score.paths) if not p.default]
    labels = [(i, p.label) for i, p in enumerate(score.paths)]
    default_idx = next(i for i, p in enumerate(score.paths) if p.default)
    con.execute("CREATE OR REPLACE TEMP TABLE _path_segments (path_idx INTEGER, segment_name VARCHAR)")
    con.execute("CREATE OR REPLACE TEMP TABLE _path_required (path_idx INTEGER, n INTEGER)")
    con.execute("CREATE OR REPLACE TEMP TABLE _path_labels (path_idx INTEGER, label VARCHAR)")
    if paths:
        con.executemany("INSERT INTO _path_segments VALUES (?, ?)", paths)
        con.executemany("INSERT INTO _path_required VALUES (?, ?)", required)
    con.executemany("INSERT INTO _path_labels VALUES (?, ?)", labels)
    con.execute(
        """CREATE OR REPLACE TEMP TABLE _path_hits AS
           SELECT m.user_id, ps.path_idx
           FROM analytics.segment_memberships m
           JOIN (SELECT DISTINCT * FROM _path_segments) ps USING (segment_name)
           JOIN _path_required r USING (path_idx)
           WHERE m.as_of_date = ?
           GROUP BY m.user_id, ps.path_idx, r.n
           HAVING count(*) = r.n""",
        [as_of],
    )
    con.execute(
        """INSERT INTO analytics.user_scores
           SELECT ?, ?, pop.user_id, l.label
           FROM (SELECT user_id FROM analytics.segment_memberships WHERE as_of_date = ? AND segment_name = ?) pop
           LEFT JOIN (SELECT user_id, min(path_idx) AS path_idx FROM _path_hits GROUP BY user_id) h USING (user_id)
           JOIN _path_labels l ON l.path_idx = coalesce(h.path_idx, ?)
           ORDER BY pop.user_id""",
        [as_of, score.name, as_of, ALL_USERS, default_idx],
    )
    multi = scalar(con, "SELECT count(*) FROM (SELECT user_id FROM _path_hits GROUP BY user_id HAVING count(*) > 1)")
    con.execute("DROP TABLE _path_segments; DROP TABLE _path_required; DROP TABLE _path_labels; DROP TABLE _path_hits")
    return multi


def replace_user_scores(con: duckdb.DuckDBPyConnection, as_of: date, scores: list[ScoreDefinition]) -> list[ScoreRun]:
    """Write ``user_scores`` for ``as_of`` (the day's memberships, All Users included, must be written)."""
    con.execute(f"CREATE TABLE IF NOT EXISTS analytics.user_scores ({USER_SCORES_DDL})")
    con.execute("DELETE FROM analytics.user_scores WHERE as_of_date = ?", [as_of])
    runs = []
    for score in scores:
        previous = scalar(
            con,
            "SELECT max(as_of_date) FROM analytics.user_scores WHERE score_name = ? AND as_of_date < ?",
            [score.name, as_of],
        )
        if is_refresh_day(score.refresh, as_of) or previous is None:
            mode, multi = "computed", _compute(con, as_of, score)
        else:
            mode, multi = "carried_forward", 0
            con.execute(
                """INSERT INTO analytics.user_scores
                   SELECT ?, score_name, user_id, label FROM analytics.user_scores
                   WHERE score_name = ? AND as_of_date = ? ORDER BY user_id""",
                [as_of, score.name, previous],
            )
        labels = dict(
            con.execute(
                "SELECT label, count(*) FROM analytics.user_scores WHERE score_name = ? AND as_of_date = ? GROUP BY 1 ORDER BY 1",
                [score.name, as_of],
            ).fetchall()
        )
        runs.append(ScoreRun(score.name, mode, labels, multi))
    return runs
