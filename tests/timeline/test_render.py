import numpy as np
import pytest

from graph.audio import rms_db
from graph.timeline.render import Placement, render_track, speaker_levels
from graph.timeline.subtitles import to_srt, to_vtt
from graph.types import Clip, PlacedLine, Utterance

SR = 24000


def tone(seconds, level):
    t = np.arange(int(seconds * SR)) / SR
    return (level * np.sin(2 * np.pi * 200 * t)).astype(np.float32)


def test_track_has_input_length_lines_at_their_start_and_speaker_levels_matched():
    levels = {"A": rms_db(tone(1, 0.2)), "B": rms_db(tone(1, 0.05))}
    placements = [Placement("A", 1.0, tone(0.5, 0.5)), Placement("B", 2.5, tone(0.5, 0.5))]
    track = render_track(placements, 4.0, SR, levels)
    assert len(track) == 4 * SR
    nonzero = np.flatnonzero(np.abs(track) > 1e-4)
    assert nonzero[0] == pytest.approx(SR * 1.0, abs=2)
    assert rms_db(track[SR : int(1.5 * SR)]) == pytest.approx(levels["A"], abs=0.1)
    assert rms_db(track[int(2.5 * SR) : 3 * SR]) == pytest.approx(levels["B"], abs=0.1)
    assert np.all(track[: SR - 1] == 0)


def test_line_past_the_end_is_cut_and_peaks_limited():
    track = render_track([Placement("A", 3.8, tone(1.0, 0.9))], 4.0, SR, {"A": 0.0})
    assert len(track) == 4 * SR and np.max(np.abs(track)) <= 0.98 + 1e-6


def test_a_multichannel_bed_keeps_its_layout_and_voices_go_by_their_gains():
    bed = np.stack([tone(4, 0.1), tone(4, 0.1), np.zeros(4 * SR, np.float32)])  # L, R, C
    voice = np.random.default_rng(0).uniform(-0.2, 0.2, SR).astype(np.float32)
    track = render_track([Placement("A", 1.0, voice)], 4.0, SR, {"A": rms_db(voice)}, bed, np.array([0, 0, 1.0]))
    assert track.shape == (3, 4 * SR)
    assert np.allclose(track[:2], bed[:2]) and np.allclose(track[2, SR : 2 * SR], voice, atol=1e-6)
    mono = render_track([Placement("A", 1.0, voice)], 4.0, SR, {"A": rms_db(voice)}, bed[0])
    assert mono.shape == (4 * SR,) and np.allclose(mono[SR : 2 * SR], bed[0, SR : 2 * SR] + voice, atol=1e-6)


def test_speaker_levels_from_their_lines():
    clip = Clip(np.concatenate([tone(1, 0.1), tone(1, 0.4)]), SR)
    levels = speaker_levels(clip, [Utterance("a", "A", 0, 1, "x"), Utterance("b", "B", 1, 2, "y")])
    assert levels["B"] - levels["A"] == pytest.approx(20 * np.log10(4), abs=0.1)


def line(uid, start, end, text, speaker="SPEAKER_00"):
    return PlacedLine(uid, speaker, "pt-br", start, end, "src", text, (text,), 0, start, end, 1.0)


def test_srt_and_vtt_timestamps_and_speakers():
    lines = [line("u0001", 3661.5, 3662.25, "Olá"), line("u0000", 0.0, 1.0, "Oi", "SPEAKER_01"), line("u2", 5, 6, " ")]
    srt = to_srt(lines)
    assert srt.startswith("1\n00:00:00,000 --> 00:00:01,000\n[SPEAKER_01] Oi\n")
    assert "2\n01:01:01,500 --> 01:01:02,250\n[SPEAKER_00] Olá\n" in srt
    assert srt.count("-->") == 2
    vtt = to_vtt(lines)
    assert vtt.startswith("WEBVTT\n\nu0000\n00:00:00.000 --> 00:00:01.000\n<v SPEAKER_01>Oi\n")
