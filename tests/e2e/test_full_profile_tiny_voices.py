"""The full profile on tiny real architectures, continued (a module of its own so the two halves run on two test
workers): batched decoding against line by line, and library voices with a glossary on the full profile's models."""

import json

import pytest
import soundfile as sf

from graph.options import DiarizeOptions, DubOptions
from graph.run.pools import Replicas, start_stages, stop_stages


@pytest.fixture(scope="module")
def analysis(tiny_profile, ray_local):
    """ASR, diarizer and translator actors for this module's runs (model actors are stateless: each test starts
    only the synthesizer it is about)."""
    stages = start_stages(tiny_profile, roles=("asr", "diarizer", "translator"))
    yield stages
    stop_stages(stages)


@pytest.mark.slow
def test_batched_synthesis_dubs_what_line_by_line_synthesis_dubs(tiny_profile, analysis, six_short_lines, tmp_path):
    """The same job through a synthesizer voicing lines one by one and one decoding them in batches: same lines,
    same placements, same audio (within batched rounding); the batched actor really ran batches. The lines come
    from a transcript with speaker names (six lines, six cues; ASR and diarization are the other tests' part)."""
    import asyncio
    from dataclasses import replace

    import numpy as np
    import ray

    from graph.run.checkpoint import Checkpoint
    from graph.run.pipeline import dub
    from graph.run.pools import make_job
    from tests.fixtures.make_dialogue import write_transcript

    options = DubOptions(targets=("pt-br",), profile="tiny")
    transcript = write_transcript(six_short_lines, tmp_path / "six_short.srt", named=True)
    runs = {"alone": Replicas(synthesizer=1, synth_threads=2), "batched": Replicas(synthesizer=1, synth_batch=16)}
    for name, replicas in runs.items():
        # the second run reuses the first's translations and voices, not its lines
        for line in (tmp_path / "checkpoints").glob("line-*"):
            line.unlink()
        voicing = start_stages(tiny_profile, replicas, roles=("synthesizer",))
        try:
            job = make_job(six_short_lines.path, tmp_path / name, options, tiny_profile, transcript=transcript)
            stages = replace(analysis, synthesizer=voicing.synthesizer)
            asyncio.run(dub(job, stages, checkpoint=Checkpoint(tmp_path / "checkpoints")))
            stats = ray.get(voicing.synthesizer.handles[0].stats.remote())
        finally:
            stop_stages(voicing)
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
def test_library_voices_and_glossary_on_the_full_profiles_models(tiny_profile, analysis, short_dialogue, tmp_path):
    """Matching by the pyannote pipeline's own embedding model, a library voice's ChatterBox conditionals kept in the
    library as data and read back by the next job's synthesizer, glossary terms through Marian: all on Ray actors."""
    import asyncio
    from dataclasses import replace

    import numpy as np

    from graph.media.library import VoiceLibrary
    from graph.media.voice_clip import read_clip
    from graph.options import GlossaryOptions, VoiceOptions
    from graph.run.pipeline import dub
    from graph.run.pools import make_job
    from tests.fixtures.make_dialogue import SR, speak

    clip = tmp_path / "enrol.wav"
    sf.write(clip, np.concatenate([speak("This voice was enrolled once for the whole series.", "beth"),
                                   speak("Every episode should sound the same.", "beth")]), SR)
    library = VoiceLibrary(tmp_path / "voices")
    library.add("narrator", read_clip(clip, clip.name), clip.name)
    options = DubOptions(targets=("pt-br",), profile="tiny", diarize=DiarizeOptions(num_speakers=2),
                         voices=VoiceOptions(match=True, match_threshold=-1.0),  # random weights: any score
                         glossary=GlossaryOptions(terms={"pt-br": {"report": "relato"}}))
    voicing = start_stages(tiny_profile, Replicas(synthesizer=1), roles=("synthesizer",))
    try:
        manifests = []
        for run in ("first", "second"):
            job = make_job(short_dialogue.path, tmp_path / run, options, tiny_profile, library=library.root)
            asyncio.run(dub(job, replace(analysis, synthesizer=voicing.synthesizer)))
            manifests.append(json.loads((tmp_path / run / "manifest.json").read_text()))
    finally:
        stop_stages(voicing)
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
