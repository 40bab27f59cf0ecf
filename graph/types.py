"""Records that cross stages: frozen, cheap to pickle (numpy, never torch), one JSON form each.

Times are seconds (floats) at the edges; audio arrays are mono float32 with their sample rate beside them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from graph.errors import BadInput

NUMERIC_KINDS = "biufc"  # numpy dtype kinds of numeric arrays: bool, int, uint, float, complex


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
    """n-best translations of one utterance, best first (never empty); ``flags`` say what the glossary step did
    ("glossary_split": translated in pieces around its terms, "term_missing": a required term is not there)."""

    utterance_id: str
    language: str
    candidates: tuple[str, ...]
    flags: tuple[str, ...] = ()

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


@dataclass(frozen=True)
class VoiceConditionals:
    """A speaker's voice as a synthesizer prepared it, in plain data: what every line of that speaker is voiced from.

    ``kind`` names the synthesizer family that made it ("chatterbox", "espeak"; only that family can use it) and
    ``model`` the model it was made with. ``arrays`` are numeric numpy arrays (dtypes as the model made them);
    ``meta`` small scalars. No model library objects inside: it pickles cheaply for Ray, unpickles without
    importing the synthesizer's library, and is stored on disk by ``graph.plain`` without pickle.
    """

    kind: str
    model: str
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    meta: dict[str, str | int | float | bool | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.kind, str) or not isinstance(self.model, str):
            raise BadInput(f"voice conditionals need a kind and a model name (str), got {self.kind!r}, {self.model!r}")
        if not isinstance(self.arrays, dict) or not isinstance(self.meta, dict):
            raise BadInput("voice conditionals need dicts of arrays and of meta values")
        for name, array in self.arrays.items():
            numeric = isinstance(array, np.ndarray) and array.dtype.kind in NUMERIC_KINDS
            if not isinstance(name, str) or not numeric:
                raise BadInput(f"voice conditionals {name!r}: expected a numeric numpy array, got {type(array).__name__}")
        for name, value in self.meta.items():
            if not isinstance(name, str) or not (value is None or isinstance(value, (str, int, float, bool))):
                raise BadInput(f"voice conditionals meta {name!r}: expected a scalar, got {type(value).__name__}")


def voice_for(kind: str, conditionals: Any) -> VoiceConditionals:
    """``conditionals`` when a synthesizer of ``kind`` made them, else BadInput saying what to do."""
    if not isinstance(conditionals, VoiceConditionals):
        raise BadInput(f"the {kind} synthesizer takes VoiceConditionals from its prepare, not a "
                       f"{type(conditionals).__name__}")
    if conditionals.kind != kind:
        raise BadInput(f"these voice conditionals were made by the {conditionals.kind} synthesizer "
                       f"({conditionals.model}); prepare the voice again with the {kind} synthesizer")
    return conditionals


@dataclass(frozen=True)
class SpeakerEmbedding:
    """A voice as a speaker-embedding model sees it: comparable (cosine) only with the same model's embeddings.

    ``vector`` is unit length, shape (dim,); ``threshold`` is the cosine similarity above which ``model`` calls two
    clips one speaker (the model's own default; a job may set another).
    """

    model: str
    vector: np.ndarray
    threshold: float

    def __post_init__(self) -> None:
        vector = self.vector
        if not isinstance(vector, np.ndarray) or vector.ndim != 1 or vector.dtype.kind != "f" or not vector.size:
            raise BadInput(f"a speaker embedding is a 1-D float array, got {getattr(vector, 'shape', vector)!r}")
        if not np.isfinite(vector).all():
            raise BadInput(f"the speaker embedding of {self.model} is not finite (was the clip long enough?)")
