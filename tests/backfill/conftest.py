"""Backfill inputs: six short, distinct two-speaker espeak clips (a few seconds each), built once per session."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.fixtures.make_dialogue import build_dialogue

SCRIPTS: tuple[tuple[tuple[str, str], ...], ...] = (
    (("alex", "Good morning, is the train late again?"), ("beth", "Yes, about ten minutes.")),
    (("alex", "Did you bring the tickets for tonight?"), ("beth", "They are in my bag.")),
    (("beth", "The garden needs water today."), ("alex", "I will do it after lunch.")),
    (("alex", "Where did you park the car?"), ("beth", "Behind the old library.")),
    (("beth", "Can you call the doctor for me?"), ("alex", "Of course, right away.")),
    (("alex", "This soup is very good."), ("beth", "Thank you, it is my mother's recipe.")),
)
EXTRA: tuple[tuple[str, str], ...] = (("beth", "Please close the window, it is cold."), ("alex", "Sure, no problem."))


@pytest.fixture(scope="package")
def offline_stages(ray_local):
    """One set of offline-profile actor pools for the in-process backfills (models load once), stopped when the
    worker leaves this package."""
    from actors.models import get_profile
    from graph.run.pools import Replicas, start_stages, stop_stages

    stages = start_stages(get_profile("offline"), Replicas())
    yield stages
    stop_stages(stages)


@pytest.fixture(scope="session")
def clip_dir(tmp_path_factory) -> Path:
    """A directory of six WAVs (clip0.wav ... clip5.wav); tests copy it before changing anything in it."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("needs espeak-ng on PATH")
    root = tmp_path_factory.mktemp("backfill-inputs")
    for i, script in enumerate(SCRIPTS):
        build_dialogue(root / f"clip{i}.wav", script).json_path.unlink()
    return root


@pytest.fixture(scope="session")
def extra_clip(tmp_path_factory) -> Path:
    """A seventh good clip, different from the six."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("needs espeak-ng on PATH")
    dialogue = build_dialogue(tmp_path_factory.mktemp("backfill-extra") / "extra.wav", EXTRA)
    dialogue.json_path.unlink()
    return dialogue.path
