"""Onsets and ends found in audio by energy, where they can be told apart, and not where they cannot."""

import numpy as np
import pytest

from graph.timeline.onsets import measure_lines, measure_placed, speech_span
from graph.timeline.render import Placement

SR = 24000


def voiced(seconds, f0=180.0):
    """A speech-like burst: a tone with a 10 ms rise and fall and a syllable-rate envelope."""
    t = np.arange(int(seconds * SR)) / SR
    x = 0.3 * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t) ** 2) * np.sin(2 * np.pi * f0 * t)
    ramp = np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.01)
    return (x * ramp).astype(np.float32)


def place(track, start_s, samples):
    track[int(start_s * SR) : int(start_s * SR) + len(samples)] += samples


def test_onsets_and_ends_within_a_frame_of_where_the_speech_is():
    track = np.zeros(10 * SR, np.float32)
    track += (1e-4 * np.random.default_rng(0).standard_normal(len(track))).astype(np.float32)  # a faint floor
    truth = [(1.0, 2.2), (3.1, 4.0), (4.5, 6.0)]
    for start, end in truth:
        place(track, start, voiced(end - start))
    planned = [(1.02, 2.2), (3.08, 4.0), (4.5, 6.03)]  # plans a little off: measuring does not read them
    heard = measure_lines(track, SR, planned)
    for (start, end), h in zip(truth, heard):
        assert h.onset_s == pytest.approx(start, abs=0.01) and h.end_s == pytest.approx(end, abs=0.01)
    assert speech_span(voiced(1.0), SR) == pytest.approx((0.0, 1.0), abs=0.01)


def test_back_to_back_or_overlapping_lines_are_not_told_apart_in_a_mix_but_are_on_stems():
    track = np.zeros(6 * SR, np.float32)
    a, b, c = voiced(1.0, 150.0), voiced(1.0, 240.0), voiced(1.0, 300.0)
    place(track, 1.0, a)
    place(track, 2.0, b)  # right after a
    place(track, 2.5, c)  # over b
    heard = measure_lines(track, SR, [(1.0, 2.0), (2.0, 3.0), (2.5, 3.5)])
    assert heard[0].onset_s == pytest.approx(1.0, abs=0.01) and heard[0].end_s is None
    assert heard[1].onset_s is None and heard[2].onset_s is None
    stems = measure_placed([Placement("A", 1.0, a), Placement("B", 2.0, b), Placement("C", 2.5, c)], 6.0, SR)
    for h, start in zip(stems, (1.0, 2.0, 2.5)):
        assert h.onset_s == pytest.approx(start, abs=0.01) and h.end_s == pytest.approx(start + 1.0, abs=0.01)


def test_a_late_or_missing_line_is_measured_as_such():
    track = np.zeros(4 * SR, np.float32)
    place(track, 1.25, voiced(1.0))  # planned at 1.0: heard 250 ms late
    late, missing = measure_lines(track, SR, [(1.0, 2.0), (3.0, 3.8)])
    assert late.onset_s == pytest.approx(1.25, abs=0.01)
    assert missing.onset_s is None and missing.end_s is None
