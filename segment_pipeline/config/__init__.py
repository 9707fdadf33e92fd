"""YAML configuration (contract sections 4-5): pydantic models and validation with precise errors."""

from segment_pipeline.config.errors import ConfigError, ConfigProblem
from segment_pipeline.config.scores import (
    ScoreConfig,
    ScoreDefinition,
    ScorePath,
    load_scores,
    load_scores_text,
)
from segment_pipeline.config.segments import (
    ALL_USERS,
    EventStep,
    SegmentConfig,
    SegmentDefinition,
    load_segments,
    load_segments_text,
)

__all__ = [
    "ALL_USERS",
    "ConfigError",
    "ConfigProblem",
    "EventStep",
    "ScoreConfig",
    "ScoreDefinition",
    "ScorePath",
    "SegmentConfig",
    "SegmentDefinition",
    "load_scores",
    "load_scores_text",
    "load_segments",
    "load_segments_text",
]
