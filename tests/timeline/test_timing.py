import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from graph.errors import DubError
from graph.timeline.onsets import frame_db, speech_span
from graph.timeline.solver import Plan
from graph.timeline.timing import (check_stretch, choose_candidate, cut_at_pause, fit_take, source_pace, stretch, trim,
                                   word_prefix)
from graph.types import Utterance

SR = 16000


def burst(seconds, f0=220.0, amp=0.3):
    t = np.arange(int(seconds * SR)) / SR
    return (amp * np.sin(2 * np.pi * f0 * t)).astype(np.float32)


def test_candidates_by_predicted_length_at_the_voices_pace():
    # 10 characters per second: a 2 s slot holds 20 characters
    assert choose_candidate(["y" * 20, "y" * 10], 2.0, 10.0) == 0
    assert choose_candidate(["y" * 40, "y" * 19, "y" * 10], 2.0, 10.0) == 1
    assert choose_candidate(["y" * 60, "y" * 50], 2.0, 10.0) == 1  # none fits: the shortest
    assert choose_candidate(["", "ok"], 2.0, 10.0) == 1
    us = [Utterance("a", "A", 0.0, 2.0, "x" * 30), Utterance("b", "A", 5.0, 6.0, "x" * 15)]
    assert source_pace(us) == pytest.approx(15.0)


def test_word_prefix_keeps_whole_words_that_fit():
    text = "um dois tres quatro cinco"
    assert word_prefix(text, 10.0, 0.9) == "um dois"  # "um dois tres" is 12 characters = 1.2 s
    assert word_prefix(text, 10.0, 100.0) == text
    assert word_prefix(text, 10.0, 0.0) == "um"  # at least one word


def test_trim_keeps_the_speech_and_drops_the_silence_around_it():
    clip = np.concatenate([np.zeros(int(0.3 * SR), np.float32), burst(1.0), np.zeros(int(0.5 * SR), np.float32)])
    trimmed = trim(clip, SR)
    assert len(trimmed) / SR == pytest.approx(1.0, abs=0.02)
    assert speech_span(trimmed, SR)[0] < 0.011


def test_fit_take_stretches_the_rest_of_the_speed_up_and_keeps_the_pitch():
    take = burst(2.4)
    fitted, factor, lost = fit_take(take, SR, Plan(10.0, 12.0, rate=1.2))
    assert len(fitted) == 2 * SR and factor == pytest.approx(1.2) and lost == 0
    assert abs(np.argmax(np.abs(np.fft.rfft(fitted))) * SR / len(fitted) - 220) < 5  # pitch kept
    slowed, factor, _ = fit_take(burst(1.0), SR, Plan(0.0, 1.25, rate=0.8))
    assert len(slowed) == int(1.25 * SR) and factor == pytest.approx(0.8)


@pytest.fixture(scope="module")
def spoken_words():
    """espeak-ng saying "um, dois, quatro, oito, dezesseis": the clip and each word's (start, end) in it."""
    from tests.fixtures.make_dialogue import speak

    samples, spans = [], []
    for i, word in enumerate(("um", "dois", "quatro", "oito", "dezesseis")):
        if i:
            samples.append(np.zeros(int(0.08 * SR), np.float32))
        start = sum(len(x) for x in samples) / SR
        samples.append(speak(word, "beth", voice="pt-br"))
        spans.append((start, start + len(samples[-1]) / SR))
    return np.concatenate(samples), spans


def test_a_cut_falls_in_the_pause_between_words_never_in_a_word(spoken_words):
    samples, words = spoken_words
    for k in (2, 3, 4):  # the limit inside "quatro" (its stop closures are no pause), "oito", "dezesseis"
        limit = (words[k][0] + words[k][1]) / 2
        kept = cut_at_pause(samples, SR, limit)
        end = len(kept) / SR
        assert words[k - 1][1] - 0.01 <= end <= words[k][0] + 0.01, (k, end, words)
        assert abs(kept[-1]) < 1e-3
    duration = len(samples) / SR
    fitted, _, lost = fit_take(samples, SR, Plan(0.0, limit, rate=1.0, lost_s=duration - limit))
    assert len(fitted) == len(kept) and lost == pytest.approx(duration - end, abs=1e-3)


def test_a_stretched_line_keeps_its_words_in_order_at_the_new_pace(spoken_words):
    """The stretched clip's loudness (40 dB below its peak at most) follows the original's on a time axis scaled
    by the rate: correlation ~0.9 here, 0.77-0.80 with librosa's phase vocoder (it smears words), < 0 unstretched."""
    samples, words = spoken_words
    for rate in (0.8, 1.3):
        out = stretch(samples, SR, rate)
        assert len(out) == round(len(samples) / rate)
        before, after = (np.maximum(db, db.max() - 40) for db in (frame_db(samples, SR), frame_db(out, SR)))
        scaled = np.interp(np.arange(len(after)) * rate, np.arange(len(before)), before)
        assert np.corrcoef(scaled, after)[0, 1] > 0.85, rate
        start, end = speech_span(out, SR)
        assert start == pytest.approx(words[0][0] / rate, abs=0.03)
        assert end == pytest.approx(words[-1][1] / rate, abs=0.03)


def test_the_stretch_needs_no_audio_library_in_the_placing_process(tmp_path):
    """A new CLI run fits lines without importing librosa (its phase vocoder cost ~4 s of CPU per process)."""
    code = ("import sys, numpy as np; from graph.timeline.timing import stretch; "
            "print(len(stretch(np.ones(8000, np.float32), 16000, 1.25)), 'librosa' in sys.modules)")
    run = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[2], capture_output=True,
                         text=True, timeout=120, check=True)
    assert run.stdout.split() == ["6400", "False"]


def test_without_sox_a_stretch_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(DubError, match=r"sox is not installed.*apt-get install sox"):
        stretch(burst(1.0), SR, 1.2)
    with pytest.raises(DubError, match=r"sox is not installed"):
        check_stretch()
    assert stretch(burst(1.0), SR, 1.0).size == SR  # rate 1 needs no sox
