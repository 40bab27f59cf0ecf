"""The full profile's code path end to end on tiny randomly initialised real architectures (ChatterBox, Marian,
pyannote) and faster-whisper: output audio is noise, but structure, counts, timing and speakers are real."""

import json

import pytest
import soundfile as sf

from actors.models import OFFLINE, Profile
from bench.timing import audit_dub
from graph.options import DiarizeOptions, DubOptions
from graph.run.pools import Replicas, dub_file

TARGETS = ("pt-br", "es", "fr")


@pytest.fixture(scope="session")
def tiny_profile(tiny_chatterbox_spec, tiny_marian_spec, tiny_pyannote_spec) -> Profile:
    return Profile(
        name="tiny",
        description="tiny random-weight instances of the full profile's architectures (tests only)",
        models=(OFFLINE.model("asr"), tiny_pyannote_spec, tiny_marian_spec, tiny_chatterbox_spec),
        sources=("en",),
        targets=TARGETS,
    )


@pytest.mark.slow
def test_three_languages_structure_timing_and_speakers(tiny_profile, dialogue, ray_local, tmp_path):
    options = DubOptions(targets=TARGETS, profile="tiny", diarize=DiarizeOptions(num_speakers=2))
    result = dub_file(dialogue.path, tmp_path / "out", options, tiny_profile, replicas=Replicas(synthesizer=2))
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
        assert info.samplerate == 24000 and abs(info.frames / 24000 - dialogue.duration_s) < 1e-3
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


@pytest.mark.slow
def test_batched_synthesis_dubs_what_line_by_line_synthesis_dubs(tiny_profile, dialogue, ray_local, tmp_path):
    """The same job through a synthesizer voicing lines one by one and one decoding them in batches: same lines,
    same placements, same audio (within batched rounding); the batched actor really ran batches."""
    import asyncio

    import numpy as np
    import ray

    from graph.run.checkpoint import Checkpoint
    from graph.run.pipeline import dub
    from graph.run.pools import make_job, start_stages, stop_stages

    options = DubOptions(targets=("pt-br",), profile="tiny", diarize=DiarizeOptions(num_speakers=2))
    runs = {"alone": Replicas(synthesizer=1, synth_threads=2), "batched": Replicas(synthesizer=1, synth_batch=16)}
    for name, replicas in runs.items():
        # the second run reuses the first's transcript, turns, translations and voices, not its lines
        for line in (tmp_path / "checkpoints").glob("line-*"):
            line.unlink()
        stages = start_stages(tiny_profile, replicas)
        try:
            job = make_job(dialogue.path, tmp_path / name, options, tiny_profile)
            asyncio.run(dub(job, stages, checkpoint=Checkpoint(tmp_path / "checkpoints")))
            stats = ray.get(stages.synthesizer.handles[0].stats.remote())
        finally:
            stop_stages(stages)
    manifests = {name: json.loads((tmp_path / name / "manifest.json").read_text()) for name in runs}
    keys = ("utterance_id", "speaker", "text", "start_s", "end_s", "stretch", "flags")
    lines = {name: [{k: line[k] for k in keys} for line in m["languages"]["pt-br"]["lines"]]
             for name, m in manifests.items()}
    assert len(lines["alone"]) >= 6 and lines["batched"] == lines["alone"]
    assert max(stats["batches"]) > 1 and sum(stats["batches"]) >= len(lines["batched"])
    alone, batched = (sf.read(tmp_path / name / "pt-br.wav", dtype="float32")[0] for name in runs)
    assert alone.shape == batched.shape and np.abs(alone).max() > 0.01
    assert np.allclose(batched, alone, rtol=0, atol=2e-3)


@pytest.mark.slow
def test_library_voices_and_glossary_on_the_full_profiles_models(tiny_profile, dialogue, ray_local, tmp_path):
    """Matching by the pyannote pipeline's own embedding model, a library voice's ChatterBox conditionals kept in the
    library as data and read back by the next job's synthesizer, glossary terms through Marian: all on Ray actors."""
    import asyncio

    import numpy as np

    from graph.media.library import VoiceLibrary
    from graph.media.voice_clip import read_clip
    from graph.options import GlossaryOptions, VoiceOptions
    from graph.run.pipeline import dub
    from graph.run.pools import make_job, start_stages, stop_stages
    from tests.fixtures.make_dialogue import SR, speak

    clip = tmp_path / "enrol.wav"
    sf.write(clip, np.concatenate([speak("This voice was enrolled once for the whole series.", "beth"),
                                   speak("Every episode should sound the same.", "beth")]), SR)
    library = VoiceLibrary(tmp_path / "voices")
    library.add("narrator", read_clip(clip, clip.name), clip.name)
    options = DubOptions(targets=("pt-br",), profile="tiny", diarize=DiarizeOptions(num_speakers=2),
                         voices=VoiceOptions(match=True, match_threshold=-1.0),  # random weights: any score
                         glossary=GlossaryOptions(terms={"pt-br": {"report": "relato"}}))
    stages = start_stages(tiny_profile, Replicas(synthesizer=1))
    try:
        manifests = []
        for run in ("first", "second"):
            job = make_job(dialogue.path, tmp_path / run, options, tiny_profile, library=library.root)
            asyncio.run(dub(job, stages))
            manifests.append(json.loads((tmp_path / run / "manifest.json").read_text()))
    finally:
        stop_stages(stages)
    matched = [[v for v in m["voices"].values() if v["source"] == "matched"] for m in manifests]
    assert [len(m) for m in matched] == [1, 1] and matched[0][0]["voice"] == matched[1][0]["voice"] == "narrator"
    assert (matched[0][0]["computed"], matched[1][0]["computed"]) == (True, False)  # prepared once, ever
    assert -1.0 <= matched[0][0]["match"]["score"] <= 1.0
    voice = library.get("narrator")
    assert voice.prepared == ("tiny random ChatterBox",) and voice.embedded == (tiny_profile.model("diarizer").name,)
    assert library.conditionals(voice, "tiny random ChatterBox").kind == "chatterbox"
    for manifest in manifests:
        lines = manifest["languages"]["pt-br"]["lines"]
        assert not any("synthesis_failed" in line["flags"] for line in lines)
        report = [line for line in lines if "report" in line["source_text"]]
        assert report and all("relato" in line["text"] and "glossary_split" in line["flags"] for line in report)
