"""graph.timeline.bed: which signal the separator hears, where the voices go, and the two kinds of bed."""

import numpy as np
import pytest

from graph.audio import rms_db
from graph.timeline.bed import (
    ducked_background,
    line_spans,
    mix_weights,
    separated_bed,
    speech_mix,
    voice_gains,
)
from graph.types import Utterance

SR = 16000
RNG = np.random.default_rng(0)
SPEECH = (RNG.standard_normal(3 * SR) * np.repeat(RNG.uniform(0, 0.3, 30), SR // 10)).astype(np.float32)
BED = (0.05 * np.sin(2 * np.pi * 110 * np.arange(3 * SR) / SR)).astype(np.float32)
LINES = [Utterance("u", "A", 1.0, 2.0, "x")]


@pytest.mark.parametrize(
    ("layout", "channels", "expected"),
    [("mono", 1, [1]), ("stereo", 2, [0.5, 0.5]), ("5.1(side)", 6, [0, 0, 1, 0, 0, 0]), ("", 6, [0, 0, 1, 0, 0, 0]),
     ("quad", 4, [0.25] * 4), ("3.0(back)", 3, [1 / 3] * 3)],
)
def test_the_separator_hears_the_centre_channel_when_there_is_one(layout, channels, expected):
    assert np.allclose(mix_weights(layout, channels), expected)


def test_voices_go_where_the_speech_was_at_its_level():
    # 5.1 with the dialogue in the centre and a little of it in front left/right; a bed everywhere
    gains_true = np.array([0.3, 0.3, 1.0, 0.0, 0.0, 0.0], np.float32)
    samples = gains_true[:, None] * SPEECH[None, :] + BED[None, :]
    weights = mix_weights("5.1", 6)
    mix = speech_mix(samples, weights)
    assert np.allclose(mix, samples[2])
    spans = line_spans(LINES, SR, samples.shape[1])
    assert np.allclose(voice_gains(samples, SPEECH, weights, spans), gains_true, atol=0.02)
    # stereo panned a little left: gains relative to the mid signal, adding up to 2
    stereo = np.stack([1.2 * SPEECH, 0.8 * SPEECH]) + BED
    gains = voice_gains(stereo, speech_mix(stereo, mix_weights("stereo", 2)), mix_weights("stereo", 2), [])
    assert np.allclose(gains, [1.2, 0.8], atol=0.02)
    # no speech at all: the voices go where the separator listened
    assert np.allclose(voice_gains(samples, np.zeros_like(SPEECH), weights, spans), [0, 0, 1, 0, 0, 0])


def test_separated_bed_is_each_channel_minus_its_share_of_the_speech():
    gains = np.array([1.0, 0.5], np.float32)
    samples = gains[:, None] * SPEECH[None, :] + np.stack([BED, 2 * BED])
    bed = separated_bed(samples, SPEECH, gains)
    assert bed.shape == samples.shape and np.allclose(bed, np.stack([BED, 2 * BED]), atol=1e-6)


def test_ducking_silences_every_channel_under_lines_only():
    source = np.stack([BED, 0.5 * BED])
    bed = ducked_background(source, SR, LINES)
    assert bed.shape == source.shape
    assert rms_db(bed[:, int(1.2 * SR) : int(1.8 * SR)]) < -100
    assert rms_db(bed[1, : int(0.8 * SR)]) == pytest.approx(rms_db(source[1, : int(0.8 * SR)]), abs=0.1)
    mono = ducked_background(BED, SR, LINES)
    assert mono.shape == BED.shape and rms_db(mono[int(1.2 * SR) : int(1.8 * SR)]) < -100
