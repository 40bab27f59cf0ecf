"""Where lines are heard: onsets and ends found in rendered audio by their energy, never read from a plan.

The pipeline measures each line on a bed-free stem of lines far enough apart to tell each one's edges (the
manifest's ``onset_s`` and ``offset_s``); the tests and the bench measure the written tracks the same way. A frame is speech when it is within
``SPEECH_DB`` of the loudest frame of the line's planned span and above ``FLOOR_DB``. An onset is the first speech
frame after silence near the planned start; when sound runs without a silent frame into the window (another line
right before it, or two speakers at once), the onset cannot be heard apart and is None. Ends likewise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from graph.timeline.render import Placement, render_track

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
    """Each placed line as heard on a bed-free stem, rendered like the track, of lines at least ``SEARCH_S`` apart
    (so neither a line right before it nor another speaker at the same time hides its edges)."""
    spans = [(p.start_s, p.start_s + len(p.samples) / sr) for p in placements]
    stems: list[list[int]] = []
    for i in sorted(range(len(spans)), key=lambda i: spans[i]):
        stem = next((g for g in stems if spans[i][0] - max(spans[j][1] for j in g) >= SEARCH_S), None)
        if stem is None:
            stems.append([i])
        else:
            stem.append(i)
    heard = [Heard(None, None)] * len(spans)
    for stem in stems:
        track = render_track([placements[i] for i in stem], total_s, sr, {})
        for i, h in zip(stem, measure_lines(track, sr, [spans[i] for i in stem])):
            heard[i] = h
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
