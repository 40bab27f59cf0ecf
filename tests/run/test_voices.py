"""The voices and words a job controls, through graph.run.pipeline with the in-process stand-ins of
tests/run/test_pipeline.py: reference clips, library voices (named and matched), glossary terms, pronunciations.
The real models' side (embeddings, translators) is in tests/actors/test_words.py and tests/bench/test_words.py."""

import asyncio
import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from actors.models import OFFLINE, Profile
from graph.errors import BadInput
from graph.media.library import VoiceLibrary
from graph.media.voice_clip import read_clip
from graph.options import DubOptions, GlossaryOptions, VoiceOptions
from graph.run.checkpoint import Checkpoint
from graph.run.pipeline import DubJob, Stages, dub
from graph.run.pools import make_job as checked_job
from graph.run.stages import LocalStage
from graph.types import SpeakerEmbedding
from tests.run.stand_ins import SR, Script, Turns, speech
from tests.run.test_pipeline import LINES, Tagger, ToneVoice, dominant_hz
from tests.run.test_pipeline import recording  # noqa: F401 (fixture)

PITCHES = np.arange(80.0, 500.0, 10.0)


class Listener(ToneVoice):
    """ToneVoice that keeps what each line was voiced from: (text, the conditionals' pitch)."""

    def __init__(self):
        super().__init__()
        self.received = []

    def synthesize(self, text, language, conds, *args):
        with self.lock:
            self.received.append((text, conds["f0"]))
        return super().synthesize(text, language, conds, *args)


class EmbeddingTurns(Turns):
    """Turns plus an embedding by pitch: a bump over pitch bins, so nearer pitches are more alike."""

    threshold = 0.9

    def embed(self, samples, sr):
        f0 = float(np.argmax(np.abs(np.fft.rfft(samples))) * sr / len(samples))
        vector = np.exp(-(((PITCHES - f0) / 25.0) ** 2)).astype(np.float32)
        return SpeakerEmbedding("pitch bumps", vector / np.linalg.norm(vector), self.threshold)


class Dropper:
    """A translator that 'translates' to upper case and drops every bracketed token, as a random model does."""

    def translate(self, texts, source, target, options):
        return [(" ".join(re.sub(r"\[\d+\]", "", t).upper().split()),) for t in texts]


def tone_clip(path, f0, seconds=4.0):
    sf.write(path, speech(seconds, f0), SR)
    return path


def job(audio, tmp_path, out="out", **fields):
    options = DubOptions(targets=("pt-br",), **fields.pop("options", {}))
    return DubJob(str(audio), str(tmp_path / out), options, sources=("en",), targets=("pt-br",),
                  models={"synthesizer": "tone", "diarizer": "pitch bumps"}, **fields)


def run(job, voice, translator=None, turns=None):
    stages = Stages(LocalStage(Script()), LocalStage(turns or EmbeddingTurns()), LocalStage(translator or Tagger()),
                    LocalStage(voice, parallelism=4))
    asyncio.run(dub(job, stages))
    return json.loads((Path(job.out_dir) / "manifest.json").read_text())


def line_pitches(out_dir, manifest):
    track, sr = sf.read(out_dir / "pt-br.wav", dtype="float32")
    return {line["utterance_id"]: dominant_hz(track[int(line["start_s"] * sr) : int(line["end_s"] * sr)], sr)
            for line in manifest["languages"]["pt-br"]["lines"]}


def test_a_reference_clip_replaces_the_picked_reference_for_its_speaker(recording, tmp_path):
    clip = tone_clip(tmp_path / "alice.wav", 400.0)
    voice = Listener()
    manifest = run(job(recording, tmp_path, references={"A": str(clip)}), voice)
    received = {text.split("] ", 1)[1].split(" long")[0]: f0 for text, f0 in voice.received}
    for speaker, _, _, text in LINES:  # A's lines were voiced from the clip, B's from B's own speech
        assert received[f"{text}"] == pytest.approx(400.0 if speaker == "A" else 230.0, abs=5), text
    assert voice.prepared == 2
    assert manifest["voices"]["A"]["source"] == "clip" and manifest["voices"]["A"]["clip"] == "alice.wav"
    assert manifest["voices"]["B"]["source"] == "picked"
    heard = line_pitches(tmp_path / "out", manifest)  # and that is what the track plays
    for line in manifest["languages"]["pt-br"]["lines"]:
        assert heard[line["utterance_id"]] == pytest.approx(400.0 if line["speaker"] == "A" else 230.0, abs=15)


def test_a_named_library_voice_is_prepared_once_ever(recording, tmp_path):
    library = VoiceLibrary(tmp_path / "voices")
    library.add("deep", read_clip(tone_clip(tmp_path / "deep.wav", 110.0), "deep.wav"), "deep.wav")
    options = {"voices": VoiceOptions(library={"B": "deep"})}
    first, second = Listener(), Listener()
    made = run(job(recording, tmp_path, "one", options=options, library=str(library.root)), first)
    again = run(job(recording, tmp_path, "two", options=options, library=str(library.root)), second)
    assert first.prepared == 2 and second.prepared == 1  # the second job prepared only A, from its own speech
    assert made["voices"]["B"] | {"computed": None} == again["voices"]["B"] | {"computed": None}
    assert (made["voices"]["B"]["computed"], again["voices"]["B"]["computed"]) == (True, False)
    assert again["voices"]["B"]["source"] == "library" and again["voices"]["B"]["voice"] == "deep"
    assert library.get("deep").prepared == ("tone",)
    b_pitches = [f0 for text, f0 in second.received if "Good to hear" in text or "How are you" in text]
    assert b_pitches and all(f0 == pytest.approx(110.0, abs=5) for f0 in b_pitches)


def test_matching_gives_each_speaker_the_closest_voice_above_the_threshold_and_records_the_score(recording, tmp_path):
    library = VoiceLibrary(tmp_path / "voices")
    for name, f0 in (("low", 130.0), ("high", 300.0)):
        library.add(name, read_clip(tone_clip(tmp_path / f"{name}.wav", f0), name), f"{name}.wav")
    options = {"voices": VoiceOptions(match=True)}
    manifest = run(job(recording, tmp_path, options=options, library=str(library.root)), Listener())
    a, b = manifest["voices"]["A"], manifest["voices"]["B"]
    assert a["source"] == "matched" and a["voice"] == "low" and a["match"]["score"] > 0.99
    assert b["source"] == "picked" and b["match"]["voice"] is None and b["match"]["closest"] == "high"
    assert b["match"]["score"] < 0.9 and b["match"]["threshold"] == 0.9  # the model's own threshold
    assert library.get("low").embedded == ("pitch bumps",)  # kept: the next job does not embed it again
    loose = {"voices": VoiceOptions(match=True, match_threshold=0.0)}
    manifest = run(job(recording, tmp_path, "loose", options=loose, library=str(library.root)), Listener())
    assert manifest["voices"]["B"]["voice"] == "high" and manifest["voices"]["B"]["match"]["threshold"] == 0.0


def test_glossary_terms_are_in_every_line_and_pronunciations_reach_only_the_synthesizer(recording, tmp_path):
    glossary = GlossaryOptions(terms={"pt-br": {"friend": "amigo"}}, keep=("Good",),
                               pronounce={"pt-br": {"amigo": "ah-mee-go"}})
    voice = Listener()
    manifest = run(job(recording, tmp_path, options={"glossary": glossary}), voice)
    lines = {line["source_text"]: line for line in manifest["languages"]["pt-br"]["lines"]}
    assert lines["Hello there my friend."]["text"] == "[pt-br] Hello there my amigo."
    assert lines["Good to hear."]["text"] == "[pt-br] Good to hear." and not lines["Good to hear."]["flags"]
    assert any("my ah-mee-go" in text for text, _ in voice.received)
    assert not any("amigo" in text for text, _ in voice.received)
    assert "amigo" in (tmp_path / "out" / "pt-br.srt").read_text()
    assert manifest["options"]["glossary"]["terms"] == {"pt-br": {"friend": "amigo"}}


def test_a_translator_that_drops_placeholders_gets_the_line_in_pieces_with_the_terms(recording, tmp_path):
    glossary = GlossaryOptions(terms={"pt-br": {"friend": "amigo"}})
    manifest = run(job(recording, tmp_path, options={"glossary": glossary}), Listener(), Dropper())
    line = next(line for line in manifest["languages"]["pt-br"]["lines"] if "friend" in line["source_text"])
    assert line["text"] == "HELLO THERE MY amigo." and "glossary_split" in line["flags"]
    assert manifest["languages"]["pt-br"]["lines_flagged"] == [line["utterance_id"]]


def test_a_line_still_lacking_a_term_is_flagged(recording, tmp_path, monkeypatch):
    """The check after translation catches whatever the enforcement missed (here: a join that loses its terms)."""
    from graph.run import translate

    monkeypatch.setattr(translate, "join", lambda protected, pieces: " ".join(pieces))
    glossary = GlossaryOptions(terms={"pt-br": {"friend": "amigo"}})
    manifest = run(job(recording, tmp_path, options={"glossary": glossary}), Listener(), Dropper())
    line = next(line for line in manifest["languages"]["pt-br"]["lines"] if "friend" in line["source_text"])
    assert "term_missing" in line["flags"] and "amigo" not in line["text"]


def test_voices_and_words_are_checked_before_any_model_runs(recording, tmp_path):
    profile = Profile("tone", "in-process stand-ins", (), sources=("en",), targets=("pt-br",))
    library = VoiceLibrary(tmp_path / "voices")
    options = DubOptions(targets=("pt-br",), profile="tone", voices=VoiceOptions(library={"B": "nobody"}))
    with pytest.raises(BadInput, match="speaker B: no voice named 'nobody'"):
        checked_job(recording, tmp_path / "o", options, profile, library=library.root)
    with pytest.raises(BadInput, match="no voice library was given"):
        checked_job(recording, tmp_path / "o", options, profile)
    sf.write(tmp_path / "short.wav", speech(0.2, 200.0), SR)
    with pytest.raises(BadInput, match=r"short.wav \(for A\) is 0.2 s long"):
        checked_job(recording, tmp_path / "o", DubOptions(profile="tone"), profile,
                    references={"A": tmp_path / "short.wav"})
    espeak = DubOptions(glossary=GlossaryOptions(pronounce={"pt-br": {"GIF": "[[dZ'If]]"}}))
    assert checked_job(recording, tmp_path / "o", espeak, OFFLINE).options == espeak  # espeak reads phonemes
    chatterbox = Profile("cb", "", (OFFLINE.model("asr"), OFFLINE.model("diarizer"), OFFLINE.model("translator"),
                                    dataclasses.replace(OFFLINE.model("synthesizer"),
                                                        actor="actors.chatterbox.model:Synthesizer")),
                         sources=("en",), targets=("pt-br",))
    with pytest.raises(BadInput, match="espeak-ng phonemes"):
        checked_job(recording, tmp_path / "o", espeak, chatterbox)


def test_resume_reuses_the_speaker_embeddings(recording, tmp_path):
    library = VoiceLibrary(tmp_path / "voices")
    library.add("low", read_clip(tone_clip(tmp_path / "low.wav", 130.0), "low"), "low.wav")
    calls = []

    class Counting(EmbeddingTurns):
        def embed(self, samples, sr):
            calls.append(len(samples))
            return super().embed(samples, sr)

    options = {"voices": VoiceOptions(match=True)}
    for _ in range(2):
        stages = Stages(LocalStage(Script()), LocalStage(Counting()), LocalStage(Tagger()),
                        LocalStage(Listener(), parallelism=4))
        asyncio.run(dub(job(recording, tmp_path, options=options, library=str(library.root)), stages,
                        checkpoint=Checkpoint(tmp_path / "ck")))
    assert len(calls) == 3  # two speakers and the library voice, once: the rerun reads all three back
