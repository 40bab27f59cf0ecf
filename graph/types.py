"""Records that cross stages: frozen, cheap to pickle (numpy, never torch), one JSON form each.

Times are seconds (floats) at the edges; audio arrays are mono float32 with their sample rate beside them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np


def _json(obj: Any) -> dict:
    return {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj) if f.name != "samples"}


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return _json(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


@dataclass(frozen=True)
class Clip:
    """A mono float32 waveform; ``samples`` has shape (num_samples,)."""

    samples: np.ndarray
    sr: int

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sr


@dataclass(frozen=True)
class Word:
    text: str
    start_s: float
    end_s: float
    probability: float = 1.0

    def to_json(self) -> dict:
        return _json(self)


@dataclass(frozen=True)
class Transcript:
    """What ASR heard: the detected (or given) source language and every word with its time."""

    language: str
    words: tuple[Word, ...]

    def to_json(self) -> dict:
        return _json(self)


@dataclass(frozen=True)
class SpeakerTurn:
    speaker: str
    start_s: float
    end_s: float

    def to_json(self) -> dict:
        return _json(self)


@dataclass(frozen=True)
class Utterance:
    """One line of one speaker: the unit that is translated, synthesized and placed."""

    id: str
    speaker: str
    start_s: float
    end_s: float
    text: str

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    def to_json(self) -> dict:
        return _json(self)


@dataclass(frozen=True)
class Translation:
    """n-best translations of one utterance, best first (never empty)."""

    utterance_id: str
    language: str
    candidates: tuple[str, ...]

    def to_json(self) -> dict:
        return _json(self)


@dataclass(frozen=True)
class PlacedLine:
    """A synthesized line as it lands on the output timeline, and what the timeline solver did to it.

    ``text`` is what is spoken (a word prefix of ``candidates[chosen]`` when the line was cut); ``rate`` the
    effective speed-up (its natural duration / the duration it plays in), of which the synthesizer gave ``pace``
    and a pitch-preserving ``stretch`` the rest; ``onset_s``/``offset_s`` where its speech is heard in the
    rendered audio (None where it cannot be told apart from a neighbour).
    """

    utterance_id: str
    speaker: str
    language: str
    source_start_s: float
    source_end_s: float
    source_text: str
    text: str
    candidates: tuple[str, ...]
    chosen: int
    start_s: float
    end_s: float
    stretch: float
    flags: tuple[str, ...] = ()
    rate: float = 1.0
    pace: float = 1.0
    remedy: str = "none"  # the last remedy the line needed (graph/timeline/solver.py REMEDIES)
    preroll_s: float = 0.0
    shift_s: float = 0.0
    lost_s: float = 0.0
    natural_s: float = 0.0
    onset_s: float | None = None
    offset_s: float | None = None

    def to_json(self) -> dict:
        return _json(self)


@dataclass(frozen=True)
class LanguageOutput:
    """Files written for one target language."""

    language: str
    files: dict[str, str] = field(default_factory=dict)
    lines: tuple[PlacedLine, ...] = ()

    def to_json(self) -> dict:
        return _json(self)
