"""Per speaker, one clean reference clip: what voice cloning (conditionals) is computed from, once.

A good reference is the speaker alone (no other speaker's turn overlapping), not clipped, well above the noise
floor, 6-10 s long; the best such stretches are concatenated. The clip's content hash keys the conditionals
cache, so the same voice is never prepared twice.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from graph.types import Clip, SpeakerTurn, Utterance

FRAME_S = 0.025
MIN_SEGMENT_S = 0.4  # shorter stretches carry too little voice to be worth a seam
CLIP_LEVEL = 0.99
MAX_CLIPPED_FRACTION = 0.01
MIN_RMS_DB = -45.0
MIN_SNR_DB = 8.0


@dataclass(frozen=True)
class Reference:
    speaker: str
    clip: Clip
    key: str  # content hash of the reference audio: the conditionals cache key
    flags: tuple[str, ...] = ()


def content_key(samples: np.ndarray, sr: int) -> str:
    digest = hashlib.sha256(np.ascontiguousarray(samples, dtype=np.float32).tobytes())
    digest.update(str(sr).encode())
    return digest.hexdigest()[:24]


def _frame_db(samples: np.ndarray, sr: int) -> np.ndarray:
    hop = max(1, int(FRAME_S * sr))
    usable = len(samples) // hop * hop
    if usable == 0:
        return np.array([-120.0])
    frames = samples[:usable].reshape(-1, hop)
    return 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)


def quality(samples: np.ndarray, sr: int) -> tuple[float, tuple[str, ...]]:
    """(score, rejections) of one stretch of speech: SNR-like spread of frame energies, clipping, level."""
    frames = _frame_db(samples, sr)
    rejections = []
    if np.mean(np.abs(samples) >= CLIP_LEVEL) > MAX_CLIPPED_FRACTION:
        rejections.append("clipped")
    loud = float(np.percentile(frames, 90))
    if loud < MIN_RMS_DB:
        rejections.append("too_quiet")
    snr = loud - float(np.percentile(frames, 10))
    if snr < MIN_SNR_DB:
        rejections.append("low_snr")
    return snr, tuple(rejections)


def _subtract(span: tuple[float, float], others: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    pieces = [span]
    for o_start, o_end in others:
        pieces = [
            part
            for start, end in pieces
            for part in ((start, min(end, o_start)), (max(start, o_end), end))
            if part[1] - part[0] > 0
        ]
    return pieces


def solo_spans(speaker: str, utterances: Sequence[Utterance], turns: Sequence[SpeakerTurn]) -> list[tuple[float, float]]:
    """Where ``speaker`` talks (their lines) and nobody else's turn overlaps."""
    others = [(t.start_s, t.end_s) for t in turns if t.speaker != speaker]
    spans = [(u.start_s, u.end_s) for u in utterances if u.speaker == speaker]
    return [p for span in spans for p in _subtract(span, others) if p[1] - p[0] >= MIN_SEGMENT_S]


def pick_reference(
    source: Clip,
    speaker: str,
    utterances: Sequence[Utterance],
    turns: Sequence[SpeakerTurn],
    min_s: float = 6.0,
    max_s: float = 10.0,
) -> Reference:
    """The best solo stretches of one speaker, concatenated up to ``max_s``.

    Falls back to any of the speaker's lines (flagged ``overlapping_reference``) when no clean solo speech exists,
    and flags ``short_reference`` when less than ``min_s`` could be found.
    """
    flags: list[str] = []
    spans = solo_spans(speaker, utterances, turns)
    scored = []
    for start, end in spans:
        piece = source.samples[int(start * source.sr) : int(end * source.sr)]
        score, rejections = quality(piece, source.sr)
        if not rejections:
            scored.append((score, start, piece))
    if not scored:
        flags.append("overlapping_reference")
        scored = [
            (0.0, u.start_s, source.samples[int(u.start_s * source.sr) : int(u.end_s * source.sr)])
            for u in utterances
            if u.speaker == speaker
        ]
    chosen, total = [], 0
    for _, start, piece in sorted(scored, key=lambda item: -item[0]):
        chosen.append((start, piece[: int(max_s * source.sr) - total]))
        total += len(chosen[-1][1])
        if total >= int(max_s * source.sr):
            break
    samples = (
        np.concatenate([piece for _, piece in sorted(chosen, key=lambda item: item[0])]).astype(np.float32)
        if chosen
        else np.zeros(0, dtype=np.float32)
    )
    if len(samples) < min_s * source.sr:
        flags.append("short_reference")
    return Reference(speaker, Clip(samples, source.sr), content_key(samples, source.sr), tuple(flags))
