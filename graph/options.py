"""One frozen options object per stage, converted from dicts (CLI, YAML, HTTP) only at the edges.

Unknown keys are rejected, never ignored; the options used are echoed into every manifest.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
from typing import Any, TypeVar

from graph.errors import BadInput

T = TypeVar("T")
MAX_RATE = 4.0  # no speed-up beyond this is intelligible
MAX_MOVE_S = 1.0  # a line moved further than this from its source start is no longer in sync


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
    """Bounds of the timeline solver's remedies, tried in this order (graph/timeline/solver.py): a shorter
    candidate, faster synthesis and stretch up to ``max_stretch``, the silence after the line, starting up to
    ``max_preroll_s`` early, pushing the next line up to ``max_shift_s`` when its own pause absorbs it, a speed-up
    up to ``max_rate``, and only then a cut at a pause (recorded as ``lost_s``). Rates are speed-ups: 1.3 = 30 %
    faster than the voice's natural pace."""

    max_stretch: float = 1.3  # speed-up allowed before any silence around the line is used
    min_stretch: float = 1.0  # < 1 slows lines shorter than their slot down to fill it (to this rate); 1 = off
    borrow_silence: bool = True  # let a line run into the silence after its slot
    max_preroll_s: float = 0.2  # how much earlier than its source start a line may begin (into silence)
    max_shift_s: float = 0.3  # how much later the next line may be pushed (its own pause absorbs it; no drift)
    max_rate: float = 2.0  # hard bound on speed-up, for the rare line that no room fits; beyond it, a cut

    def __post_init__(self):
        numbers = ("max_stretch", "min_stretch", "max_preroll_s", "max_shift_s", "max_rate")
        wrong = [n for n in numbers if type(getattr(self, n)) not in (int, float)]
        if wrong:
            raise BadInput(f"bad timing options: {', '.join(wrong)} must be numbers")
        if not isinstance(self.borrow_silence, bool):
            raise BadInput(f"bad timing options: borrow_silence must be true or false, got {self.borrow_silence!r}")
        problems = []
        if not 1.0 <= self.max_stretch <= self.max_rate:
            problems.append(f"max_stretch must be between 1 and max_rate ({self.max_rate}), got {self.max_stretch}")
        if not 0.5 <= self.min_stretch <= 1.0:
            problems.append(f"min_stretch must be between 0.5 and 1 (1 = never slow down), got {self.min_stretch}")
        if not 1.0 <= self.max_rate <= MAX_RATE:
            problems.append(f"max_rate must be between 1 and {MAX_RATE}, got {self.max_rate}")
        for name in ("max_preroll_s", "max_shift_s"):
            value = getattr(self, name)
            if not 0.0 <= value <= MAX_MOVE_S:
                problems.append(f"{name} must be between 0 and {MAX_MOVE_S} s, got {value}")
        if problems:
            raise BadInput("bad timing options: " + "; ".join(problems))


AUDIO_FORMATS = ("wav", "flac", "srt", "vtt")
VIDEO_FORMATS = ("mp4", "mov", "mkv", "webm")
SAME_CONTAINER = "video"  # the input's own container, when the input has a video stream (nothing otherwise)
FORMATS = AUDIO_FORMATS + VIDEO_FORMATS + (SAME_CONTAINER,)


@dataclass(frozen=True)
class VideoOptions:
    """How video outputs are laid out (``formats`` says which containers)."""

    combined: bool = True  # one file carrying every language (dubbed.EXT); False: one file per language (LANG.EXT)
    original: bool = False  # also carry the source's own audio, as the last audio track


@dataclass(frozen=True)
class DubOptions:
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
    audio_track: int = 0  # which audio stream of the input is dubbed (0 = the first, as ffmpeg counts)
    line_retries: int = 1  # a failed line is retried this many times, then flagged

    def __post_init__(self):
        if not self.targets:
            raise ValueError("at least one target language is needed")
        bad = sorted(set(self.formats) - set(FORMATS))
        if bad:
            raise ValueError(f"unknown output format(s) {bad}; choose from {', '.join(FORMATS)}")
        if isinstance(self.audio_track, bool) or not isinstance(self.audio_track, int) or self.audio_track < 0:
            raise ValueError(f"audio_track must be a whole number >= 0 (0 = the first), got {self.audio_track!r}")


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
