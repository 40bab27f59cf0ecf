"""bench/separation.py's scores on signals whose answer is known (nothing is timed)."""

import numpy as np
import pytest

from bench.separation import Score, bed_level_errors_db, si_sdr, speech_leakage_db, table

SR = 16000
RNG = np.random.default_rng(0)
SPEECH = RNG.standard_normal((1, 2 * SR)).astype(np.float32)
BED = 0.25 * RNG.standard_normal((1, 2 * SR)).astype(np.float32)


def test_si_sdr_is_scale_invariant_and_counts_what_is_left():
    noise = 0.1 * RNG.standard_normal(BED.shape)
    assert si_sdr(3 * (BED + noise), BED) == pytest.approx(20 * np.log10(0.25 / 0.1), abs=0.2)


def test_leakage_is_the_speech_left_in_the_bed_relative_to_the_mix():
    mix = SPEECH + BED
    expected = 10 * np.log10(0.01 * np.sum(SPEECH**2) / np.sum(mix.astype(np.float64) ** 2))
    assert speech_leakage_db(BED + 0.1 * SPEECH, SPEECH, mix, SR) == pytest.approx(expected, abs=0.3)
    assert speech_leakage_db(BED, SPEECH, mix, SR) < expected - 15  # a clean bed leaks (almost) nothing


def test_bed_level_under_lines_and_silence():
    spans = [(0, SR), (SR, 2 * SR)]
    assert bed_level_errors_db(BED, BED, spans) == [0.0, 0.0]
    assert bed_level_errors_db(0.5 * BED, BED, spans) == pytest.approx([-6.02, -6.02], abs=0.01)
    silenced = BED.copy()
    silenced[:, :SR] = 0
    assert bed_level_errors_db(silenced, BED, spans)[0] == float("-inf")
    rows = table([Score("x", "ducking", "-", -6.0, -50.0, [float("-inf"), -1.0])], times=False)
    assert "| x | ducking | - | -6.0 | -50.0 | silence / -1.0 | no |" in rows
