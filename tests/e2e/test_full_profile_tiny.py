"""The full profile's code path end to end on tiny randomly initialised real architectures (ChatterBox, Marian,
pyannote) and faster-whisper: output audio is noise, but structure, counts, timing and speakers are real."""

import json

import pytest
import soundfile as sf

from actors.models import OFFLINE, Profile
from bench.timing import audit_dub
from graph.options import DiarizeOptions, DubOptions
from graph.run.pools import Replicas, dub_file
from tests.e2e.conftest import TARGETS


@pytest.mark.slow
def test_three_languages_structure_timing_and_speakers(tiny_profile, short_dialogue, ray_local, tmp_path):
    options = DubOptions(targets=TARGETS, profile="tiny", diarize=DiarizeOptions(num_speakers=2))
    result = dub_file(short_dialogue.path, tmp_path / "out", options, tiny_profile, replicas=Replicas(synthesizer=2))
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["models"]["synthesizer"] == "tiny random ChatterBox"
    utterances = {u["id"]: u for u in manifest["utterances"]}
    assert utterances and set(manifest["languages"]) == set(TARGETS)
    for lang in TARGETS:
        lines = manifest["languages"][lang]["lines"]
        assert sorted(line["utterance_id"] for line in lines) == sorted(utterances)
        for line in lines:
            assert line["speaker"] == utterances[line["utterance_id"]]["speaker"]
            assert "synthesis_failed" not in line["flags"] and line["rate"] <= 2.0 + 1e-3
        info = sf.info(tmp_path / "out" / f"{lang}.wav")
        assert info.samplerate == 24000 and abs(info.frames / 24000 - short_dialogue.duration_s) < 1e-3
        timing = audit_dub(tmp_path / "out", lang)  # random weights speak noise, but it is heard where planned
        assert timing.onset_ms and timing.p95_onset_ms <= 40 and timing.max_move_ms <= 340
    assert set(result.speakers) == {u["speaker"] for u in utterances.values()} == set(manifest["voices"])
    # conditionals computed once per speaker although three languages were voiced
    assert [v["computed"] for v in manifest["voices"].values()] == [True] * len(result.speakers)
    assert result.stage_s["voices"] > 0 and all(f"synthesize:{lang}" in result.stage_s for lang in TARGETS)


@pytest.mark.slow
def test_forced_lengths_longer_than_their_slots_fit_without_losing_a_word(tiny_chatterbox_spec, fast_dialogue,
                                                                          ray_local, tmp_path):
    """The fast talkers' lines in the offline translator's pt-br, voiced by the tiny ChatterBox at the length real
    speech takes (bench/forced.py: 15 characters per second), longer than most slots: no line is cut, and lines
    are heard where they were said."""
    from dataclasses import replace

    forced = replace(tiny_chatterbox_spec, actor="bench.forced:ForcedSynthesizer")
    profile = Profile("tiny-forced", "offline analysis and translation, tiny ChatterBox at forced lengths",
                      tuple(OFFLINE.model(role) for role in ("asr", "diarizer", "translator")) + (forced,),
                      sources=("en",), targets=("pt-br",))
    options = DubOptions(targets=("pt-br",), profile=profile.name, diarize=DiarizeOptions(num_speakers=3))
    dub_file(fast_dialogue.path, tmp_path / "out", options, profile, replicas=Replicas(synthesizer=2))
    lines = json.loads((tmp_path / "out" / "manifest.json").read_text())["languages"]["pt-br"]["lines"]
    longer = [line for line in lines if line["natural_s"] > line["source_end_s"] - line["source_start_s"]]
    assert len(longer) >= len(lines) / 2, lines  # the case is real: most lines need speed or room
    timing = audit_dub(tmp_path / "out", "pt-br")
    assert (timing.cut, timing.lost_s) == (0, 0.0)
    assert all(line["text"] == line["candidates"][line["chosen"]] for line in lines)
    assert timing.onset_ms and timing.p95_onset_ms <= 40 and timing.max_move_ms <= 340
    assert max(line["rate"] for line in lines) <= 2.0 + 1e-3
