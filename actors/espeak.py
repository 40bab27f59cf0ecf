"""Speech synthesis with the espeak-ng binary (offline profile): no voice cloning, one distinct voice per speaker.

``prepare`` turns a speaker's reference clip into ``VoiceConditionals`` (kind "espeak", no arrays; ``meta``:
"variant", "pitch", and the measurements "f0_hz", "centroid_hz"): the median F0 of its voiced frames
(librosa's pYIN on a half-semitone pitch grid, ``PITCH_RESOLUTION``) picks a male or female espeak variant and
the ``-p`` pitch that lands espeak near that F0; the median spectral centroid of the voiced frames (a rough
brightness proxy) picks which variant of that gender. Centroids of one recording's speakers sit close together
(pyannote's sample.wav: two women at ~200 Hz F0, centroids ~860 and ~1020 Hz), so centroid bands 100 Hz wide are
spread over the variants round-robin: speakers 100-500 Hz apart in centroid get different variants (the variants
have no order to preserve). Speakers differing in pitch or brightness get different voices; two alike in both may not.

``synthesize`` runs ``espeak-ng -v <language>+<variant> -p <pitch> -s <rate> --stdin --stdout`` without a
shell, the text on stdin (so a line starting with "-" is text, never an option), and decodes the WAV it
prints. ``pace`` (the speed-up the timeline asks for) scales the rate in words per minute, within espeak-ng's
range (``RATES``; a clip's duration scales with 1/rate within a few percent, measured 120-500 wpm on pt-br).
espeak-ng reads ``[[...]]`` in the text as its own phoneme mnemonics (what ``espeak-ng -x`` prints; not IPA), so a
pronunciation may give those (``reads_phonemes``). ``seed``, ``exaggeration``, ``cfg_weight`` and ``temperature``
exist for parity with the ChatterBox synthesizer and are ignored: espeak is deterministic and has no such controls.

The location ``resolve`` gives is the espeak-ng executable; a ``spec.loader`` ("module:function") may map
``(location, device)`` to another executable (a wrapper, say). The speaking rate is ``spec.options["rate"]``.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import logging
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np

from actors.models import ModelSpec, load_object, resolve
from graph.errors import BadAudio, BadInput, ModelNotFound
from graph.languages import LANGUAGES
from graph.languages import language as lookup_language
from graph.types import Clip, VoiceConditionals, voice_for

log = logging.getLogger(__name__)

ESPEAK_SR = 22050  # what espeak-ng writes; the decoded header is used when there is audio
DEFAULT_RATE = 175  # words per minute, espeak's default; spec.options["rate"] overrides it
RATES = (80, 450)  # words per minute espeak-ng speaks at
MALE = ("m1", "m2", "m3", "m4", "m5", "m6", "m7")
FEMALE = ("f1", "f2", "f3", "f4", "f5")
GENDER_SPLIT_HZ = 160.0  # below: a male variant
# Median F0 espeak-ng 1.51 produces at -p 0/25/50/75/99 (measured over the variants above, en-us).
PITCH_STEPS = (0, 25, 50, 75, 99)
MALE_F0 = (68.0, 80.0, 100.0, 129.0, 167.0)
FEMALE_F0 = (124.0, 152.0, 191.0, 248.0, 322.0)
CENTROID_STEP_HZ = 100.0  # width of the centroid bands dealt round-robin to the variants of one gender
ANALYSIS_SR = 16000
TIMEOUT_S = 120
# pYIN's pitch grid in semitones (librosa's default is 0.1): its Viterbi is quadratic in the number of pitch states,
# and half a semitone is ~6x faster, no gender flip and speakers kept apart (bench/pitch.py, RESULTS.md)
PITCH_RESOLUTION = 0.5
PITCH_LOCK = Path(tempfile.gettempdir()) / "dubgraph-pitch-kernels.lock"  # see _pitch
KIND = "espeak"  # VoiceConditionals.kind of what ``prepare`` makes
DEFAULT_VARIANT, DEFAULT_PITCH = "m3", 50  # for references with no voiced frames


class EspeakSynthesizer:
    """Same ``prepare``/``synthesize`` interface as the ChatterBox synthesizer."""

    reads_phonemes = True  # "[[...]]" in a line is spoken as espeak phonemes (pronunciations may use it)

    def __init__(self, spec: ModelSpec, profile: str = "offline", device: str | None = None):
        self.spec = spec
        location = resolve(spec, profile).location
        self.device = "cpu"  # espeak runs on the CPU; a requested device is ignored
        self.binary: str = load_object(spec.loader)(location, self.device) if spec.loader else location
        self.rate = int(spec.options.get("rate", DEFAULT_RATE))
        self.languages = self._installed(profile)
        tone = np.sin(2 * np.pi * 150.0 * np.arange(ANALYSIS_SR // 2) / ANALYSIS_SR).astype(np.float32)
        self._loading = threading.Thread(target=_pitch, args=(tone,), name="load-pitch", daemon=True)  # see _pitch
        self._loading.start()
        log.info("espeak-ng %s: %d languages, rate %d wpm", self.binary, len(self.languages), self.rate)

    def prepare(self, reference: np.ndarray, sr: int) -> VoiceConditionals:
        """Pick a variant and pitch from the reference's median F0 and spectral centroid (None: unvoiced)."""
        self._loading.join()  # librosa's modules imported by one thread at a time (see _pitch)
        import librosa

        samples = np.asarray(reference, dtype=np.float32)
        if samples.ndim != 1:
            raise BadAudio(f"the voice reference must be mono (1-D), got shape {samples.shape}")
        if not samples.size or not np.any(samples):
            log.warning("silent voice reference: using the default espeak voice")
            return self._voice(DEFAULT_VARIANT, DEFAULT_PITCH)
        y = librosa.resample(samples, orig_sr=sr, target_sr=ANALYSIS_SR) if sr != ANALYSIS_SR else samples
        measured = measure(y)
        if measured is None:
            log.warning("no voiced frames in the voice reference: using the default espeak voice")
            return self._voice(DEFAULT_VARIANT, DEFAULT_PITCH)
        f0_hz, centroid_hz = measured
        voice = self._voice(*choose(f0_hz, centroid_hz), round(f0_hz, 1), round(centroid_hz, 1))
        log.info("espeak voice %s", voice.meta)
        return voice

    def _voice(self, variant: str, pitch: int, f0_hz: float | None = None,
               centroid_hz: float | None = None) -> VoiceConditionals:
        meta = {"variant": variant, "pitch": pitch, "f0_hz": f0_hz, "centroid_hz": centroid_hz}
        return VoiceConditionals(KIND, self.spec.name, meta=meta)

    def synthesize(
        self,
        text: str,
        language: str,
        conditionals: VoiceConditionals,
        seed: int = 0,
        exaggeration: float = 0.5,
        cfg_weight: float = 0.5,
        temperature: float = 0.8,
        pace: float = 1.0,
    ) -> Clip:
        """Speak ``text`` in ``language`` with the prepared voice, ``pace`` times faster than its natural rate;
        blank text gives a 0-sample clip."""
        if not pace > 0:
            raise BadInput(f"pace must be > 0, got {pace}")
        variant, pitch = _variant_pitch(conditionals)
        lang = lookup_language(language, self.languages, "target").espeak
        line = " ".join(text.split())
        if not line:
            return Clip(np.zeros(0, dtype=np.float32), ESPEAK_SR)
        wpm = min(max(round(self.rate * pace), RATES[0]), RATES[1])
        cmd = [self.binary, "-v", f"{lang}+{variant}", "-p", str(pitch), "-s", str(wpm),
               "-b", "1", "--stdin", "--stdout"]  # -b 1: the input is UTF-8
        run = subprocess.run(cmd, input=line.encode("utf-8"), capture_output=True, timeout=TIMEOUT_S)
        if run.returncode != 0:
            raise RuntimeError(f"espeak-ng failed ({run.returncode}): {run.stderr.decode(errors='replace').strip()}")
        return _decode(run.stdout)

    def _installed(self, profile: str) -> tuple[str, ...]:
        """dubgraph codes whose espeak voice this espeak-ng has (``--voices`` lists e.g. fr-fr for "fr")."""
        try:
            listing = subprocess.run([self.binary, "--voices"], capture_output=True, text=True, check=True,
                                     timeout=TIMEOUT_S).stdout
        except (OSError, subprocess.SubprocessError) as exc:
            raise ModelNotFound(self.spec.name, profile, self.spec.fix, [f"{self.binary} --voices: {exc}"]) from None
        voices = {line.split()[1] for line in listing.splitlines()[1:] if len(line.split()) > 1}
        return tuple(code for code, lang in LANGUAGES.items()
                     if lang.espeak in voices or any(v.startswith(lang.espeak + "-") for v in voices))


def measure(y: np.ndarray, resolution: float = PITCH_RESOLUTION) -> tuple[float, float] | None:
    """Median F0 and spectral centroid (Hz) of the voiced frames of ``y`` (``ANALYSIS_SR``); None: none voiced."""
    import librosa

    f0, voiced = _pitch(y, resolution)
    if not np.any(voiced):
        return None
    centroid = librosa.feature.spectral_centroid(y=y, sr=ANALYSIS_SR, n_fft=1024, hop_length=256)[0]
    n = min(len(centroid), len(voiced))
    return float(np.nanmedian(f0[voiced])), float(np.median(centroid[:n][voiced[:n]]))


def choose(f0_hz: float, centroid_hz: float) -> tuple[str, int]:
    """The espeak variant and ``-p`` pitch for a voice of this median F0 and spectral centroid (module docstring)."""
    variants, curve = (MALE, MALE_F0) if f0_hz < GENDER_SPLIT_HZ else (FEMALE, FEMALE_F0)
    pitch = int(round(np.interp(np.log(f0_hz), np.log(curve), PITCH_STEPS)))
    return variants[int(centroid_hz // CENTROID_STEP_HZ) % len(variants)], pitch


_kernels = threading.Lock()
_kernels_loaded = False  # pYIN's numba kernels are in this process


def _pitch(y: np.ndarray, resolution: float = PITCH_RESOLUTION) -> tuple[np.ndarray, np.ndarray]:
    """F0 per frame and whether it is voiced (librosa's pYIN, ``resolution`` semitones per pitch state).

    The first call in a process imports librosa's pitch module (scipy.signal among it, ~4 s on 2 cores) and loads
    pYIN's numba kernels from librosa's cache, compiling and writing them the first time on a machine: the
    constructor makes that call on a short tone in a daemon thread, so the cost falls beside the other stages' work
    (for a warm actor, before any job) without delaying the actor's start; a first voice asked for sooner waits
    for that thread (two threads importing the same modules at once can deadlock on Python's import locks). It is
    made holding ``PITCH_LOCK`` (an flock), one process at a time: processes writing that cache at once were seen to
    leave it corrupt (every later start crashed until its files were removed)."""
    import librosa

    global _kernels_loaded
    with contextlib.ExitStack() as held:
        if not _kernels_loaded:
            held.enter_context(_kernels)
            fcntl.flock(held.enter_context(open(PITCH_LOCK, "a")), fcntl.LOCK_EX)  # released when the file closes
        f0, voiced, _ = librosa.pyin(y, fmin=60.0, fmax=500.0, sr=ANALYSIS_SR, frame_length=1024,
                                     resolution=resolution)
        _kernels_loaded = True
    return f0, voiced


def _variant_pitch(conditionals: Any) -> tuple[str, int]:
    """The espeak variant and pitch of a voice ``prepare`` made; BadInput for anything else (they reach argv)."""
    meta = voice_for(KIND, conditionals).meta
    variant, pitch = meta.get("variant"), meta.get("pitch")
    if variant not in MALE + FEMALE or isinstance(pitch, bool) or not isinstance(pitch, int) or not 0 <= pitch <= 99:
        raise BadInput(f"espeak voice conditionals need a variant of {', '.join(MALE + FEMALE)} and a pitch 0..99, "
                       f"got {variant!r}, {pitch!r}; prepare the voice again")
    return variant, pitch


def _decode(wav: bytes) -> Clip:
    """espeak's WAV to float32 mono; writing to a pipe it cannot patch the header's sizes, soundfile copes."""
    import soundfile as sf

    if len(wav) <= 44:  # header only: the text had nothing to pronounce
        return Clip(np.zeros(0, dtype=np.float32), ESPEAK_SR)
    samples, sr = sf.read(io.BytesIO(wav), dtype="float32", always_2d=True)
    return Clip(np.ascontiguousarray(samples.mean(axis=1), dtype=np.float32), int(sr))
