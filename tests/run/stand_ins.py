"""Stand-ins for the analysis stages (ASR, diarization, translation) and a recording to match, so orchestration
tests choose exactly which lines a job has, where, and what they say. Synthesizers are real or documented fakes
in each test."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from graph.types import SpeakerTurn, Transcript, Word

SR = 16000
F0 = {"A": 130.0, "B": 230.0, "C": 180.0}
Line = tuple[str, float, float, str]  # speaker, start s, end s, text


def speech(seconds: float, f0: float) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (0.3 * np.clip(np.sin(2 * np.pi * 2 * t), 0.2, 1) * np.sin(2 * np.pi * f0 * t)).astype(np.float32)


def recording(path: Path, lines: list[Line], duration_s: float) -> Path:
    """A WAV with a tone per line (its speaker's pitch) where the line is, silence elsewhere."""
    samples = np.zeros(int(duration_s * SR), np.float32)
    for speaker, start, end, _ in lines:
        part = speech(end - start, F0[speaker])
        samples[int(start * SR) : int(start * SR) + len(part)] = part
    sf.write(path, samples, SR)
    return path


class Script:
    """ASR: the words of the lines at their times."""

    def __init__(self, lines: list[Line]):
        self.lines = lines

    def transcribe(self, wave, options):
        words = []
        for _, start, end, text in self.lines:
            tokens = text.split()
            step = (end - start) / len(tokens)
            words += [Word(w, start + i * step, start + (i + 1) * step) for i, w in enumerate(tokens)]
        return Transcript("en", tuple(words))


class Turns:
    """Diarization: one turn per line."""

    def __init__(self, lines: list[Line]):
        self.lines = lines

    def diarize(self, wave, options):
        return [SpeakerTurn(s, start, end) for s, start, end, _ in self.lines]


class Said:
    """Translation: the given candidates per source text (the text itself when not given)."""

    def __init__(self, candidates: dict[str, tuple[str, ...]] | None = None):
        self.candidates = candidates or {}

    def translate(self, texts, source, target, options):
        return [self.candidates.get(t, (t,)) for t in texts]
