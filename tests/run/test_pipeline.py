"""Orchestration of graph.run.pipeline with in-process stage objects: fan-out, once-per-speaker conditionals,
retries, flags, resume. (The model actors themselves are tested on real libraries in tests/actors.)"""

import asyncio
import json
import logging
import threading

import numpy as np
import pytest
import soundfile as sf

from graph.errors import BadAudio, DubError, UnsupportedLanguage
from graph.options import DubOptions
from graph.run.checkpoint import Checkpoint
from graph.run.pipeline import DubJob, Stages, dub
from graph.run.stages import LocalStage
from graph.timeline.onsets import measure_lines
from graph.types import Clip
from tests.run.stand_ins import F0, Script, Turns
from tests.run.stand_ins import recording as write_recording

OUT_SR = 24000
LINES = [("A", 0.5, 2.5, "Hello there my friend."), ("B", 3.0, 5.0, "How are you today?"),
         ("A", 5.5, 7.5, "Very well thank you."), ("B", 8.0, 9.5, "Good to hear.")]


@pytest.fixture
def recording(tmp_path):
    return write_recording(tmp_path / "talk.wav", LINES, 10.0)


class Tagger:
    def translate(self, texts, source, target, options):
        return [(f"[{target}] {t} long long long long", f"[{target}] {t}") for t in texts]


class ToneVoice:
    """Stand-in synthesizer whose 'voice' is the reference's dominant pitch; counts every call."""

    def __init__(self, fail_texts=(), fail_times=1):
        self.prepared, self.calls = 0, 0
        self.fail = {t: fail_times for t in fail_texts}
        self.lock = threading.Lock()

    def prepare(self, reference, sr):
        with self.lock:
            self.prepared += 1
        spectrum = np.abs(np.fft.rfft(reference))
        return {"f0": float(np.argmax(spectrum) * sr / len(reference))}

    def synthesize(self, text, language, conds, seed, exaggeration, cfg_weight, temperature, pace):
        with self.lock:
            self.calls += 1
            for key in self.fail:
                if key in text and self.fail[key] > 0:
                    self.fail[key] -= 1
                    raise RuntimeError("replica went away")
        t = np.arange(int(0.05 * len(text) / pace * OUT_SR)) / OUT_SR
        return Clip((0.2 * np.sin(2 * np.pi * conds["f0"] * t)).astype(np.float32), OUT_SR)


def make_job(recording, tmp_path, targets=("pt-br",), **options):
    return DubJob(str(recording), str(tmp_path / "out"), DubOptions(targets=targets, **options),
                  sources=("en",), targets=("pt-br", "es", "fr"), models={"synthesizer": "tone"})


def stages(voice, translator=None):
    return Stages(LocalStage(Script(LINES)), LocalStage(Turns(LINES)), LocalStage(translator or Tagger()),
                  LocalStage(voice, parallelism=4))


def dominant_hz(samples, sr):
    return np.argmax(np.abs(np.fft.rfft(samples))) * sr / len(samples)


def test_three_languages_lines_in_place_conditionals_once_per_speaker(recording, tmp_path):
    voice = ToneVoice()
    events = []
    result = asyncio.run(dub(make_job(recording, tmp_path, ("pt-br", "es", "fr")), stages(voice), events.append))
    assert voice.prepared == 2  # two speakers, three languages: conditionals once per speaker
    assert voice.calls == 3 * len(LINES)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert set(manifest["languages"]) == {"pt-br", "es", "fr"} and manifest["speakers"] == ["A", "B"]
    for lang in ("pt-br", "es", "fr"):
        track, sr = sf.read(tmp_path / "out" / f"{lang}.wav", dtype="float32")
        assert sr == OUT_SR and len(track) == 10 * OUT_SR  # exactly the input's duration
        lines = manifest["languages"][lang]["lines"]
        assert len(lines) == len(LINES)
        heard = measure_lines(track, sr, [(line["start_s"], line["end_s"]) for line in lines])
        for line, h, (speaker, start, end, text) in zip(lines, heard, LINES):
            assert line["speaker"] == speaker and line["source_text"] == text
            assert abs(h.onset_s - start) <= 0.02 and line["text"].startswith(f"[{lang}]")  # heard where it was said
            placed = track[int(h.onset_s * sr) : int(h.end_s * sr)]
            assert abs(dominant_hz(placed, sr) - F0[speaker]) < 15  # each line carries its own speaker's voice
        for suffix in ("flac", "srt", "vtt"):
            assert (tmp_path / "out" / f"{lang}.{suffix}").stat().st_size > 0
    assert {e.stage for e in events} >= {"asr", "diarize", "voices", "synthesize:pt-br", "render:fr"}
    assert [e.completed for e in events if e.stage == "synthesize:es"][-1] == len(LINES)
    assert result.speakers == ("A", "B")


class TimedTagger(Tagger):
    """Translation that says when it began."""

    def __init__(self):
        self.began = threading.Event()

    def translate(self, texts, source, target, options):
        self.began.set()
        return super().translate(texts, source, target, options)


class WaitingVoice(ToneVoice):
    """Conditionals that are only made once translation has begun (``waited``: whether it had, within 10 s)."""

    def __init__(self, translation_began: threading.Event):
        super().__init__()
        self.translation_began, self.waited = translation_began, []

    def prepare(self, reference, sr):
        self.waited.append(self.translation_began.wait(timeout=10))
        return super().prepare(reference, sr)


def test_translation_runs_while_the_voices_are_made(recording, tmp_path):
    tagger = TimedTagger()
    voice = WaitingVoice(tagger.began)
    asyncio.run(dub(make_job(recording, tmp_path, ("pt-br", "es")), stages(voice, tagger)))
    assert voice.waited == [True, True]  # both speakers' conditionals were made while translation ran
    lines = json.loads((tmp_path / "out" / "manifest.json").read_text())["languages"]["es"]["lines"]
    assert [line["text"] for line in lines] == [f"[es] {text}" for *_, text in LINES]


def test_the_two_decodes_and_the_probe_run_at_once(recording, tmp_path, monkeypatch):
    from graph.run import pipeline

    started = threading.Barrier(3, timeout=10)  # broken (the job fails) unless all three are under way together
    decode, probe = pipeline.audio.decode, pipeline.probe_video
    monkeypatch.setattr(pipeline.audio, "decode", lambda *a: (started.wait(), decode(*a))[1])
    monkeypatch.setattr(pipeline, "probe_video", lambda *a: (started.wait(), probe(*a))[1])
    result = asyncio.run(dub(make_job(recording, tmp_path), stages(ToneVoice())))
    assert set(result.outputs) == {"pt-br"} and result.stage_s["decode"] > 0


def test_when_decoding_and_probing_fail_the_analysis_decode_s_error_is_raised(recording, tmp_path, monkeypatch):
    """As when they ran in order, whichever fails first: here the probe's failure comes first."""
    from graph.run import pipeline

    probed = threading.Event()

    def decode(path, sr, *rest):
        probed.wait(10)
        raise BadAudio(f"decoding at {sr} failed")

    def probe(*args):
        probed.set()
        raise BadAudio("probing failed")

    monkeypatch.setattr(pipeline.audio, "decode", decode)
    monkeypatch.setattr(pipeline, "probe_video", probe)
    with pytest.raises(BadAudio, match="decoding at 16000 failed"):
        asyncio.run(dub(make_job(recording, tmp_path), stages(ToneVoice())))


def test_without_sox_a_job_fails_before_its_first_stage(recording, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    voice = ToneVoice()
    with pytest.raises(DubError, match="sox is not installed"):
        asyncio.run(dub(make_job(recording, tmp_path), stages(voice)))
    assert voice.prepared == 0 and not (tmp_path / "out").exists()


def test_long_candidate_replaced_by_shorter_one_when_it_would_be_cut(recording, tmp_path):
    asyncio.run(dub(make_job(recording, tmp_path), stages(ToneVoice())))
    lines = json.loads((tmp_path / "out" / "manifest.json").read_text())["languages"]["pt-br"]["lines"]
    assert all(line["chosen"] == 1 for line in lines)  # the first candidate is predicted too long
    assert all(line["end_s"] <= nxt["start_s"] + 1e-6 for line, nxt in zip(lines, lines[1:]))


def test_failed_line_is_retried_then_flagged_without_failing_the_job(recording, tmp_path, caplog):
    voice = ToneVoice(fail_texts=("How are you", "Good to hear"), fail_times=1)
    voice.fail["Good to hear"] = 5
    with caplog.at_level(logging.WARNING):
        asyncio.run(dub(make_job(recording, tmp_path), stages(voice)))
    assert "u0001 (pt-br) failed (RuntimeError: replica went away): retrying" in caplog.text
    lines = json.loads((tmp_path / "out" / "manifest.json").read_text())["languages"]["pt-br"]
    flags = {line["utterance_id"]: line["flags"] for line in lines["lines"]}
    assert flags["u0001"] == [] and "synthesis_failed" in flags["u0003"]
    assert lines["lines_flagged"] == ["u0003"]


def test_resume_from_checkpoint_recomputes_nothing(recording, tmp_path):
    first = ToneVoice()
    asyncio.run(dub(make_job(recording, tmp_path), stages(first), checkpoint=Checkpoint(tmp_path / "ck")))
    again = ToneVoice()
    asyncio.run(dub(make_job(recording, tmp_path), stages(again), checkpoint=Checkpoint(tmp_path / "ck")))
    assert first.calls == len(LINES) and (again.calls, again.prepared) == (0, 0)


def test_silence_and_unsupported_language_fail_clearly(tmp_path):
    silent = tmp_path / "silence.wav"
    sf.write(silent, np.zeros(3 * 16000, np.float32), 16000)
    with pytest.raises(BadAudio, match="silent"):
        asyncio.run(dub(make_job(silent, tmp_path), stages(ToneVoice())))
    with pytest.raises(UnsupportedLanguage, match="supported: es, fr, pt-br"):
        asyncio.run(dub(make_job(silent, tmp_path, ("de",)), stages(ToneVoice())))


def _srt(tmp_path, named_speakers=True):
    cues = [f"{i}\n00:00:{start:06.3f} --> 00:00:{end:06.3f}\n{f'[{s}] ' if named_speakers or i % 2 else ''}{text}\n"
            .replace(".", ",", 2) for i, (s, start, end, text) in enumerate(LINES, start=1)]
    path = tmp_path / "talk.srt"
    path.write_text("\n".join(cues))
    return path


def test_a_named_transcript_replaces_asr_and_diarization(recording, tmp_path):
    """Every cue names its speaker: no ASR or diarizer call at all (they are not even started), one line per cue
    with the cue's speaker, times and text, each in its own speaker's voice."""
    from graph.run.stages import Unstarted

    voice = ToneVoice()
    job = make_job(recording, tmp_path)
    job = DubJob(**{**job.__dict__, "transcript": str(_srt(tmp_path))})
    bare = Stages(Unstarted("asr"), Unstarted("diarizer"), LocalStage(Tagger()), LocalStage(voice, parallelism=4))
    asyncio.run(dub(job, bare))
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["transcript"] == "talk.srt" and manifest["speakers"] == ["A", "B"]
    got = [(u["speaker"], u["start_s"], u["end_s"], u["text"]) for u in manifest["utterances"]]
    assert got == LINES
    track, sr = sf.read(tmp_path / "out" / "pt-br.wav", dtype="float32")
    for line in manifest["languages"]["pt-br"]["lines"]:
        placed = track[int(line["start_s"] * sr) : int(line["end_s"] * sr)]
        assert abs(dominant_hz(placed, sr) - F0[line["speaker"]]) < 15


def test_unnamed_cues_take_the_diarized_speaker(recording, tmp_path):
    job = make_job(recording, tmp_path)
    job = DubJob(**{**job.__dict__, "transcript": str(_srt(tmp_path, named_speakers=False))})
    from graph.run.stages import Unstarted

    bare = Stages(Unstarted("asr"), LocalStage(Turns(LINES)),
                  LocalStage(Tagger()), LocalStage(ToneVoice(), parallelism=4))
    asyncio.run(dub(job, bare))
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert [u["speaker"] for u in manifest["utterances"]] == [s for s, *_ in LINES]


def test_crafted_checkpoints_are_never_run_and_their_units_are_recomputed(recording, tmp_path, caplog):
    """Every checkpoint of a finished job replaced by a pickle that would create a marker file when loaded (under
    its own name and under the old .pkl name): the rerun runs none of them and recomputes every unit."""
    import pickle

    from tests.unit.test_plain import Payload

    first = ToneVoice()
    asyncio.run(dub(make_job(recording, tmp_path), stages(first), checkpoint=Checkpoint(tmp_path / "ck")))
    files = sorted((tmp_path / "ck").iterdir())
    assert {f.name.split("-")[0] for f in files} == {"asr", "diarize", "conds", "translate", "line"}
    marker = tmp_path / "ran"
    for path in files:
        path.write_bytes(pickle.dumps(Payload(marker)))
        path.with_suffix(".pkl").write_bytes(pickle.dumps(Payload(marker)))
    again = ToneVoice()
    store = Checkpoint(tmp_path / "ck")
    with caplog.at_level(logging.WARNING, logger="graph.run.checkpoint"):
        asyncio.run(dub(make_job(recording, tmp_path), stages(again), checkpoint=store))
    assert not marker.exists() and store.hits == 0
    assert (again.calls, again.prepared) == (first.calls, first.prepared) == (len(LINES), 2)
    assert caplog.text.count("ignoring unreadable checkpoint") == len(files)
