"""Speech to timed words with faster-whisper (CTranslate2 Whisper): tiny.en offline, large-v3-turbo in full."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from actors.models import ModelSpec, load_object, resolve
from graph.audio import SAMPLE_RATE
from graph.errors import UnsupportedLanguage
from graph.languages import LANGUAGES, language
from graph.options import AsrOptions
from graph.types import Transcript, Word

log = logging.getLogger(__name__)


def _dubgraph_code(whisper_code: str) -> str:
    """Whisper's code -> dubgraph's: the exact code when one exists ("pt", not "pt-br"), else the first match."""
    if whisper_code in LANGUAGES and LANGUAGES[whisper_code].whisper == whisper_code:
        return whisper_code
    for code, lang in LANGUAGES.items():
        if lang.whisper == whisper_code:
            return code
    return whisper_code


def _device() -> str:
    """CUDA when CTranslate2 (faster-whisper's engine) sees a GPU (Ray sets which), else the CPU; asking it instead
    of torch keeps torch out of this process (importing torch costs seconds of CPU at every start)."""
    import ctranslate2

    return "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"


def _cpu_threads(spec: ModelSpec) -> int:
    """The spec's ``cpu_threads``, else the cores this process may use, up to faster-whisper's default of 4.

    faster-whisper's 0 lets CTranslate2 read OMP_NUM_THREADS, which Ray sets to 1 in every actor with under one
    CPU: transcription, the longest step of a job on a CPU, then ran on one core (the 30 s example 2.6 s against
    1.9 s on two threads, measured on 2 cores); more threads than cores were slower still.
    """
    return int(spec.options.get("cpu_threads") or min(4, len(os.sched_getaffinity(0))))


class Transcriber:
    """One faster-whisper ``WhisperModel``; words come with times from Whisper's cross-attention alignment."""

    def __init__(self, spec: ModelSpec, profile: str = "offline", device: str | None = None):
        from faster_whisper import WhisperModel

        self.spec = spec
        resolved = resolve(spec, profile)
        location = Path(resolved.location)
        if resolved.how == "package" and spec.options.get("subdir"):
            location = location / spec.options["subdir"]
        self.location = str(location)
        self.device = device or _device()
        if spec.loader:
            self.model = load_object(spec.loader)(self.location, self.device)
        else:
            kind, _, index = self.device.partition(":")
            compute_type = spec.options.get("compute_type", "float16" if kind == "cuda" else "int8")
            self.cpu_threads = _cpu_threads(spec)
            self.model = WhisperModel(
                self.location,
                device=kind,
                device_index=int(index or 0),
                compute_type=compute_type,
                cpu_threads=self.cpu_threads,
                local_files_only=True,
            )
        supported = set(self.model.supported_languages)
        self.languages = tuple(code for code, lang in LANGUAGES.items() if lang.whisper in supported)  # dubgraph codes
        log.info("asr %s loaded from %s on %s", spec.name, self.location, self.device)

    def transcribe(self, audio: np.ndarray, options: AsrOptions = AsrOptions()) -> Transcript:
        """Mono float32 at 16 kHz -> the language and every non-empty word, times in seconds, never decreasing.

        The language is the one given, else the detected one; speech in a language dubgraph does not know raises
        ``UnsupportedLanguage``, and a transcript without words whose detected language is unknown says "und".
        """
        given = language(options.language, self.languages, what="source") if options.language else None
        if given is None and not self.model.model.is_multilingual:
            given = LANGUAGES["en"]  # nothing to detect
        audio = np.ascontiguousarray(audio, dtype=np.float32)
        if audio.size == 0:
            return Transcript(language=given.code if given else "und", words=())
        duration = len(audio) / SAMPLE_RATE
        segments, info = self.model.transcribe(
            audio,
            language=given.whisper if given else None,
            beam_size=options.beam_size,
            word_timestamps=True,
            vad_filter=options.vad_filter,
        )
        words: list[Word] = []
        last_end = 0.0
        for segment in segments:  # a generator: decoding happens while iterating
            for w in segment.words or ():
                text = w.word.strip()
                if not text:
                    continue
                start = min(max(float(w.start), last_end), duration)
                end = min(max(float(w.end), start), duration)
                words.append(
                    Word(
                        text=text,
                        start_s=round(start, 3),
                        end_s=round(end, 3),
                        probability=round(float(w.probability), 4),
                    )
                )
                last_end = end
        if given:
            return Transcript(language=given.code, words=tuple(words))
        detected = _dubgraph_code(info.language)
        if detected not in self.languages:
            if words:
                raise UnsupportedLanguage(detected, self.languages, what="source")
            detected = "und"
        return Transcript(language=detected, words=tuple(words))
