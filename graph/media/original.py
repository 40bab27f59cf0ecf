"""A listening copy of a job's original audio, kept beside its dubs so a reviewer can switch between them.

The job's saved input is removed once the job is done and may be in a container or codec a browser cannot play;
this copy is mono FLAC at the analysis rate (speech is fully there, ~1 MB a minute) and as long as the input,
so it lines up sample for sample with every dubbed track.
"""

from __future__ import annotations

from pathlib import Path

from graph import audio

ORIGINAL = "original.flac"


def write_original(input_path: str | Path, out_dir: str | Path, max_duration_s: float | None = None) -> Path:
    """Decode ``input_path`` (what the job dubbed: its first audio stream) and write ``out_dir/original.flac``."""
    clip = audio.decode(input_path, audio.SAMPLE_RATE, max_duration_s)
    return audio.write_audio(Path(out_dir) / ORIGINAL, clip.samples, clip.sr, "flac")
