"""A job's background bed: the source decoded in its own layout, separated once (while ASR and diarization run)
or, when separation is off, ducked under the lines (``graph.timeline.bed`` holds the arithmetic).

The separator hears one signal, the speech mix, put in the object store once; its speech estimate comes back as
a reference, is checkpointed like every finished unit, and is fetched only when the bed is built.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from graph import audio
from graph.errors import BadInput
from graph.run.checkpoint import key_of
from graph.run.objects import fetch
from graph.timeline.bed import ducked_background, line_spans, mix_weights, separated_bed, speech_mix, voice_gains
from graph.types import Clip, Utterance

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Bed:
    """What goes under a job's voices, at the track's rate."""

    samples: np.ndarray  # (channels, n)
    sr: int
    layout: str
    method: str  # "separation" | "ducking"
    voice_gains: np.ndarray  # (channels,): how much of the dubbed voice each channel gets
    speech: Clip  # what the voices are levelled against: the separated speech, or the speech mix when ducking

    def to_json(self, model: str | None) -> dict[str, Any]:
        return {"method": self.method, "separator": model if self.method == "separation" else None,
                "channels": int(self.samples.shape[0]), "layout": self.layout or None, "sample_rate": self.sr,
                "voice_gains": [round(float(g), 3) for g in self.voice_gains]}


@dataclass(frozen=True)
class _Source:
    channels: audio.Channels
    weights: np.ndarray
    mix: np.ndarray
    speech: Any  # the separator's estimate (a reference under Ray), None when ducking


async def start(job, stages, store, min_sr: int, clock, emit) -> asyncio.Future:
    """Decode the source in its layout and, with separation on, start separating it; returns the future of it."""
    opts = job.options
    if opts.separation and getattr(stages, "separator", None) is None:
        raise BadInput("separation was asked for but this profile runs no separator: turn separation off "
                       "(--no-separation) to duck the source under the lines instead")

    async def run() -> _Source:
        info = await asyncio.to_thread(audio.probe, job.input, opts.audio_track)
        channels = await asyncio.to_thread(
            audio.decode_channels, job.input, max(min_sr, info.sr), job.max_duration_s, opts.audio_track
        )
        weights = mix_weights(channels.layout, channels.samples.shape[0])
        mix = speech_mix(channels.samples, weights)
        if not opts.separation:
            return _Source(channels, weights, mix, None)
        key = "separate-" + key_of(job.models.get("separator"), channels.sr, opts.audio_track, job.max_duration_s)
        speech = store.get(key)
        if speech is None:
            t0 = time.perf_counter()
            speech = await stages.separator.call_ref("separate", stages.put(mix), channels.sr)
            clock.stage_s["separate"] = round(time.perf_counter() - t0, 3)
            emit("separate", 1, 1)
            if store.root is not None:
                store.put(key, await fetch(speech))
        return _Source(channels, weights, mix, speech)

    task = asyncio.ensure_future(run())
    task.add_done_callback(_retrieved)
    return task


def _retrieved(task: asyncio.Future) -> None:
    """A job that fails before it needs its bed never awaits it: its error is the job's, not a stray warning."""
    if not task.cancelled():
        task.exception()


async def finish(started: asyncio.Future, utterances: list[Utterance], gains: np.ndarray | None = None) -> Bed:
    """The bed, once the lines are known (ducking needs their spans; voice gains are measured over them, unless
    ``gains`` gives them: a re-render keeps the first pass's, so the bed under unchanged lines stays as it was)."""
    source = await started
    samples, sr = source.channels.samples, source.channels.sr
    spans = line_spans(utterances, sr, samples.shape[1])
    if source.speech is None:
        gains = voice_gains(samples, source.mix, source.weights, spans) if gains is None else gains
        bed = await asyncio.to_thread(ducked_background, samples, sr, utterances)
        return Bed(bed, sr, source.channels.layout, "ducking", gains, Clip(source.mix, sr))
    speech = np.asarray(await fetch(source.speech), dtype=np.float32)
    gains = voice_gains(samples, speech, source.weights, spans) if gains is None else gains
    bed = separated_bed(samples, speech, gains)
    return Bed(bed, sr, source.channels.layout, "separation", gains, Clip(speech, sr))
