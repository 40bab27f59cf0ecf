"""Who spoke when, with pyannote.audio (full profile: speaker-diarization-community-1).

Run it in its own actor process: every pyannote pipeline call turns TF32 matmuls off process-wide on CUDA
(``pyannote.audio.utils.reproducibility.fix_reproducibility``), which would slow any model sharing the process.
pyannote's usage telemetry is opted out of (``PYANNOTE_METRICS_ENABLED=false``) unless the user set it.
``embed`` gives one clip's speaker embedding from the pipeline's own embedding model (community-1: WeSpeaker
ResNet34), for matching speakers to library voices.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable

import numpy as np

from actors.device import pick_device
from actors.models import ModelSpec, load_object, resolve
from graph.audio import SAMPLE_RATE, resample
from graph.errors import BadAudio, ModelNotFound
from graph.options import DiarizeOptions
from graph.types import SpeakerEmbedding, SpeakerTurn

log = logging.getLogger(__name__)

# Cosine similarity of two clips' embeddings above which they are one speaker (library matching; spec.options
# "match_threshold" overrides it). Not measured here (the hub model is not on this machine): pyannote 3.1 clusters
# WeSpeaker embeddings at cosine distance 0.70 (similarity 0.30); a match is held to 0.5, since a wrong voice is
# worse than none. Check the scores in the manifests of a few known speakers and set it per deployment.
MATCH_THRESHOLD = 0.5


def normalise_turns(segments: Iterable[tuple[float, float, object]], duration_s: float = float("inf")
                    ) -> list[SpeakerTurn]:
    """(start, end, any label) -> turns sorted by start, labelled SPEAKER_00, SPEAKER_01... by first appearance,
    cut at ``duration_s`` (pyannote pads the last window: a turn can run past the audio's end)."""
    rounded = [(round(float(start), 3), round(min(float(end), duration_s), 3), label) for start, end, label in segments]
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

    def embed(self, samples: np.ndarray, sr: int) -> SpeakerEmbedding:
        """One clip's voice as the pipeline's embedding model sees it (the whole clip in one call), unit length."""
        import torch

        model = self.pipeline._embedding  # pyannote builds it from the pipeline's "embedding" parameter
        wave = resample(np.asarray(samples, dtype=np.float32), sr, model.sample_rate)
        with torch.inference_mode():
            vector = np.asarray(model(torch.from_numpy(wave).reshape(1, 1, -1)), dtype=np.float32)[0]
        norm = float(np.linalg.norm(vector))
        if not np.isfinite(norm) or norm == 0.0:
            raise BadAudio("no speaker embedding could be computed from the clip (too short or silent?)")
        threshold = float(self.spec.options.get("match_threshold", MATCH_THRESHOLD))
        return SpeakerEmbedding(self.spec.name, vector / norm, threshold)

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
            ((segment.start, segment.end, label) for segment, _, label in annotation.itertracks(yield_label=True)),
            audio.size / SAMPLE_RATE,
        )
