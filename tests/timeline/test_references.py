import numpy as np

from graph.timeline.references import content_key, pick_reference, quality, solo_spans
from graph.types import Clip, SpeakerTurn, Utterance

SR = 16000


def speechlike(seconds, f0, seed, level=0.3):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    envelope = np.clip(np.sin(2 * np.pi * 2 * t), 0, 1)  # syllables and pauses
    return (level * envelope * np.sin(2 * np.pi * f0 * t) + 0.001 * rng.standard_normal(len(t))).astype(np.float32)


def build():
    a, b = speechlike(6, 120, 0), speechlike(6, 220, 1)
    samples = np.concatenate([a, np.zeros(SR, np.float32), b, np.zeros(SR, np.float32), a[: 4 * SR]])
    us = [Utterance("u0", "A", 0, 6, "x"), Utterance("u1", "B", 7, 13, "y"), Utterance("u2", "A", 14, 18, "z")]
    turns = [SpeakerTurn("A", 0, 6), SpeakerTurn("B", 7, 13), SpeakerTurn("A", 14, 18)]
    return Clip(samples, SR), us, turns


def test_reference_is_that_speakers_own_audio_up_to_max():
    clip, us, turns = build()
    ref = pick_reference(clip, "A", us, turns, min_s=6, max_s=8)
    assert ref.clip.duration_s == 8.0 and ref.flags == ()
    spectrum = np.abs(np.fft.rfft(ref.clip.samples))
    assert abs(np.argmax(spectrum) * SR / len(ref.clip.samples) - 120) < 3
    ref_b = pick_reference(clip, "B", us, turns, min_s=6, max_s=10)
    assert ref_b.key != ref.key and ref_b.clip.duration_s == 6.0


def test_overlapped_speech_is_excluded_and_short_reference_flagged():
    clip, us, turns = build()
    spans = solo_spans("A", us, turns + [SpeakerTurn("B", 2.0, 3.0)])
    assert spans == [(0, 2.0), (3.0, 6), (14, 18)]
    ref = pick_reference(clip, "B", us, turns, min_s=8, max_s=10)
    assert "short_reference" in ref.flags


def test_clipped_and_noise_only_stretches_are_rejected():
    clipped = np.clip(speechlike(2, 150, 2, level=3.0), -1, 1)
    assert "clipped" in quality(clipped, SR)[1]
    noise = (0.2 * np.random.default_rng(3).standard_normal(2 * SR)).astype(np.float32)
    assert "low_snr" in quality(noise, SR)[1]
    assert quality(speechlike(2, 150, 4), SR)[1] == ()


def test_content_key_depends_on_samples_and_rate():
    x = speechlike(1, 100, 5)
    assert content_key(x, SR) == content_key(x.copy(), SR)
    assert content_key(x, SR) != content_key(x, 24000)
    assert content_key(x, SR) != content_key(x * 0.5, SR)
