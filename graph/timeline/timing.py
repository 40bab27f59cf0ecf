"""Fitting a synthesized line into its original slot, without ever moving another line.

Order of remedies: pick the n-best translation whose predicted length fits, speed it up within the stretch
bounds (pitch-preserving), let it run into the silence that follows its slot, and only then cut it (flagged).
A line always starts at its source start; the track is exactly as long as the input.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from graph.options import TimingOptions
from graph.types import Utterance

FADE_S = 0.01  # fade applied where a line has to be cut


@dataclass(frozen=True)
class Fit:
    rate: float  # playback speed applied: > 1 is faster, shorter
    start_s: float
    end_s: float
    flags: tuple[str, ...] = ()


def predicted_s(candidate: str, source_text: str, slot_s: float) -> float:
    """Length guess before synthesis: the source line's speaking rate in characters per second."""
    return slot_s * max(len(candidate.strip()), 1) / max(len(source_text.strip()), 1)


def choose_candidate(candidates: Sequence[str], source_text: str, slot_s: float, options: TimingOptions) -> int:
    """The best-ranked candidate predicted to fit at the allowed speed-up, else the shortest one."""
    limit = slot_s * options.max_stretch
    for index, candidate in enumerate(candidates):
        if candidate.strip() and predicted_s(candidate, source_text, slot_s) <= limit:
            return index
    nonempty = [i for i, c in enumerate(candidates) if c.strip()] or [0]
    return min(nonempty, key=lambda i: len(candidates[i]))


def window_ends(utterances: Sequence[Utterance], total_s: float) -> dict[str, float]:
    """Per line, how far it may run: until the next line (any speaker) starts, or the end of the input."""
    starts = sorted(u.start_s for u in utterances)
    ends = {}
    for u in utterances:
        later = [s for s in starts if s > u.start_s + 1e-6]
        ends[u.id] = min(later[0] if later else total_s, total_s)
    return ends


def plan_fit(clip_s: float, utterance: Utterance, window_end_s: float, options: TimingOptions) -> Fit:
    """Speed and end time for a clip of ``clip_s`` seconds placed at ``utterance.start_s``."""
    start, slot_s = utterance.start_s, max(utterance.duration_s, 1e-3)
    if clip_s <= 0:
        return Fit(1.0, start, start, ("empty",))
    if clip_s <= slot_s:
        return Fit(1.0, start, start + clip_s)
    if clip_s / slot_s <= options.max_stretch:
        rate = clip_s / slot_s
        return Fit(rate, start, start + clip_s / rate, ("stretched",))
    room_s = max(window_end_s, utterance.end_s) - start if options.borrow_silence else slot_s
    rate = min(max(1.0, clip_s / room_s), options.max_stretch)
    end = start + clip_s / rate
    flags = ["stretched"] if rate > 1.0 + 1e-6 else []
    if end > utterance.end_s + 1e-6 and options.borrow_silence:
        flags.append("borrowed_silence")
    if end > start + room_s + 1e-6:
        end = start + room_s
        flags.append("truncated")
    return Fit(rate, start, end, tuple(flags))


def stretch(samples: np.ndarray, sr: int, rate: float) -> np.ndarray:
    """Pitch-preserving speed change (phase vocoder); rate 1 returns the input untouched."""
    if abs(rate - 1.0) < 1e-3 or len(samples) < 2048:
        return samples
    import librosa

    return librosa.effects.time_stretch(samples.astype(np.float32), rate=rate).astype(np.float32)


def cut(samples: np.ndarray, sr: int, duration_s: float) -> np.ndarray:
    """At most ``duration_s`` of audio, faded out where it was cut."""
    n = int(round(duration_s * sr))
    if len(samples) <= n:
        return samples
    out = samples[:n].copy()
    fade = min(n, int(FADE_S * sr))
    if fade:
        out[-fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
    return out


def fit_clip(samples: np.ndarray, sr: int, utterance: Utterance, window_end_s: float, options: TimingOptions) -> tuple[np.ndarray, Fit]:
    """Apply :func:`plan_fit` to real audio: the samples to place and how they were fitted."""
    fit = plan_fit(len(samples) / sr, utterance, window_end_s, options)
    fitted = stretch(samples, sr, fit.rate)
    return cut(fitted, sr, fit.end_s - fit.start_s), fit
