"""Video out: the input's video copied bit for bit, one dubbed audio track and one subtitle track per language.

ffmpeg muxes and nothing is re-encoded but the new audio (``-c:v copy``). A/V sync: every dubbed track starts
where the video starts and lasts exactly as long (``aligned``: the dub's timeline begins at the source audio's
first sample, which may sit before or after the video's first frame), and subtitles keep the dub's timeline.
Audio tracks carry ISO 639-2 language tags (/T in MP4 and MOV, /B in Matroska and WebM) and a title; the first
target language is the default track; the source's own audio can ride along as the last track.
Each file is muxed under a hidden temporary name beside its final one and renamed when complete: a reader never
sees half a video, and a failure leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from graph.errors import BadInput, DubError, OutputNotWritable
from graph.ffmpeg import ffprobe, last_error, no_ffmpeg, url
from graph.ffmpeg_input import input_options
from graph.languages import LANGUAGES, Language
from graph.options import SAME_CONTAINER, VIDEO_FORMATS, VideoOptions

log = logging.getLogger(__name__)

COMBINED_STEM = "dubbed"  # the one file carrying every language: dubbed.mp4
MUX_TIMEOUT_S = 3600.0
ENTRIES = ("format=format_name,start_time,duration:stream=index,codec_type,codec_name,start_time,duration"
           ":stream_disposition=attached_pic")


@dataclass(frozen=True)
class Container:
    name: str  # the format name users give, and the file suffix
    muxer: str  # ffmpeg -f
    audio_codec: str  # encoder for the dubbed tracks
    subtitle_codec: str
    copies_audio: frozenset[str]  # source audio codecs carried as they are (original track); others are encoded
    video_codecs: frozenset[str] | None = None  # the only video codecs it holds (None: anything ffmpeg can mux)
    matroska_tags: bool = False  # ISO 639-2/B language tags instead of /T


CONTAINERS = {
    "mp4": Container("mp4", "mp4", "aac", "mov_text", frozenset({"aac", "mp3", "ac3", "eac3", "alac", "opus", "flac"})),
    "mov": Container("mov", "mov", "aac", "mov_text", frozenset({"aac", "mp3", "ac3", "alac", "pcm_s16le", "pcm_s24le"})),
    "mkv": Container("mkv", "matroska", "aac", "srt", frozenset({"aac", "mp3", "ac3", "eac3", "dts", "truehd", "opus",
                                                                  "vorbis", "flac", "pcm_s16le", "pcm_s24le"}),
                     matroska_tags=True),
    "webm": Container("webm", "webm", "libopus", "webvtt", frozenset({"opus", "vorbis"}),
                      frozenset({"vp8", "vp9", "av1"}), matroska_tags=True),
}
SUFFIXES = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "mkv", ".webm": "webm"}


@dataclass(frozen=True)
class VideoInfo:
    """The video side of an input, and where the dubbed audio track sits in time (seconds, the file's timeline)."""

    container: str  # the input's own container: "mp4", "mov", "mkv" or "webm"
    codecs: tuple[str, ...]  # of its video streams (cover art excluded)
    start_s: float  # the first video stream's start
    duration_s: float
    file_start_s: float  # the earliest stream's start: ffmpeg's zero when it writes the output
    audio_start_s: float  # start of the audio track that is dubbed
    audio_codec: str


def probe_video(path: str | Path, track: int = 0) -> VideoInfo | None:
    """The input's video streams and timing; None for audio (a still cover picture is not a video)."""
    path = Path(path)
    data = ffprobe(path, ENTRIES)
    streams = data.get("streams") or []
    videos = [s for s in streams if s.get("codec_type") == "video" and not (s.get("disposition") or {}).get("attached_pic")]
    if not videos:
        return None
    audios = [s for s in streams if s.get("codec_type") == "audio"]
    sound = audios[track] if 0 <= track < len(audios) else {}
    fmt = data.get("format") or {}
    first = videos[0]
    start = _seconds(first.get("start_time"), 0.0)
    duration = _seconds(first.get("duration"), None) or _seconds(fmt.get("duration"), 0.0) - start
    return VideoInfo(
        container=_container(path, str(fmt.get("format_name") or "")),
        codecs=tuple(str(s.get("codec_name") or "unknown") for s in videos),
        start_s=start,
        duration_s=duration,
        file_start_s=_seconds(fmt.get("start_time"), 0.0),
        audio_start_s=_seconds(sound.get("start_time"), start),
        audio_codec=str(sound.get("codec_name") or ""),
    )


def video_formats(formats: tuple[str, ...], info: VideoInfo | None, path: str | Path) -> tuple[str, ...]:
    """The containers to write: ``video`` becomes the input's own (nothing for audio input); each is checked."""
    explicit = [f for f in formats if f in VIDEO_FORMATS]
    if info is None and not explicit:
        return ()
    if info is None:
        raise BadInput(f"{Path(path).name} has no video stream, so there is nothing to write {', '.join(explicit)} "
                       "from; ask for audio formats (wav, flac) and subtitles (srt, vtt) instead")
    wanted = [info.container if f == SAME_CONTAINER else f for f in formats if f in VIDEO_FORMATS or f == SAME_CONTAINER]
    for name in dict.fromkeys(wanted):
        allowed = CONTAINERS[name].video_codecs
        bad = [c for c in info.codecs if allowed is not None and c not in allowed]
        if bad:
            raise BadInput(f"{name} holds only {', '.join(sorted(allowed))} video, and {Path(path).name} has "
                           f"{', '.join(bad)}; the video is copied, never re-encoded: choose mp4, mkv or mov")
    return tuple(dict.fromkeys(wanted))


@dataclass(frozen=True)
class DubTrack:
    """One language's dubbed audio, staged for muxing: raw interleaved float32 aligned to the video."""

    language: str
    path: Path
    sr: int
    channels: int
    subtitles: str  # SRT, on the dub's own timeline


def stage_track(out_dir: Path, lang: str, track: np.ndarray, sr: int, info: VideoInfo, subtitles: str) -> DubTrack:
    """Write ``track`` ((n,) or (channels, n), the dub's timeline) cut to the video's span, as a hidden raw file."""
    samples = np.atleast_2d(np.asarray(track, dtype=np.float32))
    aligned = _aligned(samples, sr, info.start_s - info.audio_start_s, info.duration_s)
    path = out_dir / f".{lang}.{uuid.uuid4().hex[:8]}.f32"
    try:
        np.ascontiguousarray(aligned.T).tofile(path)
    except OSError as exc:
        path.unlink(missing_ok=True)
        raise OutputNotWritable(f"cannot write {path}: {exc.strerror or exc}; check free disk space") from None
    return DubTrack(lang, path, sr, samples.shape[0], subtitles)


def write_video(
    target: Path, source: Path, info: VideoInfo, tracks: list[DubTrack], original: int | None, source_language: str
) -> Path:
    """Mux ``source``'s video with the dubbed ``tracks`` (first = default) into ``target``, atomically.

    ``original``: the index of the source audio track to carry as the last audio track, or None.
    """
    box = CONTAINERS[target.suffix.lstrip(".")]
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}.part")
    with tempfile.TemporaryDirectory(prefix=".subs-", dir=target.parent) as subs_dir:
        cmd = ["ffmpeg", "-nostdin", "-hide_banner", "-v", "error", "-y", *input_options(), "-i", url(source)]
        audio_offset, subs_offset = info.start_s - info.file_start_s, info.audio_start_s - info.file_start_s
        for t in tracks:
            cmd += ["-itsoffset", f"{audio_offset:.6f}", "-f", "f32le", "-ar", str(t.sr), "-ac", str(t.channels),
                    "-i", url(t.path)]
        subtitled = [t for t in tracks if t.subtitles.strip()]  # a language whose every line failed has none
        for i, t in enumerate(subtitled):
            srt = Path(subs_dir) / f"{i}.srt"
            srt.write_text(t.subtitles, encoding="utf-8")
            cmd += ["-itsoffset", f"{subs_offset:.6f}", "-i", url(srt)]
        cmd += ["-map", "0:v", "-c:v", "copy", "-map_metadata", "0", "-map_chapters", "0"]
        cmd += [arg for i in range(len(tracks)) for arg in ("-map", f"{1 + i}:a")]
        if original is not None:
            cmd += ["-map", f"0:a:{original}"]
        cmd += [arg for i in range(len(subtitled)) for arg in ("-map", f"{1 + len(tracks) + i}:s")]
        for i, t in enumerate(tracks):
            lang = LANGUAGES[t.language]
            cmd += [f"-c:a:{i}", box.audio_codec, f"-b:a:{i}", f"{max(96, 64 * t.channels)}k",
                    f"-disposition:a:{i}", "default" if i == 0 else "0"]
            cmd += _labels(f"a:{i}", lang, f"{lang.name} (dubbed)", box)
        for i, t in enumerate(subtitled):
            lang = LANGUAGES[t.language]
            cmd += [f"-c:s:{i}", box.subtitle_codec, f"-disposition:s:{i}", "0"] + _labels(f"s:{i}", lang, lang.name, box)
        if original is not None:
            k = len(tracks)
            spoken = LANGUAGES.get(source_language)
            copy = info.audio_codec in box.copies_audio
            cmd += [f"-c:a:{k}", "copy" if copy else box.audio_codec, f"-disposition:a:{k}", "0"]
            cmd += _labels(f"a:{k}", spoken, f"Original{f' ({spoken.name})' if spoken else ''}", box)
        if box.muxer in ("mp4", "mov"):
            cmd += ["-movflags", "+faststart"]
        cmd += ["-f", box.muxer, url(tmp)]
        try:
            _run(cmd, target)
            os.replace(tmp, target)
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
    log.debug("wrote %s: %d dubbed track(s)%s", target, len(tracks), " + original" if original is not None else "")
    return target


def write_videos(
    out_dir: Path, source: Path, info: VideoInfo, containers: tuple[str, ...], tracks: list[DubTrack],
    options: VideoOptions, audio_track: int, source_language: str,
) -> dict[str, dict[str, str]]:
    """Every video output: ``{"dubbed": {fmt: name}}`` (combined) or ``{lang: {fmt: name}}``; staged tracks removed."""
    original = audio_track if options.original else None
    written: dict[str, dict[str, str]] = {}
    try:
        for fmt in containers:
            groups = [(COMBINED_STEM, tracks)] if options.combined else [(t.language, [t]) for t in tracks]
            for stem, group in groups:
                target = write_video(out_dir / f"{stem}.{fmt}", source, info, group, original, source_language)
                written.setdefault(stem, {})[fmt] = target.name
    finally:
        for t in tracks:
            t.path.unlink(missing_ok=True)
    return written


def _aligned(samples: np.ndarray, sr: int, offset_s: float, duration_s: float) -> np.ndarray:
    """The part of the dub under the video: starting ``offset_s`` into it (silence before it starts, or after
    it ends), exactly ``duration_s`` long."""
    n = int(round(duration_s * sr))
    out = np.zeros((samples.shape[0], n), dtype=np.float32)
    first = int(round(offset_s * sr))
    src_from, dst_from = max(0, first), max(0, -first)
    count = max(0, min(samples.shape[1] - src_from, n - dst_from))
    out[:, dst_from : dst_from + count] = samples[:, src_from : src_from + count]
    return out


def _labels(stream: str, lang: Language | None, title: str, box: Container) -> list[str]:
    """Language tag and title of one output stream (MP4/MOV show a track's title as its handler name)."""
    tags = [f"title={title}"] + ([f"handler_name={title}"] if box.muxer in ("mp4", "mov") else [])
    if lang is not None:
        tags.append(f"language={lang.iso639_2b if box.matroska_tags else lang.iso639_2}")
    return [arg for tag in tags for arg in (f"-metadata:s:{stream}", tag)]


def _container(path: Path, format_name: str) -> str:
    if path.suffix.lower() in SUFFIXES:
        return SUFFIXES[path.suffix.lower()]
    return "mkv" if "matroska" in format_name else "mp4"  # anything else (avi, ts...) goes into MP4


def _seconds(value: object, default: float | None) -> float | None:
    try:
        result = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return default
    return result if np.isfinite(result) else default


def _run(cmd: list[str], target: Path) -> None:
    with tempfile.TemporaryFile() as stderr:
        try:
            proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr,
                                  timeout=MUX_TIMEOUT_S, check=False)
        except FileNotFoundError:
            raise no_ffmpeg("ffmpeg") from None
        except subprocess.TimeoutExpired:
            raise DubError(f"ffmpeg did not finish writing {target.name} in {MUX_TIMEOUT_S:.0f} s") from None
        if proc.returncode != 0:
            stderr.seek(0)
            raise DubError(f"ffmpeg could not write {target.name}: {last_error(stderr.read(), target) or 'unknown error'}")
