"""Fixtures of the ChatterBox engine tests."""

from __future__ import annotations

import pytest

from tests.actors.chatterbox.test_model import _voice


@pytest.fixture(scope="module")
def voices(synth):
    """Two voices' conditionals (different pitch, brightness and reference rate)."""
    return [synth.prepare(_voice(110.0, 16000, brightness=0.4), 16000),
            synth.prepare(_voice(230.0, 22050, brightness=0.8), 22050)]
