"""A transcript the user brings: SRT and WebVTT cues, speaker names, and clear errors."""

import pytest

from graph.errors import BadInput
from graph.timeline.cues import cue_turns, cue_utterances, named, parse_cues
from graph.types import SpeakerTurn

SRT = """1
00:00:01,000 --> 00:00:02,500
[Alice] Hello <i>there</i>.

2
00:00:03,000 --> 00:00:05,250
Bob's line
spans two rows.
"""
VTT = """WEBVTT

intro
00:00:00.500 --> 00:00:01.750
<v Carol>Hi, <b>everyone</b>.</v>

01:00.000 --> 01:02.000
<v.loud Dan>Over here!
"""


def test_srt_and_vtt_cues_with_and_without_speakers():
    srt = parse_cues(SRT)
    assert [(c.start_s, c.end_s, c.speaker, c.text) for c in srt] == [
        (1.0, 2.5, "Alice", "Hello there."), (3.0, 5.25, None, "Bob's line spans two rows.")]
    assert not named(srt)
    vtt = parse_cues("\ufeff" + VTT.replace("\n", "\r\n"))
    assert [(c.start_s, c.end_s, c.speaker, c.text) for c in vtt] == [
        (0.5, 1.75, "Carol", "Hi, everyone."), (60.0, 62.0, "Dan", "Over here!")]
    assert named(vtt) and cue_turns(vtt) == [SpeakerTurn("Carol", 0.5, 1.75), SpeakerTurn("Dan", 60.0, 62.0)]


def test_dubgraphs_own_subtitles_read_back_with_their_speakers():
    from graph.timeline.subtitles import to_srt, to_vtt
    from graph.types import PlacedLine

    lines = [PlacedLine("u0000", "SPEAKER_01", "pt-br", 1.0, 2.0, "Hi.", "Oi.", ("Oi.",), 0, 1.0, 1.8, 1.0)]
    for text in (to_srt(lines), to_vtt(lines)):
        (cue,) = parse_cues(text)
        assert (cue.speaker, cue.text, cue.start_s, cue.end_s) == ("SPEAKER_01", "Oi.", 1.0, 1.8)


def test_unnamed_cues_take_the_overlapping_or_nearest_turn():
    cues = parse_cues(SRT)
    turns = [SpeakerTurn("S1", 0.8, 2.4), SpeakerTurn("S2", 2.6, 6.0)]
    assert [u.speaker for u in cue_utterances(cues, turns)] == ["Alice", "S2"]
    far = [SpeakerTurn("S3", 20.0, 30.0)]
    assert [u.speaker for u in cue_utterances(cues, far)] == ["Alice", "S3"]
    assert [u.id for u in cue_utterances(cues)] == ["u0000", "u0001"]


@pytest.mark.parametrize("text, message", [
    ("", "no cues with text"),
    ("1\n00:00:01,000 --> 00:00:02,000\n\n", "no cues with text"),
    ("1\n00:00:03,000 --> 00:00:02,000\nbackwards\n", r"line 2: the cue ends \(2.000 s\) before it starts"),
    ("1\n00:00:01 --> 00:00:02\nno millis\n", "line 2: cannot read the times"),
    ("just some text, not subtitles", "no cues with text"),
])
def test_malformed_transcripts_are_clear_errors(text, message):
    with pytest.raises(BadInput, match=message):
        parse_cues(text, "talk.srt")


def test_a_translation_lines_up_cue_for_cue_or_says_which_cue_does_not():
    from graph.timeline.cues import aligned_texts
    from graph.types import Utterance

    lines = [Utterance("u0000", "A", 1.0, 2.5, "Hello there."), Utterance("u0001", "B", 3.0, 4.0, "Hi.")]
    srt = "1\n00:00:01,000 --> 00:00:02,500\nOlá.\n\n2\n00:00:03,100 --> 00:00:04,000\n[B] Oi.\n"
    assert aligned_texts(parse_cues(srt), lines) == ["Olá.", "Oi."]
    with pytest.raises(BadInput, match="has 1 cues for 2 source lines"):
        aligned_texts(parse_cues(srt.split("\n\n")[0]), lines, "the pt-br translation")
    late = srt.replace("00:00:03,100 --> 00:00:04,000", "00:00:05,000 --> 00:00:06,000")
    with pytest.raises(BadInput, match=r"cue 2 \(5.000-6.000 s\) does not line up with source line u0001"):
        aligned_texts(parse_cues(late), lines)
