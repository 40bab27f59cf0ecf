"""Speech vs. everything else with Demucs (htdemucs, the ``demucs`` package): its vocals stem is the speech.

The full profile's separator. Weights come in the hub's layout (``adefossez/HTDemucs``: ``htdemucs.yaml`` naming
one or more ``<signature>.safetensors``, each carrying its model class and arguments), found like every full model:
an explicit path, ``$DUBGRAPH_SEPARATOR_MODEL``, the Hugging Face cache. The bed is not taken from Demucs' other
stems: the pipeline subtracts the speech estimate from each source channel, so nothing but speech is removed.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from actors.device import pick_device
from actors.models import ModelSpec, load_object, resolve
from graph.audio import resample
from graph.errors import ModelNotFound

log = logging.getLogger(__name__)

SPEECH_STEM = "vocals"
OVERLAP = 0.25  # demucs' default overlap between the segments it cuts long audio into
NORM_EPS = 1e-8


def load_bag(location: str, device: str, name: str = "htdemucs"):
    """The ``BagOfModels`` a hub snapshot directory holds (``NAME.yaml`` + its safetensors), on ``device``."""
    import yaml
    from demucs.apply import BagOfModels
    from demucs.hf import load_safetensors_model

    folder = Path(location)
    definition = folder / f"{name}.yaml"
    if not definition.is_file():
        raise ModelNotFound(name, "full", f"put {name}.yaml and its .safetensors files in {folder}", [str(definition)])
    bag = yaml.safe_load(definition.read_text())
    models = [load_safetensors_model(folder / f"{signature}.safetensors") for signature in bag["models"]]
    return BagOfModels(models, bag.get("weights"), bag.get("segment")).to(device).eval()


class Separator:
    """One Demucs bag of models; ``separate`` returns its speech estimate of a mono signal."""

    def __init__(self, spec: ModelSpec, profile: str = "full", device: str | None = None):
        self.spec = spec
        self.location = resolve(spec, profile).location
        self.device = pick_device(device)
        loader = load_object(spec.loader) if spec.loader else load_bag
        self.model = loader(self.location, self.device, spec.options.get("name", "htdemucs"))
        if SPEECH_STEM not in self.model.sources:
            raise ModelNotFound(spec.name, profile, f"use a Demucs model with a {SPEECH_STEM!r} stem",
                                [f"{self.location} has stems {', '.join(self.model.sources)}"])
        self.speech_index = self.model.sources.index(SPEECH_STEM)
        self.shifts = int(spec.options.get("shifts", 0))  # random time shifts averaged (better, N times slower)
        log.info("separator %s loaded from %s on %s", spec.name, self.location, self.device)

    def separate(self, samples: np.ndarray, sr: int) -> np.ndarray:
        """Mono float32 at ``sr`` -> the speech in it, same rate and length (time-aligned)."""
        import torch
        from demucs.apply import apply_model

        x = np.ascontiguousarray(samples, dtype=np.float32)
        if x.size == 0:
            return x.copy()
        wav = torch.from_numpy(resample(x, sr, self.model.samplerate))
        wav = wav.expand(self.model.audio_channels, -1)  # demucs' own rule for mono input: the same on every channel
        mean, std = wav.mean(), wav.std() + NORM_EPS  # demucs normalises the mixture like this, then undoes it
        with torch.inference_mode():
            stems = apply_model(self.model, ((wav - mean) / std)[None], shifts=self.shifts, split=True,
                                overlap=OVERLAP, device=self.device)
        speech = (stems[0, self.speech_index] * std + mean).mean(0).cpu().numpy()
        speech = resample(speech, self.model.samplerate, sr)
        out = np.zeros_like(x)
        out[: min(len(out), len(speech))] = speech[: len(out)]
        return out
