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
    track = mix_track(placements, total_s, sr, speaker_gains(placements, levels_db), background, voice_gains)
    return limit_peak(track)[0]


def mix_track(
    placements: Sequence[Placement],
    total_s: float,
    sr: int,
    gains: dict[str, float],
    background: np.ndarray | None = None,
    voice_gains: np.ndarray | None = None,
) -> np.ndarray:
    """``render_track`` before its peak limit, each speaker at the given linear gain (1 when not given)."""
    n_samples = int(round(total_s * sr))
    voices = np.zeros(n_samples, dtype=np.float32)
    for p in placements:
        start = int(round(p.start_s * sr))
        piece = p.samples[: max(0, n_samples - start)] * gains.get(p.speaker, 1.0)
        voices[start : start + len(piece)] += piece
    if background is None:
        return voices
    bed = np.atleast_2d(background)
    spread = np.ones(bed.shape[0], np.float32) if voice_gains is None else np.asarray(voice_gains, np.float32)
    track = spread[:, None] * voices[None, :]
    track[:, : min(n_samples, bed.shape[1])] += bed[:, :n_samples]
    return track[0] if background.ndim == 1 else track


def limit_peak(track: np.ndarray, scale: float = 1.0) -> tuple[np.ndarray, float]:
    """The track scaled by ``scale``, or less when that would take its peak above ``PEAK``; and the scale used.

    A re-render passes the last render's scale, so the lines it does not change keep their samples unless the new
    mix needs more headroom."""
    peak = float(np.max(np.abs(track))) if track.size else 0.0
    scale = min(scale, PEAK / peak) if peak * scale > PEAK else scale
    if scale != 1.0:
        track *= np.float32(scale)
    return track, scale
