"""Who spoke when, with pyannote.audio (full profile: speaker-diarization-community-1).

Run it in its own actor process: every pyannote pipeline call turns TF32 matmuls off process-wide on CUDA
(``pyannote.audio.utils.reproducibility.fix_reproducibility``), which would slow any model sharing the process.
pyannote's usage telemetry is opted out of (``PYANNOTE_METRICS_ENABLED=false``) unless the user set it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable

import numpy as np

from actors.device import pick_device
from actors.models import ModelSpec, load_object, resolve
from graph.audio import SAMPLE_RATE
from graph.errors import ModelNotFound
from graph.options import DiarizeOptions
from graph.types import SpeakerTurn

log = logging.getLogger(__name__)


def normalise_turns(segments: Iterable[tuple[float, float, object]]) -> list[SpeakerTurn]:
    """(start, end, any label) -> turns sorted by start, labelled SPEAKER_00, SPEAKER_01... by first appearance."""
    rounded = [(round(float(start), 3), round(float(end), 3), label) for start, end, label in segments]
    names: dict[object, str] = {}
    turns = []
    for start, end, label in sorted((t for t in rounded if t[1] > t[0]), key=lambda t: t[:2]):
        name = names.setdefault(label, f"SPEAKER_{len(names):02d}")
        turns.append(SpeakerTurn(speaker=name, start_s=start, end_s=end))
    return turns


class Diarizer:
    """One pyannote ``SpeakerDiarization`` pipeline; turns never overlap (pyannote's exclusive diarization)."""

    def __init__(self, spec: ModelSpec, profile: str = "full", device: str | None = None):
        os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "false")
        import torch
        from pyannote.audio import Pipeline

        self.spec = spec
        self.location = resolve(spec, profile).location
        self.device = pick_device(device)
        if spec.loader:
            self.pipeline = load_object(spec.loader)(self.location, self.device)
        else:
            self.pipeline = Pipeline.from_pretrained(self.location)
            if self.pipeline is None:
                raise ModelNotFound(spec.name, profile, spec.fix, [self.location])
            self.pipeline.to(torch.device(self.device))
        log.info("diarizer %s loaded from %s on %s", spec.name, self.location, self.device)

    def diarize(self, audio: np.ndarray, options: DiarizeOptions = DiarizeOptions()) -> list[SpeakerTurn]:
        """Mono float32 at 16 kHz -> speaker turns (empty for empty input)."""
        import torch

        if audio.size == 0:
            return []
        waveform = torch.tensor(audio, dtype=torch.float32).reshape(1, -1)  # a copy: Ray's arrays are read-only
        output = self.pipeline(
            {"waveform": waveform, "sample_rate": SAMPLE_RATE},  # in memory: no torchcodec/ffmpeg decoding
            num_speakers=options.num_speakers,
            min_speakers=options.min_speakers,
            max_speakers=options.max_speakers,
        )
        # pyannote >= 4 returns a DiarizeOutput; legacy pipelines return the Annotation itself
        annotation = getattr(output, "exclusive_speaker_diarization", output)
        return normalise_turns(
            (segment.start, segment.end, label) for segment, _, label in annotation.itertracks(yield_label=True)
        )
