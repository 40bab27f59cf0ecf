"""The full profile on tiny randomly initialised real architectures, shared by the e2e modules that run it."""

import pytest

from actors.models import OFFLINE, Profile

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
