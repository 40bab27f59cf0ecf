import numpy as np
import pytest

from graph.options import TimingOptions
from graph.timeline.timing import choose_candidate, cut, fit_clip, plan_fit, window_ends
from graph.types import Utterance

OPTS = TimingOptions()
U = Utterance("u0001", "A", 10.0, 12.0, "a line of twenty chars")


def test_fits_as_is_when_shorter_than_slot():
    fit = plan_fit(1.5, U, 14.0, OPTS)
    assert (fit.rate, fit.start_s, fit.end_s, fit.flags) == (1.0, 10.0, 11.5, ())


def test_stretch_within_bounds_ends_at_slot_end():
    fit = plan_fit(2.4, U, 14.0, OPTS)
    assert fit.rate == pytest.approx(1.2)
    assert fit.end_s == pytest.approx(12.0)
    assert fit.flags == ("stretched",)


def test_borrows_following_silence_before_cutting():
    fit = plan_fit(3.0, U, 14.0, OPTS)
    assert fit.rate == pytest.approx(1.0)
    assert fit.end_s == pytest.approx(13.0)
    assert fit.flags == ("borrowed_silence",)


def test_cut_only_when_nothing_else_fits_and_never_past_next_line():
    fit = plan_fit(6.0, U, 13.0, OPTS)
    assert fit.rate == pytest.approx(1.25)
    assert fit.end_s == pytest.approx(13.0)
    assert "truncated" in fit.flags
    no_borrow = plan_fit(6.0, U, 13.0, TimingOptions(borrow_silence=False))
    assert no_borrow.end_s == pytest.approx(12.0)


def test_start_never_moves_and_empty_clip_is_flagged():
    assert plan_fit(0.0, U, 14.0, OPTS).flags == ("empty",)
    for seconds in (0.5, 2.2, 3.3, 9.0):
        assert plan_fit(seconds, U, 14.0, OPTS).start_s == U.start_s


def test_choose_candidate_prefers_best_ranked_that_fits():
    source = "x" * 20
    assert choose_candidate(["y" * 24, "y" * 10], source, 2.0, OPTS) == 0
    assert choose_candidate(["y" * 40, "y" * 22, "y" * 10], source, 2.0, OPTS) == 1
    assert choose_candidate(["y" * 60, "y" * 50], source, 2.0, OPTS) == 1
    assert choose_candidate(["", "ok"], source, 2.0, OPTS) == 1


def test_window_ends_stop_at_next_start_of_any_speaker():
    us = [Utterance("a", "A", 0.0, 1.0, "x"), Utterance("b", "B", 0.5, 2.0, "y"), Utterance("c", "A", 3.0, 4.0, "z")]
    assert window_ends(us, 5.0) == {"a": 0.5, "b": 3.0, "c": 5.0}


def test_fit_clip_applies_pitch_preserving_stretch_and_cut():
    sr = 16000
    t = np.arange(int(2.4 * sr)) / sr
    tone = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    fitted, fit = fit_clip(tone, sr, U, 14.0, OPTS)
    assert abs(len(fitted) / sr - 2.0) < 0.02
    spectrum = np.abs(np.fft.rfft(fitted))
    assert abs(np.argmax(spectrum) * sr / len(fitted) - 220) < 5  # pitch kept
    cut_samples = cut(tone, sr, 1.0)
    assert len(cut_samples) == sr and abs(cut_samples[-1]) < 1e-6
