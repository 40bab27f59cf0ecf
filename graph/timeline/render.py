"""One output track per language: lines laid at their start times, loudness matched per speaker.

The track has exactly the input's duration. Each speaker's dubbed lines are brought to the RMS level that speaker
had in the source; an optional background bed (``graph.timeline.bed``) goes under them in its own channel layout,
the voices placed in each channel by their gains.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from graph.audio import rms_db
from graph.types import Clip, Utterance

MAX_GAIN_DB = 20.0
PEAK = 0.98


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


def render_track(
    placements: Sequence[Placement],
    total_s: float,
    sr: int,
    levels_db: dict[str, float],
    background: np.ndarray | None = None,
    voice_gains: np.ndarray | None = None,
) -> np.ndarray:
    """Mix placed lines (and an optional bed at ``sr``) into a track of exactly ``total_s`` seconds.

    Mono, or (channels, n) when the bed is (channels, n): the voices go into channel c times ``voice_gains[c]``
    (all 1 when not given). The whole track is scaled down together if it would clip.
    """
    n_samples = int(round(total_s * sr))
    voices = np.zeros(n_samples, dtype=np.float32)
    gains = speaker_gains(placements, levels_db)
    for p in placements:
        start = int(round(p.start_s * sr))
        piece = p.samples[: max(0, n_samples - start)] * gains.get(p.speaker, 1.0)
        voices[start : start + len(piece)] += piece
    if background is None:
        track = voices
    else:
        bed = np.atleast_2d(background)
        spread = np.ones(bed.shape[0], np.float32) if voice_gains is None else np.asarray(voice_gains, np.float32)
        track = spread[:, None] * voices[None, :]
        track[:, : min(n_samples, bed.shape[1])] += bed[:, :n_samples]
        if background.ndim == 1:
            track = track[0]
    peak = float(np.max(np.abs(track))) if n_samples else 0.0
    if peak > PEAK:
        track *= PEAK / peak
    return track
