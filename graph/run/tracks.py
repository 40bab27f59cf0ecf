"""Placed lines to a job's files: each language's track mixed over the bed, its lines heard in it, its audio and
subtitle files, then the videos that carry every language (the manifest is the caller's, written last).

The first pass (graph/run/pipeline.py) and every re-render after edits (graph/run/rendering.py) go through
here. A re-render passes the speaker gains and overall scale of the last render, and the lines it kept: their
samples land in the new track as they were, and where they are heard is not measured again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

from graph import audio
from graph.media.outputs import write_language
from graph.media.video import DubTrack, VideoInfo, stage_track, write_videos
from graph.options import DubOptions
from graph.run.background import Bed
from graph.run.placing import Placed, with_heard
from graph.timeline.onsets import measure_placed
from graph.timeline.render import Placement, limit_peak, mix_track, speaker_gains
from graph.timeline.subtitles import to_srt
from graph.types import LanguageOutput

OUTPUT_SR = 24_000  # ChatterBox's native rate: takes are kept at it, other voices are resampled to it


@dataclass(frozen=True)
class Mix:
    """How a job's tracks are mixed: their length and rate, each speaker's level in the source, the bed."""

    duration_s: float
    sr: int
    levels: dict[str, float]  # dB
    bed: Bed | None = None


@dataclass(frozen=True)
class Mixed:
    """One language's track as written: its files, its lines (heard), the gains and scale it was mixed at."""

    output: LanguageOutput
    placed: list[Placed]  # the lines with where they are heard
    gains: dict[str, float]
    scale: float
    staged: DubTrack | None  # the track waiting to be muxed into the videos


async def mix_language(out_dir: Path, lang: str, placed: Sequence[Placed], mix: Mix, formats: Sequence[str],
                       video: VideoInfo | None, gains: dict[str, float] | None = None, scale: float = 1.0,
                       kept: Collection[str] = ()) -> Mixed:
    """Mix, measure and write one language. ``gains``: per speaker, instead of matching ``mix.levels`` (a speaker
    without one is matched); ``kept``: ids of lines whose heard onset and offset are already known."""
    placements = [Placement(p.line.speaker, p.line.start_s, audio.resample(p.samples, OUTPUT_SR, mix.sr))
                  for p in placed]
    gains = {**speaker_gains(placements, mix.levels), **(gains or {})}
    bed = mix.bed

    def mixed():
        track = mix_track(placements, mix.duration_s, mix.sr, gains, bed.samples if bed else None,
                          bed.voice_gains if bed else None)
        return limit_peak(track, scale)

    track, scale = await asyncio.to_thread(mixed)
    todo = [i for i, p in enumerate(placed) if p.line.utterance_id not in kept]
    heard = await asyncio.to_thread(measure_placed, [placements[i] for i in todo], mix.duration_s, mix.sr)
    placed = list(placed)
    for i, h in zip(todo, heard):
        placed[i] = Placed(with_heard(placed[i].line, h.onset_s, h.end_s), placed[i].samples, placed[i].plan)
    lines = [p.line for p in placed]
    output = await asyncio.to_thread(write_language, out_dir, lang, track, mix.sr, lines, formats)
    staged = None
    if video is not None:
        staged = await asyncio.to_thread(stage_track, out_dir, lang, track, mix.sr, video, to_srt(lines))
    return Mixed(output, placed, gains, scale, staged)


async def write_language_videos(out_dir: Path, source: str, video: VideoInfo, containers: tuple[str, ...],
                                mixed: dict[str, Mixed], targets: Sequence[str], options: DubOptions,
                                source_language: str) -> dict[str, dict[str, str]]:
    """The videos carrying every language's track (``graph.media.video.write_videos``); staged tracks removed."""
    return await asyncio.to_thread(write_videos, out_dir, Path(source), video, containers,
                                   [mixed[t].staged for t in targets], options.video, options.audio_track,
                                   source_language)


def drop_staged(mixed: dict[str, Mixed]) -> None:
    """Remove the staged tracks of a run that stopped before its videos were written."""
    for m in mixed.values():
        if m.staged is not None:
            m.staged.path.unlink(missing_ok=True)
