"""The whole configuration folder, loaded and cross-checked at once.

A run's steps each ask for the config; it is validated once per content of the
folder's files and the result (or the error) is reused while the files stay the same.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path

from segment_pipeline.config.errors import ConfigError, ConfigProblem
from segment_pipeline.config.goals import DEFAULT_MAX_ACTIVE_GOALS, GoalConfig, load_goals_text
from segment_pipeline.config.scores import ScoreConfig, load_scores_text
from segment_pipeline.config.segments import SegmentConfig, load_segments_text

SEGMENTS_FILE = "segments.yaml"
SCORES_FILE = "scores.yaml"
GOALS_FILE = "goals.yaml"


@dataclass(frozen=True)
class ProjectConfig:
    segments: SegmentConfig
    scores: ScoreConfig
    goals: GoalConfig


def load_project_config(config_dir: Path) -> ProjectConfig:
    """Every file of the folder, each optional; any problem stops the run before anything is written.

    Validated again only when a file's content changed since the last call for the folder.
    """
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
    texts = {name: _read(config_dir / name) for name in (SEGMENTS_FILE, SCORES_FILE, GOALS_FILE)}
    folder = str(config_dir.resolve())
    content = hashlib.sha256(repr(sorted(texts.items())).encode()).hexdigest()
    with _lock:
        seen, cached = _validated.get(folder, (None, None))
        if seen != content or cached is None:
            try:
                cached = _validate(config_dir, texts)
            except ConfigError as exc:
                cached = exc
            _validated[folder] = (content, cached)  # only the newest content of a folder is kept
    if isinstance(cached, ConfigError):
        raise ConfigError(cached.problems)
    return cached


def validation_count() -> int:
    """How many times a config folder's content was validated in this process (for tests)."""
    return _validations


_lock = threading.Lock()
_validated: dict[str, tuple[str, ProjectConfig | ConfigError]] = {}  # folder -> (content hash, result)
_validations = 0


def _read(path: Path) -> str | None:
    return path.read_text(encoding="utf-8") if path.exists() else None


def _validate(config_dir: Path, texts: dict[str, str | None]) -> ProjectConfig:
    global _validations
    _validations += 1
    source = {name: str(config_dir / name) for name in texts}
    segment_text = texts[SEGMENTS_FILE]
    segments = SegmentConfig([]) if segment_text is None else load_segments_text(segment_text, source[SEGMENTS_FILE])
    # Scores and goals are checked against the segments, then reported together.
    problems = []
    loaded = {}
    checks = (
        ("scores", SCORES_FILE, load_scores_text, ScoreConfig([])),
        ("goals", GOALS_FILE, load_goals_text, GoalConfig(DEFAULT_MAX_ACTIVE_GOALS, [])),
    )
    for key, name, loader, missing in checks:
        text = texts[name]
        try:
            loaded[key] = missing if text is None else loader(text, segments, source[name])
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)
    return ProjectConfig(segments=segments, scores=loaded["scores"], goals=loaded["goals"])
