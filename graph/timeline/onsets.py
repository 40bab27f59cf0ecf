"""Where lines are heard: onsets and ends found in rendered audio by their energy, never read from a plan.

The pipeline measures each line on its own bed-free stem (the manifest's ``onset_s`` and ``offset_s``); the tests
and the bench measure the written tracks the same way. A frame is speech when it is within
``SPEECH_DB`` of the loudest frame of the line's planned span and above ``FLOOR_DB``. An onset is the first speech
frame after silence near the planned start; when sound runs without a silent frame into the window (another line
right before it, or two speakers at once), the onset cannot be heard apart and is None. Ends likewise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from graph.timeline.render import Placement

FRAME_S = 0.005
SPEECH_DB = 35.0
FLOOR_DB = -65.0
SEARCH_S = 0.35  # how far from its planned time an onset or end is looked for (covers pre-roll and shifts)


@dataclass(frozen=True)
class Heard:
    onset_s: float | None  # None: not separable from the sound around it
    end_s: float | None


def frame_db(samples: np.ndarray, sr: int, frame_s: float = FRAME_S) -> np.ndarray:
    """RMS level of consecutive frames of ``frame_s`` (the last one partial), in dBFS; shape (n_frames,)."""
    hop = max(1, int(round(frame_s * sr)))
    x = np.asarray(samples, dtype=np.float64)
    n = -(-len(x) // hop)
    padded = np.zeros(n * hop)
    padded[: len(x)] = x
    power = np.mean(padded.reshape(n, hop) ** 2, axis=1) if n else np.zeros(0)
    return 10 * np.log10(np.maximum(power, 1e-12))


def speech_span(samples: np.ndarray, sr: int) -> tuple[float, float] | None:
    """(first, last) second of speech in a clip; None when it has none."""
    levels = frame_db(samples, sr)
    if not len(levels) or levels.max() < FLOOR_DB:
        return None
    loud = np.flatnonzero(levels >= max(levels.max() - SPEECH_DB, FLOOR_DB))
    hop = int(round(FRAME_S * sr)) / sr
    return float(loud[0] * hop), float(min((loud[-1] + 1) * hop, len(samples) / sr))


def measure_lines(track: np.ndarray, sr: int, spans: Sequence[tuple[float, float]],
                  search_s: float = SEARCH_S) -> list[Heard]:
    """Per planned (start, end) span, where its speech is heard in ``track``: onset and end in seconds."""
    levels = frame_db(track, sr)
    hop = int(round(FRAME_S * sr)) / sr
    out = []
    for i, (start, end) in enumerate(spans):
        before = [e for j, (s, e) in enumerate(spans) if j != i and s <= start]
        after = [s for j, (s, _) in enumerate(spans) if j != i and s > start]
        first, last = int(start / hop), max(int(start / hop) + 1, int(np.ceil(end / hop)))
        if first >= len(levels) or end <= start:
            out.append(Heard(None, None))
            continue
        threshold = max(levels[first:last].max() - SPEECH_DB, FLOOR_DB)
        lo = max(start - search_s, max(before, default=0.0), 0.0)
        onset = _first_rise(levels, int(np.ceil(lo / hop)), int((start + min(search_s, end - start)) / hop), threshold)
        hi = min(end + search_s, min(after, default=len(track) / sr))
        fall = _last_fall(levels, int(max(start, end - search_s) / hop), int(hi / hop), threshold)
        out.append(Heard(None if onset is None else onset * hop, None if fall is None else fall * hop))
    return out


def measure_placed(placements: Sequence[Placement], total_s: float, sr: int) -> list[Heard]:
    """Each placed line heard on its own stem (the samples it adds to the track, where it adds them, up to the
    track's end), so neither a line right before it nor another speaker at the same time hides its edges."""
    pad, n_track = int(SEARCH_S * sr), int(round(total_s * sr))
    heard = []
    for p in placements:
        start = int(round(p.start_s * sr))
        samples = np.asarray(p.samples[: max(0, n_track - start)], dtype=np.float32)
        stem = np.concatenate([np.zeros(pad, np.float32), samples, np.zeros(pad, np.float32)])
        h = measure_lines(stem, sr, [(pad / sr, (pad + len(samples)) / sr)])[0]
        at = (start - pad) / sr
        heard.append(Heard(None if h.onset_s is None else h.onset_s + at, None if h.end_s is None else h.end_s + at))
    return heard


def _first_rise(levels: np.ndarray, lo: int, hi: int, threshold: float) -> int | None:
    """The first frame at or above ``threshold`` in [lo, hi), when the frame at ``lo`` is below it."""
    window = levels[max(lo, 0) : min(hi, len(levels))]
    if not len(window) or window[0] >= threshold:
        return None
    loud = np.flatnonzero(window >= threshold)
    return int(max(lo, 0) + loud[0]) if len(loud) else None


def _last_fall(levels: np.ndarray, lo: int, hi: int, threshold: float) -> int | None:
    """The frame after the last one at or above ``threshold`` in [lo, hi), when the frame before ``hi`` is below."""
    window = levels[max(lo, 0) : min(hi, len(levels))]
    if not len(window) or window[-1] >= threshold:
        return None
    loud = np.flatnonzero(window >= threshold)
    return int(max(lo, 0) + loud[-1] + 1) if len(loud) else None
