"""The Serve synthesizer deployment with ``batch_lines`` on (tiny ChatterBox): lines of concurrent callers decode
in one batch, each caller gets its own line's clip, and a cancelled request's line leaves the batch."""

from __future__ import annotations

import time

import numpy as np
import pytest

from actors.chatterbox.model import Synthesizer as ChatterBox
from actors.models import OFFLINE, Profile
from actors.serving import Synthesizer
from tests.actors.chatterbox.test_model import _voice

TEXTS = [("Olá, tudo bem?", "pt-br", 1), ("¿Dónde está la estación?", "es", 2), ("Bom dia, senhora.", "pt-br", 3)]
WAIT_S = 1.5  # long enough for every test request to reach the replica before its batch closes


@pytest.fixture(scope="module")
def synth_handle(serve_port, tiny_chatterbox_spec):
    from ray import serve

    profile = Profile(name="tiny", description="tests", sources=("en",), targets=("pt-br", "es"),
                      models=(*[OFFLINE.model(r) for r in ("asr", "diarizer", "translator")], tiny_chatterbox_spec))
    app = Synthesizer.options(num_replicas=1, max_ongoing_requests=8,
                              user_config={"batch_lines": 4, "line_wait_s": WAIT_S}).bind(profile)
    handle = serve.run(app, name="batched-synth", route_prefix=None)
    yield handle
    serve.delete("batched-synth")


@pytest.mark.slow
def test_concurrent_lines_share_a_batch_and_get_their_own_clips(synth_handle, tiny_chatterbox_spec):
    reference = _voice(180.0, 16000)
    conditionals = synth_handle.prepare.remote(reference, 16000).result()
    responses = [synth_handle.synthesize.remote(text, lang, conditionals, seed, 0.5, 0.5, 0.8)
                 for text, lang, seed in TEXTS]
    clips = [r.result(timeout_s=120) for r in responses]
    assert synth_handle.stats.remote().result()["batches"][-1] == len(TEXTS)
    alone = ChatterBox(tiny_chatterbox_spec)
    for clip, (text, lang, seed) in zip(clips, TEXTS):
        want = alone.synthesize(text, lang, conditionals, seed, 0.5, 0.5, 0.8)
        assert clip.samples.shape == want.samples.shape and clip.samples.size > 0
        assert np.allclose(clip.samples, want.samples, rtol=0, atol=1e-4), text


@pytest.mark.slow
def test_a_cancelled_request_leaves_its_batch(synth_handle):
    conditionals = synth_handle.prepare.remote(_voice(120.0, 16000), 16000).result()
    responses = [synth_handle.synthesize.remote(text, lang, conditionals, seed, 0.5, 0.5, 0.8)
                 for text, lang, seed in TEXTS]
    time.sleep(WAIT_S / 3)  # all three wait in the replica's batch queue
    responses[1].cancel()
    kept = [responses[0].result(timeout_s=120), responses[2].result(timeout_s=120)]
    assert all(clip.samples.size > 0 for clip in kept)
    assert synth_handle.stats.remote().result()["batches"][-1] == 2
