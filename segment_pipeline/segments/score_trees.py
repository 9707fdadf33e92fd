"""Score trees: a label per user (S1..S4) from the first path whose segments all hold.

A tree is recomputed on its refresh day (daily; weekly on Mondays; biweekly on
every other Monday counted from 2024-01-01; monthly on the 1st; quarterly on
Jan/Apr/Jul/Oct 1st) and its labels are carried forward unchanged on the days
between. A tree with no earlier labels is computed on the day it first runs.

Labels are stored as spans (``pipeline_state.user_score_spans``): a span opens on the first
scored day a user has a label and ends on the first scored day they have another (or none);
``analytics.user_scores`` is a view answering per scored day (``pipeline_state.score_days``).
Storage grows with changes of label, not with days times users (1M users x 2 trees x 365
days would be 730M rows a year); a carried-forward day writes one row. The newest day is
applied incrementally; re-running an older day rebuilds the tree's spans from every day's
labels, as the segment tags do.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import duckdb

from segment_pipeline.config.scores import ScoreDefinition
from segment_pipeline.config.segments import ALL_USERS
from segment_pipeline.storage.warehouse import scalar

SPANS = "pipeline_state.user_score_spans"
SCORE_DAYS = "pipeline_state.score_days"
_SPANS_DDL = """score_name VARCHAR NOT NULL, user_id VARCHAR NOT NULL, label VARCHAR NOT NULL,
                first_day DATE NOT NULL, end_day DATE"""
# The contract's columns, one row per (scored day, tree, user): spans that cover a scored day.
_USER_SCORES_VIEW = f"""CREATE OR REPLACE VIEW analytics.user_scores AS
SELECT d.as_of_date, s.score_name, s.user_id, s.label
FROM {SCORE_DAYS} d
JOIN {SPANS} s
  ON s.score_name = d.score_name AND s.first_day <= d.as_of_date AND (s.end_day IS NULL OR s.end_day > d.as_of_date)"""
# A tree's spans rebuilt from every scored day's labels (``_all_labels``): islands of consecutive scored days.
_REBUILD_SPANS = f"""
CREATE OR REPLACE TEMP TABLE _rebuilt_spans AS
WITH days AS (
    SELECT as_of_date, row_number() OVER (ORDER BY as_of_date) AS day_idx
    FROM {SCORE_DAYS} WHERE score_name = $score
), labelled AS (
    SELECT a.user_id, a.label, d.day_idx,
           d.day_idx - row_number() OVER (PARTITION BY a.user_id, a.label ORDER BY d.day_idx) AS island
    FROM _all_labels a JOIN days d USING (as_of_date)
), islands AS (
    SELECT user_id, label, min(day_idx) AS first_idx, max(day_idx) AS last_idx
    FROM labelled GROUP BY user_id, label, island
)
SELECT $score AS score_name, i.user_id, i.label, f.as_of_date AS first_day, n.as_of_date AS end_day
FROM islands i
JOIN days f ON f.day_idx = i.first_idx
LEFT JOIN days n ON n.day_idx = i.last_idx + 1
"""


def ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"CREATE TABLE IF NOT EXISTS {SPANS} ({_SPANS_DDL})")
    con.execute(f"CREATE TABLE IF NOT EXISTS {SCORE_DAYS} (as_of_date DATE NOT NULL, score_name VARCHAR NOT NULL)")
    kind = con.execute(
        """SELECT table_type FROM information_schema.tables
           WHERE table_schema = 'analytics' AND table_name = 'user_scores'"""
    ).fetchone()
    if kind and kind[0] == "BASE TABLE":  # a warehouse from before the spans: converted once
        con.execute("CREATE OR REPLACE TEMP TABLE _old_scores AS SELECT * FROM analytics.user_scores")
        con.execute("DROP TABLE analytics.user_scores")
        con.execute(f"INSERT INTO {SCORE_DAYS} SELECT DISTINCT as_of_date, score_name FROM _old_scores")
        for (name,) in con.execute("SELECT DISTINCT score_name FROM _old_scores ORDER BY 1").fetchall():
            con.execute(
                "CREATE OR REPLACE TEMP TABLE _all_labels AS "
                "SELECT as_of_date, user_id, label FROM _old_scores WHERE score_name = ?",
                [name],
            )
            _rebuild_spans(con, name)
        con.execute("DROP TABLE _old_scores")
        kind = None
    if not kind:
        con.execute(_USER_SCORES_VIEW)


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
        """CREATE OR REPLACE TEMP TABLE _day_labels AS
           SELECT pop.user_id, l.label
           FROM (SELECT user_id FROM analytics.segment_memberships WHERE as_of_date = ? AND segment_name = ?) pop
           LEFT JOIN (SELECT user_id, min(path_idx) AS path_idx FROM _path_hits GROUP BY user_id) h USING (user_id)
           JOIN _path_labels l ON l.path_idx = coalesce(h.path_idx, ?)""",
        [as_of, ALL_USERS, default_idx],
    )
    multi = scalar(con, "SELECT count(*) FROM (SELECT user_id FROM _path_hits GROUP BY user_id HAVING count(*) > 1)")
    con.execute("DROP TABLE _path_segments; DROP TABLE _path_required; DROP TABLE _path_labels; DROP TABLE _path_hits")
    return multi


def replace_user_scores(con: duckdb.DuckDBPyConnection, as_of: date, scores: list[ScoreDefinition]) -> list[ScoreRun]:
    """Labels of ``as_of`` for every tree (the day's memberships, All Users included, must be written)."""
    ensure_tables(con)
    # A tree no longer configured has no labels on a re-run day (its spans stay for the days it had).
    con.execute(
        f"DELETE FROM {SCORE_DAYS} WHERE as_of_date = ? AND NOT list_contains(?, score_name)",
        [as_of, [s.name for s in scores]],
    )
    runs = []
    for score in scores:
        previous = scalar(
            con,
            f"SELECT max(as_of_date) FROM {SCORE_DAYS} WHERE score_name = ? AND as_of_date < ?",
            [score.name, as_of],
        )
        if is_refresh_day(score.refresh, as_of) or previous is None:
            mode, multi = "computed", _compute(con, as_of, score)
        else:
            mode, multi = "carried_forward", 0
            con.execute(
                "CREATE OR REPLACE TEMP TABLE _day_labels AS "
                "SELECT user_id, label FROM analytics.user_scores WHERE score_name = ? AND as_of_date = ?",
                [score.name, previous],
            )
        store_day_labels(con, score.name, as_of)
        labels = dict(con.execute("SELECT label, count(*) FROM _day_labels GROUP BY 1 ORDER BY 1").fetchall())
        con.execute("DROP TABLE _day_labels")
        runs.append(ScoreRun(score.name, mode, labels, multi))
    return runs


def store_day_labels(con: duckdb.DuckDBPyConnection, score_name: str, as_of: date) -> None:
    """Make ``_day_labels`` (``user_id, label``) the tree's labels of ``as_of``, replacing an earlier run's."""
    latest = scalar(con, f"SELECT max(as_of_date) FROM {SCORE_DAYS} WHERE score_name = ?", [score_name])
    if latest is not None and as_of < latest:
        # An older day can split or join spans after it: rebuild the tree's spans from every day.
        con.execute(
            """CREATE OR REPLACE TEMP TABLE _all_labels AS
               SELECT as_of_date, user_id, label FROM analytics.user_scores WHERE score_name = ? AND as_of_date <> ?
               UNION ALL SELECT CAST(? AS DATE), user_id, label FROM _day_labels""",
            [score_name, as_of, as_of],
        )
        _add_day(con, score_name, as_of)
        _rebuild_spans(con, score_name)
        return
    at = [score_name, as_of]
    # Undo what an earlier run of this same day did, then apply the day's changes.
    con.execute(f"DELETE FROM {SPANS} WHERE score_name = ? AND first_day = ?", at)
    con.execute(f"UPDATE {SPANS} SET end_day = NULL WHERE score_name = ? AND end_day = ?", at)
    con.execute(
        f"""UPDATE {SPANS} s SET end_day = $day
            WHERE s.score_name = $score AND s.end_day IS NULL
              AND NOT EXISTS (SELECT 1 FROM _day_labels d WHERE d.user_id = s.user_id AND d.label = s.label)""",
        {"score": score_name, "day": as_of},
    )
    con.execute(
        f"""INSERT INTO {SPANS}
            SELECT $score, d.user_id, d.label, $day, NULL FROM _day_labels d
            WHERE NOT EXISTS (SELECT 1 FROM {SPANS} s WHERE s.score_name = $score AND s.end_day IS NULL
                                AND s.user_id = d.user_id AND s.label = d.label)
            ORDER BY d.user_id""",
        {"score": score_name, "day": as_of},
    )
    _add_day(con, score_name, as_of)


def _add_day(con: duckdb.DuckDBPyConnection, score_name: str, as_of: date) -> None:
    con.execute(f"DELETE FROM {SCORE_DAYS} WHERE score_name = ? AND as_of_date = ?", [score_name, as_of])
    con.execute(f"INSERT INTO {SCORE_DAYS} VALUES (?, ?)", [as_of, score_name])


def _rebuild_spans(con: duckdb.DuckDBPyConnection, score_name: str) -> None:
    """The tree's spans from ``_all_labels`` (every scored day's labels), which it drops."""
    con.execute(_REBUILD_SPANS, {"score": score_name})
    con.execute(f"DELETE FROM {SPANS} WHERE score_name = ?", [score_name])
    con.execute(f"INSERT INTO {SPANS} SELECT * FROM _rebuilt_spans ORDER BY user_id, first_day")
    con.execute("DROP TABLE _rebuilt_spans; DROP TABLE _all_labels")
