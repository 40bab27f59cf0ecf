"""One frozen options object per stage, converted from dicts (CLI, YAML, HTTP) only at the edges.

Unknown keys are rejected, never ignored; the options used are echoed into every manifest. Every field is
checked on construction against its type, and every number against its range (``bounded``), so a client
cannot ask for a million retries or beams: out of range is a ``BadInput`` naming the allowed range.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any, TypeVar

from graph.errors import BadInput
from graph.languages import language

T = TypeVar("T")
MAX_RATE = 4.0  # no speed-up beyond this is intelligible
MAX_MOVE_S = 1.0  # a line moved further than this from its source start is no longer in sync

MAX_SPEAKERS = 32
MAX_SEED = 2**32 - 1  # what numpy and torch generators take
MAX_TRACKS = 63  # audio streams of one input file, counted from 0 as ffmpeg does


def bounded(default: float | None, low: float, high: float) -> Any:
    """A numeric field accepting ``low <= value <= high`` (and None when the default is None)."""
    return field(default=default, metadata={"range": (low, high)})


class _Checked:
    """Checks every field's type, and range where it has one, when an options object is built."""

    def __post_init__(self) -> None:
        hints = _hints(type(self))
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if not _matches(value, hints[f.name]):
                raise ValueError(f"{f.name} must be {_describe(hints[f.name])}, got {value!r}")
            low, high = f.metadata.get("range", (None, None))
            if value is not None and low is not None and not low <= value <= high:
                raise ValueError(f"{f.name} must be from {_number(low)} to {_number(high)}, got {value!r}")


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _matches(value: Any, hint: Any) -> bool:
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in args)
    if typing.get_origin(hint) is tuple:
        return isinstance(value, tuple) and all(_matches(v, args[0]) for v in value)
    if hint is type(None):
        return value is None
    if hint in (int, float):  # bool is an int to Python, never to a user; floats must be finite
        numeric = isinstance(value, int) if hint is int else isinstance(value, (int, float)) and math.isfinite(value)
        return numeric and not isinstance(value, bool)
    return isinstance(value, hint)


def _describe(hint: Any) -> str:
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in args) + " or null"
    if typing.get_origin(hint) is tuple:
        return f"a list of {_describe(args[0])} values"
    names = {int: "a whole number", float: "a number", bool: "true or false", str: "text"}
    return names.get(hint, f"an object of {getattr(hint, '__name__', hint)} fields")


def _number(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


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
class AsrOptions(_Checked):
    language: str | None = None  # source language code; None = detect
    beam_size: int = bounded(5, 1, 10)
    vad_filter: bool = True  # skip non-speech before decoding (faster-whisper's Silero VAD)


@dataclass(frozen=True)
class DiarizeOptions(_Checked):
    num_speakers: int | None = bounded(None, 1, MAX_SPEAKERS)  # exact count when known
    min_speakers: int | None = bounded(None, 1, MAX_SPEAKERS)
    max_speakers: int | None = bounded(None, 1, MAX_SPEAKERS)

    def __post_init__(self):
        super().__post_init__()
        if self.min_speakers and self.max_speakers and self.min_speakers > self.max_speakers:
            raise ValueError(f"min_speakers ({self.min_speakers}) > max_speakers ({self.max_speakers})")


@dataclass(frozen=True)
class TranslateOptions(_Checked):
    n_best: int = bounded(4, 1, 8)  # candidates per line, so timing can pick a shorter one
    num_beams: int = bounded(4, 1, 16)
    max_batch: int = bounded(32, 1, 256)  # lines per model call


@dataclass(frozen=True)
class TtsOptions(_Checked):
    seed: int = bounded(0, 0, MAX_SEED)  # per-line seeds are hashed from (seed, line id): reruns are identical
    exaggeration: float = bounded(0.5, 0.0, 2.0)
    cfg_weight: float = bounded(0.5, 0.0, 1.0)
    temperature: float = bounded(0.8, 0.05, 5.0)
    reference_min_s: float = bounded(6.0, 1.0, 30.0)  # reference clip per speaker: 6-10 s of clean speech
    reference_max_s: float = bounded(10.0, 1.0, 60.0)

    def __post_init__(self):
        super().__post_init__()
        if self.reference_min_s > self.reference_max_s:
            raise ValueError(f"reference_min_s ({self.reference_min_s}) > reference_max_s ({self.reference_max_s})")


@dataclass(frozen=True)
class TimingOptions(_Checked):
    """Bounds of the timeline solver's remedies, tried in this order (graph/timeline/solver.py): a shorter
    candidate, faster synthesis and stretch up to ``max_stretch``, the silence after the line, starting up to
    ``max_preroll_s`` early, pushing the next line up to ``max_shift_s`` when its own pause absorbs it, a speed-up
    up to ``max_rate``, and only then a cut at a pause (recorded as ``lost_s``). Rates are speed-ups: 1.3 = 30 %
    faster than the voice's natural pace."""

    max_stretch: float = bounded(1.3, 1.0, MAX_RATE)  # speed-up allowed before any silence around the line is used
    min_stretch: float = bounded(1.0, 0.5, 1.0)  # < 1 slows lines shorter than their slot down to this rate; 1 = off
    borrow_silence: bool = True  # let a line run into the silence after its slot
    max_preroll_s: float = bounded(0.2, 0.0, MAX_MOVE_S)  # how much earlier than its source start a line may begin
    max_shift_s: float = bounded(0.3, 0.0, MAX_MOVE_S)  # how much later the next line may be pushed (no drift)
    max_rate: float = bounded(2.0, 1.0, MAX_RATE)  # hard bound on speed-up for the rare line no room fits; then a cut

    def __post_init__(self):
        super().__post_init__()
        if self.max_stretch > self.max_rate:
            raise ValueError(f"max_stretch ({self.max_stretch}) must not exceed max_rate ({self.max_rate})")


AUDIO_FORMATS = ("wav", "flac", "srt", "vtt")
VIDEO_FORMATS = ("mp4", "mov", "mkv", "webm")
SAME_CONTAINER = "video"  # the input's own container, when the input has a video stream (nothing otherwise)
FORMATS = AUDIO_FORMATS + VIDEO_FORMATS + (SAME_CONTAINER,)


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
class VideoOptions:
    """How video outputs are laid out (``formats`` says which containers)."""

    combined: bool = True  # one file carrying every language (dubbed.EXT); False: one file per language (LANG.EXT)
    original: bool = False  # also carry the source's own audio, as the last audio track


@dataclass(frozen=True)
class DubOptions(_Checked):
    targets: tuple[str, ...] = ("pt-br",)
    profile: str = "offline"
    asr: AsrOptions = field(default_factory=AsrOptions)
    diarize: DiarizeOptions = field(default_factory=DiarizeOptions)
    translate: TranslateOptions = field(default_factory=TranslateOptions)
    tts: TtsOptions = field(default_factory=TtsOptions)
    timing: TimingOptions = field(default_factory=TimingOptions)
    formats: tuple[str, ...] = AUDIO_FORMATS + (SAME_CONTAINER,)
    video: VideoOptions = field(default_factory=VideoOptions)
    background: bool = False  # mix the source's non-speech bed under the dub
    separation: bool = True  # the bed by source separation; False: the source ducked to silence under every line
    audio_track: int = bounded(0, 0, MAX_TRACKS)  # which audio stream of the input is dubbed (0 = the first)
    line_retries: int = bounded(1, 0, 5)  # a failed line is retried this many times, then flagged
    voices: VoiceOptions = field(default_factory=VoiceOptions)
    glossary: GlossaryOptions = field(default_factory=GlossaryOptions)

    def __post_init__(self):
        super().__post_init__()
        if not self.targets:
            raise ValueError("at least one target language is needed")
        bad = sorted(set(self.formats) - set(FORMATS))
        if bad:
            raise ValueError(f"unknown output format(s) {bad}; choose from {', '.join(FORMATS)}")


def add_media_flags(parser: argparse.ArgumentParser) -> None:
    """The background, audio track and video layout flags of both command lines (``dubgraph dub``, backfills)."""
    parser.add_argument("--background", action="store_true",
                        help="keep the source's music and effects under the dub (separated from the speech)")
    parser.add_argument("--no-separation", action="store_true",
                        help="with --background: duck the source to silence under every line instead of separating")
    parser.add_argument("--audio-track", type=int,
                        help="which audio track of the input to dub, 0 = the first (as ffmpeg counts); default 0")
    parser.add_argument("--video-per-language", action="store_true",
                        help="one video file per language (LANG.mp4) instead of one carrying every language")
    parser.add_argument("--original-track", action="store_true", help="videos also carry the source's own audio")


def media_options(args: argparse.Namespace, given: dict[str, Any] | None = None) -> dict[str, Any]:
    """DubOptions fields (plain data) from ``add_media_flags``' flags, over ``given`` (a file's options)."""
    data: dict[str, Any] = {}
    video = dict((given or {}).get("video") or {})
    if args.background:
        data["background"] = True
    if args.no_separation:
        data["separation"] = False
    if args.audio_track is not None:
        data["audio_track"] = args.audio_track
    if args.video_per_language:
        video["combined"] = False
    if args.original_track:
        video["original"] = True
    if video:
        data["video"] = video
    return data
