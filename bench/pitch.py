"""The offline voice's pitch analysis: pYIN on librosa's default pitch grid (0.1 semitone) against the grid
``actors.espeak`` uses (``PITCH_RESOLUTION``), on the same references in one run.

    python -m bench.pitch [--record]    # --record appends the table to bench/RESULTS.md

References: every line of the test dialogues' three espeak-ng voices (tests/fixtures/make_dialogue.VOICES, each
speaking every bench sentence) and pyannote's sample.wav cut at its reference turns of 1 s or more (real speech).
Reported: seconds of analysis per second of audio for each grid and their ratio, how far the median F0 moves
(semitones), and what that does to the espeak voice chosen (``actors.espeak.choose``): gender flips, variant
changes, ``-p`` steps, and whether the dialogue's speakers still get three different voices.
"""

from __future__ import annotations

import importlib.util
import time
from collections import Counter
from pathlib import Path

import numpy as np

from actors import espeak
from bench.report import table_main
from bench.scenarios import SENTENCES, SPEAKERS
from tests.fixtures.make_dialogue import SR, speak

DEFAULT_RESOLUTION = 0.1  # librosa.pyin's own default


def references() -> list[tuple[str, np.ndarray]]:
    """(speaker, 16 kHz mono) pairs: made voices first, then pyannote's sample turns."""
    import librosa
    import soundfile as sf

    refs = [(speaker, speak(text, speaker)) for speaker in SPEAKERS for text in SENTENCES]
    sample = Path(importlib.util.find_spec("pyannote.audio").origin).parent / "sample"
    audio, sr = sf.read(sample / "sample.wav", dtype="float32")
    for row in (sample / "sample.rttm").read_text().split("\n"):
        fields = row.split()
        if len(fields) > 7 and float(fields[4]) >= 1.0:
            start, length = float(fields[3]), float(fields[4])
            turn = audio[int(start * sr) : int((start + length) * sr)]
            refs.append((f"sample:{fields[7]}", librosa.resample(turn, orig_sr=sr, target_sr=SR)))
    return refs


def analyse(refs: list[tuple[str, np.ndarray]], resolution: float) -> tuple[list, float]:
    espeak.measure(refs[0][1][:SR], resolution)  # imports and kernels loaded before the clock starts
    start = time.perf_counter()
    measured = [espeak.measure(y, resolution) for _, y in refs]
    return measured, time.perf_counter() - start


def compare() -> dict:
    refs = references()
    audio_s = sum(len(y) for _, y in refs) / SR
    base, base_s = analyse(refs, DEFAULT_RESOLUTION)
    used, used_s = analyse(refs, espeak.PITCH_RESOLUTION)
    pairs = [(a, b) for a, b in zip(base, used) if a and b]
    choices = [(espeak.choose(*a), espeak.choose(*b)) for a, b in pairs]
    semitones = [abs(12 * np.log2(b[0] / a[0])) for a, b in pairs]
    gender = [(x[0] in espeak.MALE) != (y[0] in espeak.MALE) for x, y in choices]
    steps = [abs(x[1] - y[1]) for (x, y), flip in zip(choices, gender) if not flip]

    def voices(measured) -> set:  # each made speaker's most common choice
        return {Counter(espeak.choose(*m)[0] for (s, _), m in zip(refs, measured) if s == speaker and m)
                .most_common(1)[0][0] for speaker in SPEAKERS}  # fmt: skip

    return {
        "references": len(refs), "audio_s": audio_s, "unvoiced_changed": sum((a is None) != (b is None)
                                                                            for a, b in zip(base, used)),
        "base_rtf": base_s / audio_s, "used_rtf": used_s / audio_s, "speed_up": base_s / used_s,
        "semitones_mean": float(np.mean(semitones)), "semitones_max": float(np.max(semitones)),
        "gender_flips": sum(gender), "variant_changes": sum(x[0] != y[0] for x, y in choices),
        "steps_mean": float(np.mean(steps)), "steps_max": int(np.max(steps)),
        "distinct_base": len(voices(base)), "distinct_used": len(voices(used)),
    }  # fmt: skip


def table(r: dict) -> str:
    return "\n".join([
        f"{r['references']} references, {r['audio_s']:.1f} s of audio (three espeak-ng voices x "
        f"{len(SENTENCES)} sentences, pyannote's sample.wav turns >= 1 s)",
        "",
        "| grid | s of analysis per s of audio | speed-up |",
        "|---|---|---|",
        f"| {DEFAULT_RESOLUTION} semitone (librosa's default) | {r['base_rtf']:.3f} | 1.0x |",
        f"| {espeak.PITCH_RESOLUTION} semitone (used) | {r['used_rtf']:.3f} | {r['speed_up']:.1f}x |",
        "",
        f"Median F0 moved {r['semitones_mean']:.2f} semitones on average (at most {r['semitones_max']:.2f}); "
        f"gender flips {r['gender_flips']}, variant changes {r['variant_changes']}, `-p` steps moved "
        f"{r['steps_mean']:.1f} on average (at most {r['steps_max']}; one step is ~0.1-0.2 semitone), voiced/unvoiced "
        f"changes {r['unvoiced_changed']}; the three made speakers get {r['distinct_used']} different variants "
        f"({r['distinct_base']} on the default grid).",
    ])  # fmt: skip


def main() -> None:
    table_main(__doc__, "Offline voice pitch grid (`python -m bench.pitch`)", "", lambda: table(compare()))


if __name__ == "__main__":
    main()
