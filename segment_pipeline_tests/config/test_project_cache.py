"""The config folder is validated once per content of its files, errors included."""

from __future__ import annotations

import pytest

from segment_pipeline.config.errors import ConfigError
from segment_pipeline.config.project import load_project_config, validation_count
from segment_pipeline.settings import BUNDLED_CONFIG_DIR


def copy_bundled(folder):
    folder.mkdir()
    for name in ("segments.yaml", "goals.yaml", "scores.yaml"):
        (folder / name).write_text((BUNDLED_CONFIG_DIR / name).read_text())
    return folder


def test_the_same_content_is_validated_once_and_an_edit_is_seen(tmp_path):
    folder = copy_bundled(tmp_path / "config")
    before = validation_count()
    first = load_project_config(folder)
    assert load_project_config(folder) is first and validation_count() == before + 1

    segments = folder / "segments.yaml"
    text = segments.read_text()
    block = text.index("segmentName: charged 3 times")
    frame = text.index("segmentTimeframe: 90", block)
    segments.write_text(text[:frame] + "segmentTimeframe: 60" + text[frame + len("segmentTimeframe: 90") :])
    edited = load_project_config(folder)
    assert validation_count() == before + 2
    assert first.segments.by_name["charged 3 times"].timeframe_days == 90
    assert edited.segments.by_name["charged 3 times"].timeframe_days == 60
    # Another folder with the same files has its own entry.
    load_project_config(copy_bundled(tmp_path / "other"))
    assert load_project_config(folder) is edited and validation_count() == before + 3


def test_a_broken_config_fails_every_call_with_the_same_message_from_one_validation(tmp_path):
    folder = copy_bundled(tmp_path / "config")
    (folder / "scores.yaml").write_text("kind: scores\nscores: 3\n")
    before = validation_count()
    messages = []
    for _ in range(3):
        with pytest.raises(ConfigError) as caught:
            load_project_config(folder)
        messages.append(str(caught.value))
    assert len(set(messages)) == 1 and "scores.yaml" in messages[0]
    assert validation_count() == before + 1

    (folder / "scores.yaml").unlink()  # a missing file means no scores
    assert load_project_config(folder).scores.scores == [] and validation_count() == before + 2
