"""Running ffmpeg and ffprobe: file URLs, their last error line, ffprobe's JSON; failures a user can act on."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from graph.errors import BadAudio, DubError
from graph.ffmpeg_input import input_options

PROBE_TIMEOUT_S = 60.0  # ffprobe reads headers only; a hang means a broken file or filesystem
INPUT_FORMATS_HINT = "wav, flac, mp3, m4a/aac, ogg/opus, or the sound track of an mp4/mkv/webm video"


def ffprobe(path: Path, entries: str) -> dict:
    """ffprobe's JSON for ``-show_entries entries``; every failure is a BadAudio saying what to do."""
    cmd = ["ffprobe", "-v", "error", "-of", "json", "-show_entries", entries, *input_options(), url(path)]
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=PROBE_TIMEOUT_S, check=False)
    except FileNotFoundError:
        raise no_ffmpeg("ffprobe") from None
    except subprocess.TimeoutExpired:
        raise BadAudio(
            f"{path}: ffprobe did not finish reading its headers in {PROBE_TIMEOUT_S:.0f} s; "
            "the file is probably corrupt or on a stalled filesystem."
        ) from None
    detail = last_error(proc.stderr, path)
    if proc.returncode != 0:
        if b"not on whitelist" in proc.stderr:
            raise BadAudio(
                f"{path} is not in a container dubgraph reads (playlists, concat lists and other files that point "
                f"at other media are refused). Send the audio itself: {INPUT_FORMATS_HINT}."
            )
        if b"moov atom not found" in proc.stderr:
            raise BadAudio(
                f"{path} is an incomplete MP4/M4A (its index is missing: moov atom not found); the file was cut "
                "off while uploading or exporting. Send the complete file again."
            )
        raise BadAudio(
            f"{path} is not audio ffmpeg can read ({detail or 'unrecognized data'}). Send a common "
            f"audio or video file ({INPUT_FORMATS_HINT}); if it is one, it is corrupt: re-export it."
        )
    try:
        return json.loads(proc.stdout or b"{}")
    except json.JSONDecodeError:
        raise BadAudio(f"{path}: ffprobe returned unreadable output; the file is probably corrupt.") from None


def last_error(stderr: bytes, path: Path) -> str:
    """The last line ffmpeg/ffprobe logged, without the input path it prefixes."""
    lines = [ln.strip() for ln in stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
    if not lines:
        return ""
    return lines[-1].removeprefix(f"{url(path)}: ")


def url(path: Path) -> str:
    """An explicit file: URL, so a local name like "concat:a|b" or "-x.wav" is never read as a protocol/option."""
    return f"file:{path.absolute()}"


def have_ffmpeg() -> bool:
    return shutil.which("ffprobe") is not None and shutil.which("ffmpeg") is not None


def no_ffmpeg(tool: str, detail: str = "") -> DubError:
    return DubError(f"{tool} is not installed or not on PATH; install ffmpeg (e.g. `apt-get install ffmpeg`){detail}.")
