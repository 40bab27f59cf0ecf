"""Speakers to library voices: one voice per speaker, closest pairs first, nothing under the threshold."""

import numpy as np
import pytest

from graph.timeline.matching import match_speakers


def unit(*values):
    v = np.array(values, dtype=np.float32)
    return v / np.linalg.norm(v)


VOICES = {"alice": unit(1, 0, 0), "bob": unit(0, 1, 0), "carol": unit(0, 0, 1)}


def test_each_speaker_gets_its_closest_voice_above_the_threshold():
    speakers = {"S0": unit(0.1, 1, 0), "S1": unit(1, 0.2, 0), "S2": unit(0.3, 0.3, -1)}
    matches = match_speakers(speakers, VOICES, 0.8)
    assert {s: m.voice for s, m in matches.items()} == {"S0": "bob", "S1": "alice", "S2": None}
    assert matches["S2"].closest in ("alice", "bob") and matches["S2"].score < 0.8
    assert matches["S0"].score == pytest.approx(float(unit(0.1, 1, 0) @ VOICES["bob"]))


def test_a_voice_goes_to_the_speaker_most_like_it_only():
    speakers = {"S0": unit(1, 0.3, 0), "S1": unit(1, 0.1, 0)}
    matches = match_speakers(speakers, VOICES, 0.5)
    assert matches["S1"].voice == "alice" and matches["S0"].voice is None and matches["S0"].closest == "alice"


def test_no_voices_or_no_speakers():
    assert match_speakers({"S0": unit(1, 0, 0)}, {}, 0.5)["S0"].voice is None
    assert match_speakers({}, VOICES, 0.5) == {}
