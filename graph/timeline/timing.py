"""One line's audio made to fit its plan (graph/timeline/solver.py).

Before synthesis a candidate is chosen by its predicted length (characters at the voice's measured pace); a take
is trimmed to its speech, so a line's onset is where its plan starts; the speed-up the synthesizer's pace did not
give is made up by a pitch-preserving stretch. A cut is made in the text (``word_prefix``: the first words that
fit, voiced again, graph/run/placing.py); only what prediction still missed is cut in the audio, at a pause
(``cut_at_pause``: energy dips shorter than ``PAUSE_S`` are stop closures inside words, not pauses) with a fade.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence

import numpy as np

from graph.errors import DubError
from graph.timeline.onsets import FRAME_S, SPEECH_DB, frame_db, speech_span
from graph.timeline.solver import Plan
from graph.types import Utterance

PAD_S = 0.005  # silence kept before and after a take's speech
FADE_S = 0.01  # fade where a line has to be cut
PAUSE_S = 0.06  # a pause (where a cut may fall) is at least this long: stop closures inside words are shorter
NEAR_S = 1.0  # with no pause at all, a cut falls on the quietest frame this close to the limit
NO_SOX = "sox is not installed; it fits lines to their slots. Install it: apt-get install sox"


def source_pace(utterances: Sequence[Utterance]) -> float:
    """Characters per second over all lines: the first guess at a voice's pace, before it is heard."""
    chars = sum(len(u.text.strip()) for u in utterances)
    seconds = sum(u.duration_s for u in utterances)
    return chars / seconds if chars and seconds > 0 else 15.0


def predicted_s(text: str, chars_per_s: float) -> float:
    """How long a voice speaking ``chars_per_s`` takes to say ``text`` at its natural pace."""
    return len(text.strip()) / chars_per_s


def choose_candidate(candidates: Sequence[str], slot_s: float, chars_per_s: float) -> int:
    """The best-ranked candidate predicted to fit its slot at the voice's natural pace, else the shortest one."""
    spoken = [i for i, c in enumerate(candidates) if c.strip()]
    for i in spoken:
        if predicted_s(candidates[i], chars_per_s) <= slot_s:
            return i
    return min(spoken, key=lambda i: len(candidates[i].strip())) if spoken else 0


def word_prefix(text: str, chars_per_s: float, natural_s: float) -> str:
    """The longest run of ``text``'s first words predicted to take at most ``natural_s`` (at least one word)."""
    words = text.split()
    keep = 1
    while keep < len(words) and predicted_s(" ".join(words[: keep + 1]), chars_per_s) <= natural_s:
        keep += 1
    return text if keep == len(words) else " ".join(words[:keep])


def trim(samples: np.ndarray, sr: int) -> np.ndarray:
    """The take's speech with ``PAD_S`` around it (leading and trailing silence would move its onset and end)."""
    span = speech_span(samples, sr)
    if span is None:
        return samples[:0]
    pad = int(PAD_S * sr)
    return samples[max(0, int(span[0] * sr) - pad) : int(np.ceil(span[1] * sr)) + pad]


def check_stretch() -> None:
    """Fail a job before its first stage, not at its first stretched line, where sox is missing."""
    if shutil.which("sox") is None:
        raise DubError(NO_SOX)


def stretch(samples: np.ndarray, sr: int, rate: float) -> np.ndarray:
    """Pitch-preserving speed change, ``round(len / rate)`` samples; rate 1 returns the input untouched.

    sox's ``tempo -s`` (WSOLA tuned for speech, a process per call, ~5-9 ms per second of audio). It replaced
    librosa's phase vocoder, whose 2048-point frames smeared words (tiny.en's word error on lines stretched 0.8-1.5x:
    63-84 % on espeak-ng lines and 79-97 % on real speech, against 12-20 % and 5-12 % after sox) and whose loading
    cost ~5 s of CPU in every new process that places lines (bench/RESULTS.md, "Time stretch").
    """
    if abs(rate - 1.0) < 1e-3 or len(samples) < 2048:
        return samples
    raw = ["-t", "raw", "-e", "floating-point", "-b", "32", "-c", "1", "-r", str(sr)]
    cmd = ["sox", "-q", "-V1", *raw, "-", *raw, "-", "tempo", "-s", f"{rate:.6f}"]
    try:
        proc = subprocess.run(cmd, input=np.ascontiguousarray(samples, "<f4").tobytes(), capture_output=True)
    except FileNotFoundError:
        raise DubError(NO_SOX) from None
    if proc.returncode != 0:
        raise DubError(f"sox could not stretch a line: {proc.stderr.decode(errors='replace').strip()[-300:]}")
    out = np.frombuffer(proc.stdout, "<f4").astype(np.float32)
    n = int(round(len(samples) / rate))
    return out[:n] if len(out) >= n else np.pad(out, (0, n - len(out)))


def fit_take(samples: np.ndarray, sr: int, plan: Plan) -> tuple[np.ndarray, float, float]:
    """A trimmed take made to play as ``plan`` says: (samples, stretch applied, seconds cut).

    The take is stretched to the plan's length at its rate (``plan`` duration plus what it loses), then, when
    the plan loses seconds, cut at a pause before its end.
    """
    n_played = int(round((plan.end_s - plan.start_s + plan.lost_s) * sr))
    if not len(samples) or n_played <= 0:
        return samples[:0], 1.0, 0.0
    factor = len(samples) / n_played
    fitted = stretch(samples, sr, factor)[:n_played]
    if plan.lost_s <= 0:
        return fitted, factor, 0.0
    kept = cut_at_pause(fitted, sr, plan.end_s - plan.start_s)
    return kept, factor, (len(fitted) - len(kept)) / sr


def cut_at_pause(samples: np.ndarray, sr: int, max_s: float) -> np.ndarray:
    """At most ``max_s`` of ``samples``, ending where a pause between words begins, faded out.

    The pause is the latest run of quiet frames (``SPEECH_DB`` below the loudest, at least ``PAUSE_S`` long)
    that starts after the speech does and before the limit; a clip with no pause at all is cut at its quietest
    frame within ``NEAR_S`` of the limit.
    """
    n = int(max_s * sr)
    if len(samples) <= n:
        return samples
    hop = int(round(FRAME_S * sr))
    levels = frame_db(samples, sr)[: n // hop]
    if not len(levels):
        return samples[:0]
    quiet = levels < levels.max() - SPEECH_DB
    run = max(1, int(round(PAUSE_S / FRAME_S)))
    pauses = [i for i in range(1, len(quiet) - run + 1) if quiet[i : i + run].all() and not quiet[i - 1]]
    if pauses:
        end = pauses[-1]
    else:
        near = max(0, len(levels) - int(NEAR_S / FRAME_S))
        end = near + int(np.argmin(levels[near:]))
    out = samples[: end * hop].copy()
    fade = min(len(out), int(FADE_S * sr))
    if fade:
        out[-fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
    return out
