"""Score trees (``scores.yaml``, contract section 5): ordered paths of past segments, then a default.

A user gets the label of the first path whose segments all hold as of the day; the last
path is ``default: true`` so every user gets a label.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from segment_pipeline.config.errors import ConfigError
from segment_pipeline.config.segments import ALL_USERS, SegmentConfig
from segment_pipeline.config.yaml_lines import ConfigReader

RULE_REFRESH = "rule refresh (daily, weekly, biweekly, monthly or quarterly)"
RULE_DEFAULT = "rule default path (the last path, and only it, is default: true, with no segments)"
RULE_LABELS = "rule labels (every path has a label, unique within its score)"
RULE_SEGMENTS = "rule segments (each other path lists past segments that exist, or All Users)"
RULE_NAMES = "rule names (score names are unique)"


class ScorePath(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, populate_by_name=True)

    label: str = Field(min_length=1)
    segments: list[str] = Field(default_factory=list)
    default: bool = False


class ScoreDefinition(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, populate_by_name=True)

    name: str = Field(alias="scoreName", min_length=1)
    refresh: Literal["daily", "weekly", "biweekly", "monthly", "quarterly"]
    paths: list[ScorePath] = Field(min_length=1)

    @property
    def segment_names(self) -> list[str]:
        """Every segment the tree reads, in first-use order."""
        return list(dict.fromkeys(name for path in self.paths for name in path.segments))


@dataclass(frozen=True)
class ScoreConfig:
    scores: list[ScoreDefinition]


SCORE_KEYS = [f.alias or name for name, f in ScoreDefinition.model_fields.items()]
PATH_KEYS = list(ScorePath.model_fields)


def load_scores(path: Path, segments: SegmentConfig) -> ScoreConfig:
    """Read and check ``scores.yaml`` against the segments; a missing file means no scores."""
    path = Path(path)
    if not path.exists():
        return ScoreConfig([])
    return load_scores_text(path.read_text(encoding="utf-8"), segments, str(path))


def load_scores_text(text: str, segments: SegmentConfig, source_name: str = "scores.yaml") -> ScoreConfig:
    """Parse and check score trees; raises ``ConfigError`` listing every problem."""
    reader = ConfigReader(text, source_name)
    items, base = reader.document("scores", "scoreDefinitions")
    scores: list[ScoreDefinition] = []
    for path, item, raw in reader.entries(
        items,
        base,
        label="score",
        name_key="scoreName",
        keys=SCORE_KEYS,
        nested=("paths", PATH_KEYS),
        rule_names=RULE_NAMES,
        duplicate_fix="rename one",
    ):
        try:
            score = ScoreDefinition.model_validate(raw)
        except ValidationError as exc:
            reader.add_validation_error(exc, path, item, {"refresh": RULE_REFRESH})
            continue
        for where, rule, message in score_problems(score, segments):
            reader.add(path + where, item, rule, message)
        scores.append(score)
    if reader.problems:
        raise ConfigError(reader.problems)
    return ScoreConfig(scores)


def score_problems(score: ScoreDefinition, segments: SegmentConfig) -> list[tuple[tuple, str, str]]:
    """The tree rules for one parsed score: ``(path inside the score, rule, message)`` each."""
    found: list[tuple[tuple, str, str]] = []
    last = len(score.paths) - 1
    if not score.paths[last].default:
        found.append(
            (
                ("paths", last),
                RULE_DEFAULT,
                f"the last path ('{score.paths[last].label}') is not default: true. "
                "Fix: end paths with '- label: ...' and 'default: true'",
            )
        )
    labels: set[str] = set()
    known = [s.name for s in segments.segments] + [ALL_USERS]
    for j, path in enumerate(score.paths):
        at = ("paths", j)
        if path.default and j != last:
            found.append(
                (
                    (*at, "default"),
                    RULE_DEFAULT,
                    f"path {j + 1} ('{path.label}') is default: true but is not last; "
                    "the paths after it could never win. Fix: move it to the end",
                )
            )
        if path.default and path.segments:
            found.append(
                (
                    (*at, "segments"),
                    RULE_DEFAULT,
                    f"the default path ('{path.label}') lists segments. Fix: remove them; it takes everyone left",
                )
            )
        if path.label in labels:
            found.append(((*at, "label"), RULE_LABELS, f"label '{path.label}' is used twice. Fix: rename one"))
        labels.add(path.label)
        if not path.default and not path.segments:
            found.append(
                (
                    at,
                    RULE_SEGMENTS,
                    f"path {j + 1} ('{path.label}') lists no segments. "
                    "Fix: list the segments that must all hold, or make it the default path",
                )
            )
        for k, name in enumerate(path.segments):
            segment = segments.by_name.get(name)
            if name == ALL_USERS or (segment is not None and segment.is_past):
                continue
            if segment is not None:
                message = (
                    f"'{name}' is a live segment; a score reads past segments as of a day. Fix: use a past segment"
                )
            else:
                close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
                hint = f"did you mean '{close[0]}'?" if close else "define it in segments.yaml"
                message = f"segment '{name}' is not defined. Fix: {hint}"
            found.append(((*at, "segments", k), RULE_SEGMENTS, message))
    return found
