"""One output track per language: lines laid at their start times, loudness matched per speaker.

The track has exactly the input's duration. Each speaker's dubbed lines are brought to the RMS level that speaker
had in the source; an optional background bed is the source itself, ducked to silence under every line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from graph.audio import rms_db
from graph.types import Clip, Utterance

MAX_GAIN_DB = 20.0
PEAK = 0.98
DUCK_RAMP_S = 0.05


@dataclass(frozen=True)
class Placement:
    speaker: str
    start_s: float
    samples: np.ndarray  # already fitted, at the track's rate


def speaker_levels(source: Clip, utterances: Sequence[Utterance]) -> dict[str, float]:
    """RMS level (dB) of each speaker's lines in the source."""
    pieces: dict[str, list[np.ndarray]] = {}
    for u in utterances:
        pieces.setdefault(u.speaker, []).append(source.samples[int(u.start_s * source.sr) : int(u.end_s * source.sr)])
    return {speaker: rms_db(np.concatenate(parts)) for speaker, parts in pieces.items()}


def speaker_gains(placements: Sequence[Placement], targets_db: dict[str, float]) -> dict[str, float]:
    """Linear gain per speaker that brings their dubbed lines to their source level (bounded to +-20 dB)."""
    dubbed: dict[str, list[np.ndarray]] = {}
    for p in placements:
        if len(p.samples):
            dubbed.setdefault(p.speaker, []).append(p.samples)
    gains = {}
    for speaker, parts in dubbed.items():
        delta = targets_db.get(speaker, rms_db(np.concatenate(parts))) - rms_db(np.concatenate(parts))
        gains[speaker] = float(10 ** (np.clip(delta, -MAX_GAIN_DB, MAX_GAIN_DB) / 20))
    return gains


def ducked_background(source: np.ndarray, sr: int, utterances: Sequence[Utterance]) -> np.ndarray:
    """The source with every line's span faded to silence: what is left is the non-speech bed."""
    gain = np.ones(len(source), dtype=np.float32)
    ramp = max(1, int(DUCK_RAMP_S * sr))
    for u in utterances:
        a, b = max(0, int(u.start_s * sr) - ramp), min(len(source), int(u.end_s * sr) + ramp)
        gain[a:b] = 0.0
    kernel = np.ones(ramp, dtype=np.float32) / ramp
    return source * np.convolve(gain, kernel, mode="same").astype(np.float32)


def render_track(
    placements: Sequence[Placement], total_s: float, sr: int, levels_db: dict[str, float], background: np.ndarray | None = None
) -> np.ndarray:
    """Mix placed lines (and an optional bed at ``sr``) into a track of exactly ``total_s`` seconds."""
    n_samples = int(round(total_s * sr))
    track = np.zeros(n_samples, dtype=np.float32)
    if background is not None:
        track[: min(n_samples, len(background))] += background[:n_samples]
    gains = speaker_gains(placements, levels_db)
    for p in placements:
        start = int(round(p.start_s * sr))
        piece = p.samples[: max(0, n_samples - start)] * gains.get(p.speaker, 1.0)
        track[start : start + len(piece)] += piece
    peak = float(np.max(np.abs(track))) if n_samples else 0.0
    if peak > PEAK:
        track *= PEAK / peak
    return track
