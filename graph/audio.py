"""Audio at the edge: decode anything ffmpeg reads into float32 (mono, or every channel), resample, write.

Every stage after this one receives numpy arrays, never paths or file-like objects. ffmpeg/ffprobe do the
decoding (one code path for every container, downmix and resampling included); each failure becomes a
``BadAudio`` or ``AudioTooLarge`` whose message says what to do, never a raw subprocess error. A file with
several audio tracks is read from one of them: the first unless ``track`` names another (0-based, as ffmpeg
counts ``0:a:N``).

Inputs are untrusted: ffmpeg reads them only as local files through container demuxers (``graph.ffmpeg_input``),
and memory is bounded by what comes out: one channel (or the file's channels, at most ``MAX_CHANNELS``), at most
``MAX_SOURCE_SR`` samples a second, whatever the file declares.
"""

from __future__ import annotations

import functools
import logging
import math
import operator
import os
import struct
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import soundfile as sf

from graph.errors import AudioTooLarge, BadAudio, BadInput, OutputNotWritable
from graph.ffmpeg import INPUT_FORMATS_HINT, ffprobe, have_ffmpeg, last_error, no_ffmpeg, url
from graph.ffmpeg_input import CONTAINERS, MAX_CHANNELS, input_options, refuse_indirections, to_mono
from graph.files import ErrorKeepingFile, atomic_write
from graph.types import Clip

log = logging.getLogger(__name__)

SAMPLE_RATE = 16_000  # analysis rate: ASR, diarization, reference selection

F32_BYTES = 4  # ffmpeg writes raw little-endian float32 ("f32le") to its stdout
READ_CHUNK_BYTES = SAMPLE_RATE * F32_BYTES * 10  # at most ~10 s of analysis-rate audio per read
UNKNOWN_DURATION_CHUNK_S = 60.0  # first buffer when the container does not say how long it is; grows 1.5x
MARGIN_S = 1.0  # extra room past the declared duration (codec padding), so the buffer is rarely regrown

# Decoded audio shorter than the declared duration by more than this is a cut-off file, not codec padding.
TRUNCATION_TOLERANCE_S = 0.5
TRUNCATION_TOLERANCE_FRACTION = 0.02  # bitrate-estimated durations (CBR mp3, ADTS aac) are a little off

AMPLITUDE_EPS = 1e-10  # floor of db(): 20*log10(1e-10) = -200 dBFS stands for digital silence
SILENCE_DB = -60.0  # below this (frame RMS, dBFS) nothing audible is there
SILENCE_FRAME_S = 0.05  # frame length for is_silent: short enough that one spoken word is loud

PROBE_ENTRIES = "format=duration,format_name:stream=codec_type,codec_name,sample_rate,channels,channel_layout,duration"

MAX_SOURCE_SR = 48_000  # the source-rate copy (voice references, the bed) is resampled down to this by ffmpeg

WriteFormat = Literal["wav", "flac"]
WRITE_FORMATS: tuple[str, ...] = ("wav", "flac")
# 16-bit PCM for both: every player and editor opens it, and the dub (TTS output, 16 kHz-24 kHz models)
# has far less than 16 bits of real dynamic range, so float would double the size for nothing.
WRITE_SUBTYPE = "PCM_16"



@dataclass(frozen=True)
class AudioInfo:
    """What ffprobe says about one audio stream of a file (nothing is decoded)."""

    duration_s: float | None  # None when the container does not say (rare: raw streams)
    sr: int
    channels: int
    codec: str  # e.g. "pcm_s16le", "mp3", "aac", "opus"
    format: str  # container, e.g. "wav", "mp3", "mov,mp4,m4a,3gp,3g2,mj2"
    # What the stream itself declares (WAV data-chunk size, FLAC total samples, mp3 Info tag, mp4 track...):
    # decode() calls a file truncated when it yields less. None when only the container knows.
    declared_s: float | None = None
    track: int = 0  # which audio stream of the file (0 = the first)
    tracks: int = 1  # how many audio streams the file has
    layout: str = ""  # ffmpeg's channel layout name ("mono", "stereo", "5.1(side)"), "" when unknown


@dataclass(frozen=True)
class Channels:
    """Every channel of one audio stream: ``samples`` has shape (channels, num_samples), float32."""

    samples: np.ndarray
    sr: int
    layout: str  # ffmpeg's name, e.g. "stereo", "5.1(side)"; "" when the file does not say

    @property
    def duration_s(self) -> float:
        return self.samples.shape[1] / self.sr


def probe(path: str | Path, track: int = 0) -> AudioInfo:
    """Describe audio stream ``track`` of ``path``; BadAudio for anything that is not usable audio.

    Remembered per file version (device, inode, size, mtime): a job probes its input when it is accepted, when it
    starts and before each decode, and each ffprobe is a process start.
    """
    path = Path(path)
    _check_file(path)
    if not have_ffmpeg():
        return _sf_probe(path, track)
    stat = path.stat()
    return _probe(path, track, (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns))


@functools.lru_cache(maxsize=256)
def _probe(path: Path, track: int, version: tuple[int, ...]) -> AudioInfo:
    refuse_indirections(path, INPUT_FORMATS_HINT)
    data = ffprobe(path, PROBE_ENTRIES)
    streams = data.get("streams") or []
    audios = [s for s in streams if s.get("codec_type") == "audio"]
    if not audios:
        kinds = ", ".join(sorted({str(s.get("codec_type")) for s in streams})) or "none"
        raise BadAudio(
            f"{path} has no audio stream (streams found: {kinds}). Send a file with a sound track; "
            "if it is a video, check that audio was included when it was exported."
        )
    if isinstance(track, bool) or not isinstance(track, int) or not 0 <= track < len(audios):
        raise BadInput(
            f"{path} has {len(audios)} audio track(s), numbered 0 to {len(audios) - 1}; "
            f"audio track {track!r} does not exist (choose one with --audio-track / audio_track)"
        )
    audio = audios[track]
    fmt = data.get("format") or {}
    stream_duration = _float(audio.get("duration"))
    duration = stream_duration if stream_duration is not None else _float(fmt.get("duration"))
    declared = _wav_declared_s(path) if fmt.get("format_name") == "wav" else stream_duration
    sr = int(_float(audio.get("sample_rate")) or 0)
    channels = int(audio.get("channels") or 0)
    if sr <= 0 or channels <= 0:
        raise BadAudio(
            f"{path}: its audio stream has no usable sample rate/channel count (sr={sr}, channels={channels}); "
            "the file is probably corrupt. Re-export it, e.g. `ffmpeg -i INPUT out.wav`."
        )
    container = str(fmt.get("format_name") or "")
    if not set(container.split(",")) & set(CONTAINERS):  # the whitelist already refused it; say so whatever ffmpeg does
        raise BadAudio(f"{path} is a {container or 'unknown'} file, not one of the containers dubgraph reads "
                       f"({INPUT_FORMATS_HINT}).")  # fmt: skip
    if channels > MAX_CHANNELS:
        raise BadAudio(f"{path} has {channels} audio channels; dubgraph mixes at most {MAX_CHANNELS} into one. "
                       "Export the voices' channels on their own, e.g. `ffmpeg -i INPUT -ac 2 out.wav`.")  # fmt: skip
    return AudioInfo(
        duration_s=duration,
        sr=sr,
        channels=channels,
        codec=str(audio.get("codec_name") or "unknown"),
        format=str(fmt.get("format_name") or "unknown"),
        declared_s=declared,
        track=track,
        tracks=len(audios),
        layout="" if audio.get("channel_layout") in (None, "unknown") else str(audio["channel_layout"]),
    )


def decode(
    source: str | Path | bytes, sr: int | None = SAMPLE_RATE, max_duration_s: float | None = None, track: int = 0
) -> Clip:
    """Decode audio stream ``track`` (the first by default) to mono float32 at ``sr`` (None: the source rate, at most
    MAX_SOURCE_SR).

    ``bytes`` are written to a temporary file first: MP4/M4A often keep their index at the end, so
    ffmpeg needs a seekable input. Silence decodes normally; see ``is_silent``.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _decode_bytes(bytes(source), _check_sr(sr), max_duration_s)
    path = Path(source)
    info, out_sr = _prepare(path, sr, max_duration_s, track)
    samples = _decoded(path, info, out_sr, max_duration_s, 1)
    log.debug(
        "decoded %s: %s/%s %d ch -> %.2f s at %d Hz", path, info.format, info.codec, info.channels,
        samples.size / out_sr, out_sr,
    )  # fmt: skip
    return Clip(samples=samples, sr=out_sr)


def decode_channels(
    path: str | Path, sr: int | None = None, max_duration_s: float | None = None, track: int = 0
) -> Channels:
    """Decode audio stream ``track`` keeping every channel in the file's order (FL FR FC LFE ... for 5.1)."""
    path = Path(path)
    info, out_sr = _prepare(path, sr, max_duration_s, track)
    interleaved = _decoded(path, info, out_sr, max_duration_s, info.channels)
    samples = np.ascontiguousarray(interleaved.reshape(-1, info.channels).T)
    return Channels(samples=samples, sr=out_sr, layout=info.layout)


def _check_sr(sr: int | None) -> int | None:
    if sr is not None and (isinstance(sr, bool) or operator.index(sr) <= 0):
        raise ValueError(f"sr must be a positive int or None, got {sr!r}")
    return None if sr is None else operator.index(sr)


def _prepare(path: Path, sr: int | None, max_duration_s: float | None, track: int) -> tuple[AudioInfo, int]:
    """Probe, then refuse what is too long before anything is decoded; the output rate."""
    sr = _check_sr(sr)
    info = probe(path, track)
    if max_duration_s is not None and info.duration_s is not None and info.duration_s > max_duration_s:
        raise _too_large(path, info.duration_s, max_duration_s)
    return info, sr or min(info.sr, MAX_SOURCE_SR)


def _decoded(path: Path, info: AudioInfo, out_sr: int, max_duration_s: float | None, channels: int) -> np.ndarray:
    """Interleaved float32 samples of ``channels`` channels, checked for an empty or truncated stream."""
    samples = _run_ffmpeg(path, info, out_sr, max_duration_s, channels) if have_ffmpeg() else _sf_read(path, out_sr,
                                                                                                      channels)
    if samples.size == 0:
        raise BadAudio(
            f"{path}: ffmpeg found a {info.codec} audio stream but could not decode any samples from it; "
            "the file is probably corrupt. Re-export it, e.g. `ffmpeg -i INPUT out.wav`."
        )
    decoded_s = samples.size / channels / out_sr
    if info.declared_s is not None and info.declared_s - decoded_s > max(
        TRUNCATION_TOLERANCE_S, TRUNCATION_TOLERANCE_FRACTION * info.declared_s
    ):
        raise BadAudio(
            f"{path} looks truncated: it declares {info.declared_s:.2f} s of audio but only {decoded_s:.2f} s "
            "could be decoded. Upload or copy the complete file again; to use just the part that is there, "
            "rewrite it first: `ffmpeg -i INPUT fixed.wav`."
        )
    return samples


def is_silent(clip: Clip, threshold_db: float = SILENCE_DB) -> bool:
    """True when no SILENCE_FRAME_S frame of the clip reaches ``threshold_db`` RMS (dBFS)."""
    x = np.asarray(clip.samples, dtype=np.float32)
    if x.size == 0 or db(float(np.max(np.abs(x)))) < threshold_db:  # RMS never exceeds the peak
        return True
    frame = max(1, int(round(SILENCE_FRAME_S * clip.sr)))
    whole = x.size // frame * frame
    frames = x[:whole].reshape(-1, frame)
    energies = np.einsum("ij,ij->i", frames, frames) / frame  # no squared copy of a long clip
    loudest = float(energies.max()) if energies.size else 0.0
    if whole < x.size:
        tail = x[whole:]
        loudest = max(loudest, float(np.dot(tail, tail)) / tail.size)
    return db(math.sqrt(loudest)) < threshold_db


def db(amplitude: float | np.ndarray) -> float | np.ndarray:
    """Amplitude (1.0 = full scale) to dBFS, floored at 20*log10(AMPLITUDE_EPS)."""
    value = 20.0 * np.log10(np.maximum(np.abs(amplitude), AMPLITUDE_EPS))
    return float(value) if np.ndim(value) == 0 else value


def rms_db(samples: np.ndarray) -> float:
    """RMS level of a whole signal in dBFS (a full-scale sine is about -3 dB); empty is the floor."""
    x = np.asarray(samples, dtype=np.float32).ravel()
    if x.size == 0:
        return float(db(0.0))
    return float(db(math.sqrt(float(np.dot(x, x)) / x.size)))


def resample(samples: np.ndarray, sr_from: int, sr_to: int) -> np.ndarray:
    """Band-limited resampling of a mono signal (soxr, high quality); float32 out."""
    x = np.ascontiguousarray(samples, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError(f"resample expects mono samples of shape (n,), got {x.shape}")
    if sr_from <= 0 or sr_to <= 0:
        raise ValueError(f"sample rates must be positive, got {sr_from} -> {sr_to}")
    if sr_from == sr_to or x.size == 0:
        return x
    import soxr  # lazy: keeps `import graph.audio` light

    return np.ascontiguousarray(soxr.resample(x, sr_from, sr_to, quality="HQ"), dtype=np.float32)


def write_audio(path: str | Path, samples: np.ndarray, sr: int, format: WriteFormat | None = None) -> Path:
    """Write 16-bit WAV or FLAC atomically: a temp file beside ``path``, then ``os.replace``.

    ``samples``: mono (n,) or (channels, n) in the file's channel order. Readers never see a half-written file.
    ``format`` defaults to the file's suffix. Samples outside [-1, 1] are clipped (with a warning) rather than
    wrapped around by the integer conversion.
    """
    path = Path(path)
    fmt = (format or path.suffix.lstrip(".")).lower()
    if fmt not in WRITE_FORMATS:
        raise ValueError(f"cannot write {fmt!r} audio to {path}; choose one of {', '.join(WRITE_FORMATS)}")
    x = np.asarray(samples, dtype=np.float32)
    if x.ndim == 2 and x.shape[0] == 1:
        x = x[0]
    if x.ndim not in (1, 2):
        raise ValueError(f"write_audio expects samples of shape (n,) or (channels, n), got {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"refusing to write {path}: samples contain NaN or infinity")
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if peak > 1.0:
        log.warning("%s: peak %.2f dBFS is over full scale; clipping", path, db(peak))
        x = np.clip(x, -1.0, 1.0)
    frames = x if x.ndim == 1 else x.T  # soundfile wants (frames, channels)

    def encode(handle) -> None:
        kept = ErrorKeepingFile(handle)
        try:
            sf.write(kept, frames, sr, subtype=WRITE_SUBTYPE, format=fmt.upper())
        except Exception:
            if kept.error is None:
                raise
        if kept.error is not None:  # the write that failed (a full disk, say), not libsndfile's account of it
            raise kept.error

    try:
        return atomic_write(path, encode)
    except OSError as exc:
        raise OutputNotWritable(
            f"cannot write {path}: {exc.strerror or exc}. Check the directory exists "
            "and is writable, and that the disk is not full."
        ) from None


def _check_file(path: Path) -> None:
    if not path.exists():
        raise BadAudio(f"audio file not found: {path} (working directory {Path.cwd()}). Check the path.")
    if not path.is_file():
        raise BadAudio(f"{path} is not a file (a directory?); give the path of an audio or video file.")
    if path.stat().st_size == 0:
        raise BadAudio(f"{path} is empty (0 bytes); the upload or copy probably failed. Send the file again.")


def _run_ffmpeg(path: Path, info: AudioInfo, out_sr: int, max_duration_s: float | None, channels: int = 1) -> np.ndarray:
    """Stream ffmpeg's raw float32 output (interleaved ``channels``) into one preallocated array (grown if needed)."""
    cmd = [
        "ffmpeg", "-nostdin", "-hide_banner", "-v", "error", *input_options(), "-i", url(path),
        "-map", f"0:a:{info.track}", *(to_mono(info.channels) if channels == 1 else ["-ac", str(channels)]),
        "-ar", str(out_sr),
        "-f", "f32le", "-acodec", "pcm_f32le", "pipe:1",
    ]  # fmt: skip
    rate = out_sr * channels  # floats per second
    limit = None if max_duration_s is None else int(math.ceil(max_duration_s * rate))
    expected_s = info.duration_s + MARGIN_S if info.duration_s is not None else UNKNOWN_DURATION_CHUNK_S
    capacity = max(int(expected_s * rate), 1)
    if limit is not None:
        capacity = min(capacity, limit + int(MARGIN_S * rate))
    buf = np.empty(capacity, dtype=np.float32)
    filled = 0  # bytes
    with tempfile.TemporaryFile() as stderr:  # a file, not a pipe: a flood of decoder errors cannot block
        try:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr, bufsize=0)
        except FileNotFoundError:
            raise no_ffmpeg("ffmpeg") from None
        try:
            while True:
                if filled == buf.nbytes:
                    grown = np.empty(int(buf.size * 1.5) + rate, dtype=np.float32)
                    grown[: buf.size] = buf
                    buf = grown
                view = memoryview(buf).cast("B")[filled : filled + READ_CHUNK_BYTES]
                n = proc.stdout.readinto(view)
                if not n:
                    break
                filled += n
                if limit is not None and filled // F32_BYTES > limit + MARGIN_S * rate:
                    raise _too_large(path, None, max_duration_s)
            returncode = proc.wait()
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            proc.stdout.close()
        if returncode != 0:
            stderr.seek(0)
            detail = last_error(stderr.read(), path)
            raise BadAudio(
                f"ffmpeg could not decode {path} ({info.format}/{info.codec}): {detail or 'unknown error'}."
                " Re-export the audio, e.g. `ffmpeg -i INPUT out.wav`, and try again."
            )
    samples = buf[: filled // F32_BYTES // channels * channels]
    return samples.copy() if samples.size < 0.9 * buf.size else samples  # don't pin a mostly empty buffer


def _sf_probe(path: Path, track: int) -> AudioInfo:
    """Without ffmpeg (a slim GPU image, say) what libsndfile reads (WAV, FLAC, OGG; one track) is still accepted."""
    try:
        info = sf.info(str(path))
    except (RuntimeError, sf.LibsndfileError) as exc:
        raise no_ffmpeg("ffprobe", f"; without it only WAV, FLAC and OGG can be read ({path.name}: {exc})") from None
    if track:
        raise BadInput(f"{path} has 1 audio track (numbered 0); audio track {track!r} does not exist")
    declared = _wav_declared_s(path) if info.format == "WAV" else info.duration
    return AudioInfo(info.duration, info.samplerate, info.channels, info.subtype.lower(), info.format.lower(), declared)


def _sf_read(path: Path, out_sr: int, channels: int) -> np.ndarray:
    """Interleaved float32 like ffmpeg's output: mono (the channels' mean) or every channel, at ``out_sr``."""
    samples, sr = sf.read(str(path), dtype="float32", always_2d=True)
    columns = [samples.mean(axis=1)] if channels == 1 else list(samples.T)
    return np.ascontiguousarray(np.stack([resample(c, sr, out_sr) for c in columns], axis=1).ravel())


def _decode_bytes(data: bytes, sr: int | None, max_duration_s: float | None) -> Clip:
    if not data:
        raise BadAudio("the uploaded audio is empty (0 bytes); the upload probably failed. Send the file again.")
    with tempfile.TemporaryDirectory(prefix="dubgraph-audio-") as tmp:
        path = Path(tmp) / "input"
        path.write_bytes(data)
        try:
            return decode(path, sr=sr, max_duration_s=max_duration_s)
        except (BadAudio, AudioTooLarge) as exc:
            raise type(exc)(str(exc).replace(str(path), "the uploaded audio")) from None


def _wav_declared_s(path: Path) -> float | None:
    """Duration a RIFF/WAVE header declares, or None when it does not say (streamed WAVs write 0 or ~0)."""
    with open(path, "rb") as f:
        if f.read(12)[8:12] != b"WAVE":
            return None
        byte_rate = None
        while len(header := f.read(8)) == 8:
            chunk, size = header[:4], struct.unpack("<I", header[4:])[0]
            if chunk == b"fmt ":
                fmt = f.read(size + size % 2)
                byte_rate = struct.unpack("<I", fmt[8:12])[0] if len(fmt) >= 12 else None
            elif chunk == b"data":
                if not byte_rate or size in (0, 0xFFFFFFFF) or size >= 0xFFFFF000:
                    return None
                return size / byte_rate
            else:
                f.seek(size + size % 2, os.SEEK_CUR)
    return None


def _float(value: object) -> float | None:
    try:
        result = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return result if math.isfinite(result) else None


def _too_large(path: Path, duration_s: float | None, limit_s: float) -> AudioTooLarge:
    length = f"is {_hms(duration_s)} long" if duration_s is not None else "runs past the limit"
    return AudioTooLarge(
        f"{path} {length}; the limit is {_hms(limit_s)} (max_duration_s={limit_s:g}). "
        "Cut it into shorter parts, or raise max_duration_s."
    )


def _hms(seconds: float) -> str:
    total = int(round(seconds))
    return f"{total // 3600}:{total // 60 % 60:02d}:{total % 60:02d}"
