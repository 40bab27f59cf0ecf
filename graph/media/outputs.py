"""Files of a job: per language WAV/FLAC/SRT/VTT (videos: ``graph.media.video``), then manifest.json last (its
presence means complete)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from graph import audio
from graph.errors import OutputNotWritable
from graph.files import DISK_FULL_ERRNOS, atomic_write_bytes, atomic_write_json, disk_full
from graph.media.video import COMBINED_STEM
from graph.options import SAME_CONTAINER, VIDEO_FORMATS
from graph.timeline.subtitles import to_srt, to_vtt
from graph.types import LanguageOutput, PlacedLine

MANIFEST = "manifest.json"
# what the timeline solver does within its bounds; any other flag (a cut, a line beyond max_stretch, a failed or
# empty line) lists the line in ``lines_flagged`` for a person to check
ROUTINE_FLAGS = frozenset({"stretched", "borrowed_silence", "preroll", "shifted", "reselected", "resynthesized"})


def check_writable(out_dir: str | Path) -> Path:
    """Create ``out_dir`` and prove a file can be written there, before any work is spent."""
    path = Path(out_dir)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except OSError as exc:
        if exc.errno in DISK_FULL_ERRNOS:
            raise disk_full(path, exc) from exc
        raise OutputNotWritable(f"cannot write to output directory {path}: {exc.strerror or exc}; choose another with --out") from None
    return path


def write_language(
    out_dir: Path, lang: str, track: np.ndarray, sr: int, lines: Sequence[PlacedLine], formats: Sequence[str]
) -> LanguageOutput:
    """Write the language's audio and subtitle formats (the video formats are muxed later, with every language)."""
    files: dict[str, str] = {}
    for fmt in (f for f in formats if f not in VIDEO_FORMATS and f != SAME_CONTAINER):
        target = out_dir / f"{lang}.{fmt}"
        if fmt in ("wav", "flac"):
            audio.write_audio(target, track, sr, fmt)
        else:
            atomic_write_bytes(target, (to_srt(lines) if fmt == "srt" else to_vtt(lines)).encode())
        files[fmt] = target.name
    return LanguageOutput(lang, files, tuple(sorted(lines, key=lambda line: line.start_s)))


def write_manifest(out_dir: Path, job: dict[str, Any], outputs: dict[str, LanguageOutput],
                   revisions: dict[str, int] | None = None) -> Path:
    """``job`` plus, per language, its files, the lines a person should check and every line (with its revision:
    0 until it is edited)."""
    revisions = revisions or {}
    languages = {}
    for lang, output in outputs.items():
        flagged = [line.utterance_id for line in output.lines if set(line.flags) - ROUTINE_FLAGS]
        lines = [{**line.to_json(), "revision": revisions.get(line.utterance_id, 0)} for line in output.lines]
        languages[lang] = {"files": output.files, "lines_flagged": flagged, "lines": lines}
    return atomic_write_json(out_dir / MANIFEST, {**job, "languages": languages})


def remove_outputs(out_dir: Path, langs: Sequence[str], formats: Sequence[str]) -> None:
    """Delete what a failed job may have written, so nothing half-done looks complete."""
    video = [f for f in VIDEO_FORMATS if f in formats or SAME_CONTAINER in formats]  # "video": any container
    other = [f for f in formats if f not in VIDEO_FORMATS and f != SAME_CONTAINER]
    names = [f"{lang}.{fmt}" for lang in langs for fmt in other + video] + [f"{COMBINED_STEM}.{fmt}" for fmt in video]
    for name in [MANIFEST] + names:
        try:
            os.unlink(out_dir / name)
        except FileNotFoundError:
            pass
