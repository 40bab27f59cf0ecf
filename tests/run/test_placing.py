"""Lines that do not fit, voiced by the real espeak-ng synthesizer through the whole pipeline (analysis stages
stood in, tests/run/stand_ins.py), checked in the rendered track: placed whole when there is room or a bounded
speed-up, cut only on a word boundary when options forbid everything else, and bad timing options refused."""

import asyncio
import json

import pytest
import soundfile as sf

from actors.espeak import EspeakSynthesizer
from actors.models import get_profile
from graph.errors import BadInput
from graph.options import DubOptions, TimingOptions, from_dict
from graph.run.pipeline import DubJob, Stages, dub
from graph.run.stages import LocalStage
from graph.timeline.onsets import measure_lines
from graph.timeline.timing import trim
from tests.run.stand_ins import F0, SR, Said, Script, Turns, recording, speech

LONG = "Before lunch we still need to check every single cost of the new office downtown."
SAID = ("Antes do almoço ainda precisamos verificar cada custo do novo escritório no centro da cidade.",)
OTHER = "Fine."
SLOT = (2.0, 3.8)  # a 1.8 s slot for a line that takes three times that


@pytest.fixture(scope="module")
def espeak():
    return EspeakSynthesizer(get_profile("offline").model("synthesizer"))


@pytest.fixture(scope="module")
def voice(espeak):
    """The voice the pipeline gives speaker A (prepared from A's part of the recording)."""
    return espeak.prepare(speech(SLOT[1] - SLOT[0], F0["A"]), SR)


def said_s(espeak, voice, text: str) -> float:
    """How long the voice takes to say ``text`` at its natural pace (trimmed, as the pipeline does)."""
    clip = espeak.synthesize(text, "pt-br", voice)
    return len(trim(clip.samples, clip.sr)) / clip.sr


@pytest.fixture(scope="module")
def natural_s(espeak, voice):
    return said_s(espeak, voice, SAID[0])


def run(tmp_path, espeak, lines, timing=TimingOptions(), text=LONG):
    """Dub ``lines``; the placed line whose source is ``text``, and where it is heard in the written track."""
    source = recording(tmp_path / "talk.wav", lines, 12.0)
    job = DubJob(str(source), str(tmp_path / "out"), DubOptions(targets=("pt-br",), timing=timing),
                 sources=("en",), targets=("pt-br",))
    stages = Stages(LocalStage(Script(lines)), LocalStage(Turns(lines)), LocalStage(Said({LONG: SAID})),
                    LocalStage(espeak, parallelism=2))
    asyncio.run(dub(job, stages))
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    placed = manifest["languages"]["pt-br"]["lines"]
    track, sr = sf.read(tmp_path / "out" / "pt-br.wav", dtype="float32")
    heard = measure_lines(track, sr, [(line["start_s"], line["end_s"]) for line in placed])
    i = next(i for i, line in enumerate(placed) if line["source_text"] == text)
    return placed[i], heard[i]


def test_three_times_too_long_with_silence_after_is_placed_whole(tmp_path, espeak, natural_s):
    assert 2.5 < natural_s / (SLOT[1] - SLOT[0]) < 3.5  # the line really is about three times its slot
    line, heard = run(tmp_path, espeak, [("A", *SLOT, LONG), ("B", 8.0, 9.0, OTHER)])
    assert abs(heard.onset_s - SLOT[0]) <= 0.04  # heard when it was said
    assert heard.end_s == pytest.approx(SLOT[0] + natural_s / 1.3, rel=0.06)  # all of it, at the 1.3x bound
    assert heard.end_s < 8.0 and line["text"] == SAID[0] and line["lost_s"] == 0
    assert line["remedy"] == "silence_after" and "truncated" not in line["flags"]


def test_the_same_line_with_no_room_at_all_is_placed_whole_at_the_bounded_rate(tmp_path, espeak, natural_s):
    # no silence may be used (the 0.1 s after it only keeps its end audible apart from the next line)
    no_room = TimingOptions(max_rate=3.5, borrow_silence=False, max_preroll_s=0.0, max_shift_s=0.0)
    line, heard = run(tmp_path, espeak, [("B", 1.0, 2.0, OTHER), ("A", *SLOT, LONG), ("B", 3.9, 4.9, OTHER)],
                            no_room)
    assert abs(heard.onset_s - SLOT[0]) <= 0.04 and heard.end_s <= SLOT[1] + 0.02
    assert heard.end_s - heard.onset_s == pytest.approx(SLOT[1] - SLOT[0], abs=0.05)
    assert line["text"] == SAID[0] and line["lost_s"] == 0 and line["remedy"] == "max_rate"
    assert line["rate"] == pytest.approx(natural_s / (SLOT[1] - SLOT[0]), rel=0.06) and line["rate"] <= 3.5
    assert "rushed" in line["flags"]


def test_a_forced_cut_ends_on_a_word_boundary_and_records_what_was_lost(tmp_path, espeak, voice, natural_s):
    nothing = TimingOptions(max_stretch=1.0, max_rate=1.0, borrow_silence=False, max_preroll_s=0.0, max_shift_s=0.0)
    line, heard = run(tmp_path, espeak, [("A", *SLOT, LONG), ("B", 8.0, 9.0, OTHER)], nothing)
    words = SAID[0].split()
    kept = line["text"].split()
    assert 0 < len(kept) < len(words) and kept == words[: len(kept)]  # whole words, the first ones
    assert line["remedy"] == "cut" and "truncated" in line["flags"]
    assert line["lost_s"] == pytest.approx(natural_s - (heard.end_s - heard.onset_s), abs=0.25)
    assert abs(heard.onset_s - SLOT[0]) <= 0.04 and heard.end_s <= SLOT[1] + 0.02
    # what is heard is the kept words said whole, at their natural pace, ending as speech ends
    assert heard.end_s - heard.onset_s == pytest.approx(said_s(espeak, voice, line["text"]), abs=0.03)


def test_min_stretch_slows_a_short_line_down_when_asked(tmp_path, espeak, voice):
    line, heard = run(tmp_path, espeak, [("A", *SLOT, OTHER)], TimingOptions(min_stretch=0.8), text=OTHER)
    assert line["remedy"] == "slower" and line["rate"] == pytest.approx(0.8)
    assert heard.end_s - heard.onset_s == pytest.approx(said_s(espeak, voice, OTHER) / 0.8, abs=0.04)


@pytest.mark.parametrize("fields, message", [
    ({"max_stretch": 0.9}, "max_stretch must be from 1 to 4"),
    ({"max_preroll_s": -0.1}, "max_preroll_s must be from 0 to 1"),
    ({"max_rate": 9}, "max_rate must be from 1 to 4"),
    ({"min_stretch": 1.2}, "min_stretch must be from 0.5 to 1"),
    ({"max_shift_s": "a lot"}, "max_shift_s must be a number"),
    ({"max_stretch": 1.8, "max_rate": 1.5}, r"max_stretch \(1.8\) must not exceed max_rate"),
])
def test_bad_timing_options_are_refused_with_the_allowed_range(fields, message):
    with pytest.raises(BadInput, match=message):
        from_dict(DubOptions, {"timing": fields})
