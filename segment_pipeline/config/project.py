"""The whole configuration folder, loaded and cross-checked at once."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from segment_pipeline.config.errors import ConfigError, ConfigProblem
from segment_pipeline.config.goals import GoalConfig, load_goals
from segment_pipeline.config.scores import ScoreConfig, load_scores
from segment_pipeline.config.segments import SegmentConfig, load_segments

SEGMENTS_FILE = "segments.yaml"
SCORES_FILE = "scores.yaml"
GOALS_FILE = "goals.yaml"


@dataclass(frozen=True)
class ProjectConfig:
    segments: SegmentConfig
    scores: ScoreConfig
    goals: GoalConfig


def load_project_config(config_dir: Path) -> ProjectConfig:
    """Every file of the folder, each optional; any problem stops the run before anything is written."""
    config_dir = Path(config_dir)
    if not config_dir.is_dir():
        raise ConfigError(
            [
                ConfigProblem(
                    file=str(config_dir),
                    item="SEGMENT_PIPELINE_CONFIG",
                    rule="the config folder exists",
                    message=f"not a folder; point SEGMENT_PIPELINE_CONFIG at a folder holding "
                    f"{SEGMENTS_FILE}, {GOALS_FILE} and/or {SCORES_FILE}",
                )
            ]
        )
    segments = load_segments(config_dir / SEGMENTS_FILE)
    # Scores and goals are checked against the segments, then reported together.
    problems = []
    loaded = {}
    for key, loader, name in (("scores", load_scores, SCORES_FILE), ("goals", load_goals, GOALS_FILE)):
        try:
            loaded[key] = loader(config_dir / name, segments)
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)
    return ProjectConfig(segments=segments, scores=loaded["scores"], goals=loaded["goals"])
