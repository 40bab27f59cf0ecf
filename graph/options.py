"""One frozen options object per stage, converted from dicts (CLI, YAML, HTTP) only at the edges.

Unknown keys are rejected, never ignored; the options used are echoed into every manifest.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, TypeVar

from graph.errors import BadInput
from graph.languages import language

T = TypeVar("T")


def from_dict(cls: type[T], data: dict[str, Any] | None) -> T:
    """Build a (possibly nested) options dataclass from plain data, rejecting unknown fields."""
    data = dict(data or {})
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise BadInput(f"unknown {cls.__name__} field(s): {', '.join(unknown)}; known: {', '.join(sorted(fields))}")
    kwargs = {}
    for name, value in data.items():
        default = fields[name].default_factory if fields[name].default_factory is not dataclasses.MISSING else None
        sub = type(default()) if default is not None else None
        if sub is not None and dataclasses.is_dataclass(sub) and isinstance(value, dict):
            value = from_dict(sub, value)
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[name] = value
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise BadInput(f"invalid {cls.__name__}: {exc}") from None


def to_dict(options: Any) -> dict[str, Any]:
    return dataclasses.asdict(options)


DECODE_PRESETS = ("auto", "fast", "exact")  # how a synthesizer decodes (actors/chatterbox/batch_t3.py: preset)


@dataclass(frozen=True)
class AsrOptions:
    language: str | None = None  # source language code; None = detect
    beam_size: int = 5
    vad_filter: bool = True  # skip non-speech before decoding (faster-whisper's Silero VAD)


@dataclass(frozen=True)
class DiarizeOptions:
    num_speakers: int | None = None  # exact count when known
    min_speakers: int | None = None
    max_speakers: int | None = None

    def __post_init__(self):
        for name in ("num_speakers", "min_speakers", "max_speakers"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.min_speakers and self.max_speakers and self.min_speakers > self.max_speakers:
            raise ValueError(f"min_speakers ({self.min_speakers}) > max_speakers ({self.max_speakers})")


@dataclass(frozen=True)
class TranslateOptions:
    n_best: int = 4  # candidates per line, so timing can pick a shorter one
    num_beams: int = 4
    max_batch: int = 32  # lines per model call


@dataclass(frozen=True)
class TtsOptions:
    seed: int = 0  # per line: seed + line index, so reruns are identical
    exaggeration: float = 0.5
    cfg_weight: float = 0.5
    temperature: float = 0.8
    reference_min_s: float = 6.0  # reference clip per speaker: 6-10 s of clean speech
    reference_max_s: float = 10.0


@dataclass(frozen=True)
class TimingOptions:
    min_stretch: float = 0.8  # playback-rate bounds of the pitch-preserving stretch
    max_stretch: float = 1.25
    borrow_silence: bool = True  # let a line run into the silence after its slot
    start_tolerance_s: float = 0.02


MAX_TERMS = 5000  # entries per glossary table (terms of one language, keep, pronunciations of one language)
MAX_TERM_CHARS = 200


@dataclass(frozen=True)
class VoiceOptions:
    """Which voice each speaker gets besides a reference clip the job brings (``DubJob.references``).

    ``library``: speaker -> name of a voice in the voice library. ``match``: every other speaker gets the library
    voice whose speaker embedding is closest to theirs, when the cosine similarity reaches ``match_threshold``
    (None: the embedding model's own threshold), each library voice at most one speaker per job.
    """

    library: dict[str, str] = field(default_factory=dict)
    match: bool = False
    match_threshold: float | None = None

    def __post_init__(self):
        if not isinstance(self.library, dict) or not all(
                isinstance(k, str) and k.strip() and isinstance(v, str) and v.strip()
                for k, v in self.library.items()):
            raise BadInput("voices.library maps speaker labels to library voice names (both non-empty text)")
        threshold = self.match_threshold
        if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, (int, float))
                                      or not -1.0 <= threshold <= 1.0):
            raise BadInput(f"voices.match_threshold is a cosine similarity between -1 and 1, got {threshold!r}")


@dataclass(frozen=True)
class GlossaryOptions:
    """Words the user controls, per target language.

    ``terms``: language -> {source term: target term}, enforced in every translation (graph/timeline/glossary.py);
    ``keep``: terms never translated, in any language (names, brands); ``pronounce``: language -> {word: how to
    say it} (a respelling; for espeak-ng also its phonemes in ``[[...]]``), applied only to the text the synthesizer
    speaks, never to subtitles. Language codes are dubgraph's (``dubgraph models`` lists them).
    """

    terms: dict[str, dict[str, str]] = field(default_factory=dict)
    keep: tuple[str, ...] = ()
    pronounce: dict[str, dict[str, str]] = field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "terms", _per_language(self.terms, "glossary terms"))
        object.__setattr__(self, "pronounce", _per_language(self.pronounce, "pronunciations"))
        if not isinstance(self.keep, (tuple, list)):
            raise BadInput("glossary keep is a list of terms left untranslated")
        object.__setattr__(self, "keep", tuple(_term(t, "glossary keep") for t in self.keep))
        if len(self.keep) > MAX_TERMS:
            raise BadInput(f"glossary keep has {len(self.keep)} terms; at most {MAX_TERMS}")


def _per_language(tables: object, what: str) -> dict[str, dict[str, str]]:
    """``tables`` with each language code checked and normalised ("PT_BR" -> "pt-br") and each entry checked."""
    if not isinstance(tables, dict):
        raise BadInput(f'{what} map a language code to a table of words, e.g. {{"pt-br": {{"meeting": "reunião"}}}}')
    out: dict[str, dict[str, str]] = {}
    for code, table in tables.items():
        lang = language(str(code), what=what).code
        if not isinstance(table, dict) or len(table) > MAX_TERMS:
            raise BadInput(f"{what} for {lang}: a table of at most {MAX_TERMS} words -> replacements")
        out[lang] = {_term(k, what): _term(v, what) for k, v in table.items()}
    return out


def _term(value: object, what: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_TERM_CHARS:
        raise BadInput(f"{what}: every word is non-empty text of at most {MAX_TERM_CHARS} characters, got {value!r}")
    return value.strip()


@dataclass(frozen=True)
class DubOptions:
    targets: tuple[str, ...] = ("pt-br",)
    profile: str = "offline"
    asr: AsrOptions = field(default_factory=AsrOptions)
    diarize: DiarizeOptions = field(default_factory=DiarizeOptions)
    translate: TranslateOptions = field(default_factory=TranslateOptions)
    tts: TtsOptions = field(default_factory=TtsOptions)
    timing: TimingOptions = field(default_factory=TimingOptions)
    formats: tuple[str, ...] = ("wav", "flac", "srt", "vtt")
    background: bool = False  # mix the source's non-speech bed under the dub
    line_retries: int = 1  # a failed line is retried this many times, then flagged
    voices: VoiceOptions = field(default_factory=VoiceOptions)
    glossary: GlossaryOptions = field(default_factory=GlossaryOptions)

    def __post_init__(self):
        if not self.targets:
            raise ValueError("at least one target language is needed")
        bad = sorted(set(self.formats) - {"wav", "flac", "srt", "vtt"})
        if bad:
            raise ValueError(f"unknown output format(s) {bad}; choose from wav, flac, srt, vtt")
