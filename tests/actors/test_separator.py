"""The separator actors on their real libraries: DeepFilterNet3 (offline, the weights its wheel ships) on a mix
with known parts, and Demucs' HTDemucs (full) at toy widths, built by the tests in the hub's layout."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from actors.models import OFFLINE, load_object
from actors.separator import Separator
from bench.separation import si_sdr, speech_leakage_db
from graph.audio import resample
from graph.errors import ModelNotFound
from graph.timeline.bed import separated_bed


@pytest.fixture(scope="module")
def enhancer():
    spec = OFFLINE.model("separator")
    return load_object(spec.actor)(spec, "offline")


@pytest.fixture(scope="module")
def estimate(enhancer, short_mix) -> np.ndarray:
    """DeepFilterNet3's speech estimate of the short mix's mid signal (the pipeline's speech mix for stereo)."""
    return enhancer.separate(short_mix.mixture.mean(0), short_mix.sr)


def test_deepfilternet_speech_estimate_is_aligned_and_leaves_a_clean_bed(short_mix, estimate):
    speech, bed = short_mix.speech[0], short_mix.bed.mean(0)
    assert estimate.shape == speech.shape and estimate.dtype == np.float32
    # time-aligned to the sample: the estimate correlates best with the true speech at lag 0
    lags = range(-48, 49)
    scores = [float(np.dot(np.roll(estimate, lag), speech)) for lag in lags]
    assert lags[int(np.argmax(scores))] == 0
    estimated_bed = separated_bed(short_mix.mixture.mean(0)[None], estimate, np.ones(1, np.float32))[0]
    assert si_sdr(estimated_bed, bed) > si_sdr(short_mix.mixture.mean(0), bed) + 10.0  # the mixture: about -12 dB
    assert speech_leakage_db(estimated_bed, speech, short_mix.mixture.mean(0), short_mix.sr) < -15.0


def test_deepfilternet_at_another_rate_and_calls_are_independent(enhancer, short_mix, estimate):
    at_16k = enhancer.separate(resample(short_mix.mixture.mean(0), short_mix.sr, 16_000), 16_000)
    assert len(at_16k) == round(len(estimate) * 16_000 / short_mix.sr)
    again = enhancer.separate(short_mix.mixture.mean(0), short_mix.sr)
    assert np.array_equal(again, estimate)  # a fresh runtime state per call: the same input, the same estimate
    assert enhancer.separate(np.zeros(0, np.float32), 16_000).size == 0


def test_tiny_htdemucs_loads_from_the_hub_layout_and_separates(tiny_demucs_spec, short_mix, tmp_path):
    separator = Separator(tiny_demucs_spec, "full", device="cpu")
    clip = short_mix.mixture.mean(0)[: 3 * short_mix.sr]  # 3 s: the toy model is slow, not small
    speech = separator.separate(clip, short_mix.sr)
    assert speech.shape == clip.shape and speech.dtype == np.float32 and np.all(np.isfinite(speech))
    assert np.std(speech) > 0 and np.array_equal(separator.separate(clip, short_mix.sr), speech)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelNotFound, match="htdemucs.yaml"):
        Separator(dataclasses.replace(tiny_demucs_spec, source=str(empty)), "full", "cpu")
