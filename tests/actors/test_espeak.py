"""espeak-ng synthesizer: real espeak-ng, references made with espeak-ng voices of both sexes."""

from __future__ import annotations

import io
import subprocess

import numpy as np
import pytest

from actors.espeak import DEFAULT_PITCH, DEFAULT_VARIANT, FEMALE, MALE, EspeakSynthesizer
from actors.models import OFFLINE
from graph.errors import BadAudio, BadInput, UnsupportedLanguage
from graph.run.checkpoint import Checkpoint
from graph.types import VoiceConditionals

REFERENCE_TEXT = (
    "Good morning, did you finish reading the report last night? "
    "The numbers for March look much better, and we still need to check the costs."
)
SENTENCE = "Olá, como você está hoje?"


def espeak(voice: str, pitch: int, text: str = REFERENCE_TEXT) -> tuple[np.ndarray, int]:
    import soundfile as sf

    wav = subprocess.run(["espeak-ng", "-v", voice, "-p", str(pitch), "--stdin", "--stdout"],
                         input=text.encode(), capture_output=True, check=True).stdout
    samples, sr = sf.read(io.BytesIO(wav), dtype="float32")
    return samples, sr


def median_f0(samples: np.ndarray, sr: int) -> float:
    import librosa

    f0, voiced, _ = librosa.pyin(samples, fmin=60.0, fmax=500.0, sr=sr, frame_length=2048)
    return float(np.nanmedian(f0[voiced]))


@pytest.fixture(scope="module")
def synth() -> EspeakSynthesizer:
    return EspeakSynthesizer(OFFLINE.model("synthesizer"))


@pytest.fixture(scope="module")
def voices(synth):
    """A low male and a high female speaker; the male one resampled to 16 kHz like ASR-side audio."""
    import librosa

    male, sr = espeak("en-us+m3", 35)
    female, sr_f = espeak("en-us+f2", 70)
    male16 = librosa.resample(male, orig_sr=sr, target_sr=16000)
    return synth.prepare(male16, 16000), synth.prepare(female, sr_f)


def test_sentence_gives_plausible_audio(synth, voices):
    clip = synth.synthesize(SENTENCE, "pt-br", voices[0])
    assert clip.sr == 22050
    assert clip.samples.dtype == np.float32 and clip.samples.ndim == 1
    assert 0.8 < clip.duration_s < 4.0
    assert np.abs(clip.samples).max() > 0.05
    again = synth.synthesize(SENTENCE, "pt-br", voices[0], seed=7, temperature=0.1)
    assert np.array_equal(again.samples, clip.samples)  # seed etc. are accepted and ignored


def test_longer_text_gives_longer_audio(synth, voices):
    short = synth.synthesize("Bom dia.", "pt-br", voices[1])
    long = synth.synthesize("Bom dia. " + SENTENCE + " As crianças brincavam no jardim o dia inteiro.", "pt-br",
                            voices[1])
    assert long.duration_s > 2 * short.duration_s > 0


def test_pace_speeds_speech_up_or_slows_it_down_keeping_the_voice(synth, voices):
    text = "Bom dia. " + SENTENCE + " As crianças brincavam no jardim o dia inteiro."
    natural = synth.synthesize(text, "pt-br", voices[1])
    for pace in (0.7, 1.5, 2.0):
        clip = synth.synthesize(text, "pt-br", voices[1], pace=pace)
        assert clip.duration_s == pytest.approx(natural.duration_s / pace, rel=0.12), pace
    faster = synth.synthesize(text, "pt-br", voices[1], pace=1.5)
    assert median_f0(faster.samples, faster.sr) == pytest.approx(median_f0(natural.samples, natural.sr), rel=0.08)
    with pytest.raises(BadInput, match="pace must be > 0"):
        synth.synthesize(text, "pt-br", voices[1], pace=0)


def test_two_references_give_two_voices(synth, voices):
    male, female = voices
    assert male != female and male.kind == female.kind == "espeak" and not male.arrays
    assert male.meta["variant"] in MALE and female.meta["variant"] in FEMALE
    assert male.meta["f0_hz"] < 160 < female.meta["f0_hz"]
    a = synth.synthesize(SENTENCE, "pt-br", male)
    b = synth.synthesize(SENTENCE, "pt-br", female)
    n = min(len(a.samples), len(b.samples))
    assert not np.allclose(a.samples[:n], b.samples[:n], atol=1e-3)
    assert median_f0(a.samples, a.sr) * 1.4 < median_f0(b.samples, b.sr)


def test_two_real_speakers_at_the_same_pitch_get_different_variants(synth):
    """pyannote.audio ships a real two-speaker recording: two women, both at ~200 Hz median F0."""
    import importlib.util
    from pathlib import Path

    import soundfile as sf

    spec = importlib.util.find_spec("pyannote.audio")
    folder = Path(spec.origin).parent / "sample" if spec else None
    if folder is None or not (folder / "sample.wav").exists():
        pytest.skip("pyannote.audio's sample recording is not installed")
    audio, sr = sf.read(folder / "sample.wav", dtype="float32")
    turns: dict[str, list[np.ndarray]] = {}
    for line in (folder / "sample.rttm").read_text().splitlines():
        fields = line.split()
        start, duration = float(fields[3]), float(fields[4])
        turns.setdefault(fields[7], []).append(audio[int(start * sr) : int((start + duration) * sr)])
    a, b = (synth.prepare(np.concatenate(parts)[: 10 * sr], sr) for parts in turns.values())
    assert a.meta["variant"] in FEMALE and b.meta["variant"] in FEMALE
    assert a.meta["variant"] != b.meta["variant"]


def test_pitch_follows_the_reference(synth):
    low = synth.prepare(*espeak("en-us+m3", 20))
    high = synth.prepare(*espeak("en-us+m3", 60))
    assert low.meta["variant"] == high.meta["variant"]
    assert low.meta["pitch"] + 10 < high.meta["pitch"]


def test_blank_text_gives_no_samples(synth, voices):
    for text in ("", "   ", "\n\t"):
        clip = synth.synthesize(text, "pt-br", voices[0])
        assert clip.samples.shape == (0,) and clip.sr == 22050


def test_text_that_looks_like_options_is_spoken(synth, voices):
    clip = synth.synthesize("--version -v xx --help", "en", voices[0])
    words = synth.synthesize("version v x x help", "en", voices[0])
    assert clip.duration_s > 1.0
    assert abs(clip.duration_s - words.duration_s) < 0.6 * words.duration_s


def test_unsupported_language_raises(synth, voices):
    with pytest.raises(UnsupportedLanguage) as exc:
        synth.synthesize(SENTENCE, "xx", voices[0])
    assert "pt-br" in exc.value.supported and "en" in exc.value.supported


def test_silent_or_multichannel_reference(synth):
    silent = synth.prepare(np.zeros(16000, dtype=np.float32), 16000)
    assert (silent.meta["variant"], silent.meta["pitch"]) == (DEFAULT_VARIANT, DEFAULT_PITCH)
    assert silent.meta["f0_hz"] is None
    with pytest.raises(BadAudio):
        synth.prepare(np.zeros((2, 16000), dtype=np.float32), 16000)


def test_voice_through_a_checkpoint_speaks_the_same(synth, voices, tmp_path):
    Checkpoint(tmp_path).put("conds-f", voices[1])
    loaded = Checkpoint(tmp_path).get("conds-f")
    assert loaded == voices[1] and loaded is not voices[1]
    want = synth.synthesize(SENTENCE, "pt-br", voices[1])
    assert np.array_equal(synth.synthesize(SENTENCE, "pt-br", loaded).samples, want.samples)


def test_conditionals_espeak_cannot_use_are_refused(synth, voices):
    chatterbox = VoiceConditionals("chatterbox", "ChatterBox", {"t3.speaker_emb": np.zeros((1, 256), np.float32)})
    with pytest.raises(BadInput, match=r"made by the chatterbox synthesizer \(ChatterBox\); prepare the voice again"):
        synth.synthesize(SENTENCE, "pt-br", chatterbox)
    for meta in ({"variant": "m3 -w /tmp/x", "pitch": 50}, {"variant": "f1", "pitch": 100}, {"variant": "f1"},
                 {"variant": "f1", "pitch": True}):
        with pytest.raises(BadInput, match="need a variant of m1, .* and a pitch 0..99"):
            synth.synthesize(SENTENCE, "pt-br", VoiceConditionals("espeak", "espeak-ng", meta=meta))


def test_the_first_pitch_analysis_in_a_process_holds_the_machine_wide_lock(monkeypatch):
    """pYIN's first call in a process may write librosa's numba cache: it runs holding the lock file (asked from
    another open file, as another process would), later calls do not wait for it."""
    import fcntl
    import threading

    import librosa

    from actors import espeak as module

    for thread in threading.enumerate():
        if thread.name == "load-pitch":
            thread.join()  # a synthesizer an earlier test made may still be loading librosa
    held, real = [], librosa.pyin

    def probing(*args, **kwargs):
        with open(module.PITCH_LOCK, "a") as other:
            try:
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
                held.append(False)
            except BlockingIOError:
                held.append(True)
        return real(*args, **kwargs)

    monkeypatch.setattr(librosa, "pyin", probing)
    monkeypatch.setattr(module, "_kernels_loaded", False)
    tone = np.sin(2 * np.pi * 200.0 * np.arange(8000) / 16000).astype(np.float32)
    first, _ = module._pitch(tone)
    module._pitch(tone)
    assert held == [True, False]
    assert abs(float(np.nanmedian(first)) - 200.0) < 5.0
