"""The full profile on tiny randomly initialised real architectures, shared by the e2e modules that run it."""

import pytest

from actors.models import OFFLINE, Profile
from tests.fixtures.audio import _require
from tests.fixtures.make_dialogue import TWO_SPEAKERS, Dialogue, build_dialogue

TARGETS = ("pt-br", "es", "fr")


@pytest.fixture(scope="session")
def tiny_profile(tiny_chatterbox_spec, tiny_marian_spec, tiny_pyannote_spec) -> Profile:
    return Profile(
        name="tiny",
        description="tiny random-weight instances of the full profile's architectures (tests only)",
        models=(OFFLINE.model("asr"), tiny_pyannote_spec, tiny_marian_spec, tiny_chatterbox_spec),
        sources=("en",),
        targets=TARGETS,
    )


@pytest.fixture(scope="session")
def short_dialogue(tmp_path_factory) -> Dialogue:
    """The dialogue's first two lines (~7 s: alex asks about the "report", beth answers). Random-weight pyannote
    splits turns at random, so every second of input is several lines for the tiny ChatterBox to voice in each
    language: the tiny runs keep their input short."""
    _require("espeak-ng")
    return build_dialogue(tmp_path_factory.mktemp("short_dialogue") / "short_dialogue.wav", TWO_SPEAKERS[:2])
