"""`python -m bench.pitch`: the offline voice's pitch analysis, numpy YIN (actors/espeak.py) vs librosa's pYIN.

The espeak synthesizer picks each speaker's voice (an espeak variant and a ``-p`` pitch) from the median F0 and
the median spectral centroid of the voiced frames of their reference clip. pYIN costs about 0.5 s per second of
reference on a 2-core machine (plus numba compiling it in every new process); the YIN that replaced it is
numpy only. This compares the voice each analysis picks, on:
- espeak-ng's own voices: every male and female variant at pitches 20, 50 and 80, one 8 s sentence each;
- real speech: pyannote.audio's sample.wav (two women, ~200 Hz), three 6-10 s stretches of each speaker from its
  reference turns, and the two Mandarin AISHELL utterances s3tokenizer ships, when those packages are installed.
Printed per clip: both F0s and centroids, both choices; then how many choices agree (variant and pitch exactly,
variant alone, pitch within 2) and the analysis time per second of reference (load-dependent: rerun on a quiet
machine; ``--no-times`` leaves it out). ``--record`` appends the summary to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from actors.espeak import ANALYSIS_SR, FEMALE, MALE, analyse

RESULTS = Path(__file__).with_name("RESULTS.md")
SENTENCE = ("Good morning, did you finish reading the report last night? The numbers for March look much better, "
            "and we still need to check the costs.")
PITCHES = (20, 50, 80)


def _espeak(voice: str, pitch: int) -> np.ndarray:
    import soundfile as sf

    from graph.audio import resample

    wav = subprocess.run(["espeak-ng", "-v", voice, "-p", str(pitch), "--stdin", "--stdout"], input=SENTENCE.encode(),
                         capture_output=True, check=True).stdout
    samples, sr = sf.read(io.BytesIO(wav), dtype="float32")
    return resample(samples, sr, ANALYSIS_SR)


def _package_file(package: str, *parts: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))).joinpath(*parts)
    return path if path.exists() else None


def references() -> list[tuple[str, np.ndarray]]:
    """(name, 16 kHz mono clip) for every reference compared."""
    import soundfile as sf

    from graph.audio import resample

    clips = [(f"espeak {variant} p{pitch}", _espeak(f"en-us+{variant}", pitch))
             for variant in MALE + FEMALE for pitch in PITCHES]
    sample = _package_file("pyannote.audio", "sample", "sample.wav")
    if sample is not None:
        audio, sr = sf.read(sample, dtype="float32")
        turns: dict[str, list[np.ndarray]] = {}
        for line in sample.with_suffix(".rttm").read_text().splitlines():
            fields = line.split()
            start, duration = float(fields[3]), float(fields[4])
            turns.setdefault(fields[7], []).append(audio[int(start * sr): int((start + duration) * sr)])
        for speaker, parts in turns.items():
            speech = np.concatenate(parts)
            for i, (start_s, length_s) in enumerate(((0, 10), (4, 8), (8, 6))):
                clip = speech[int(start_s * sr): int((start_s + length_s) * sr)]
                if len(clip) >= 6 * sr:
                    clips.append((f"sample.wav {speaker} #{i + 1}", resample(clip, sr, ANALYSIS_SR)))
    for name in ("BAC009S0764W0121.wav", "BAC009S0764W0122.wav"):
        path = _package_file("s3tokenizer", "assets", name)
        if path is not None:
            audio, sr = sf.read(path, dtype="float32")
            clips.append((f"aishell {path.stem}", resample(audio if audio.ndim == 1 else audio.mean(1), sr, ANALYSIS_SR)))
    return clips


def pyin(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The analysis before: librosa's pYIN and spectral centroid, the same frames (1024 every 256 at 16 kHz)."""
    import librosa

    f0, voiced, _ = librosa.pyin(y, fmin=60.0, fmax=500.0, sr=ANALYSIS_SR, frame_length=1024)
    centroid = librosa.feature.spectral_centroid(y=y, sr=ANALYSIS_SR, n_fft=1024, hop_length=256)[0]
    n = min(len(centroid), len(voiced))
    return np.where(voiced[:n], f0[:n], np.nan), centroid[:n]


def choice(f0: np.ndarray, centroid: np.ndarray) -> tuple[str, int, float, float] | None:
    """(variant, pitch, median F0, median centroid) as EspeakSynthesizer.prepare picks them; None: unvoiced."""
    from actors.espeak import CENTROID_STEP_HZ, FEMALE_F0, GENDER_SPLIT_HZ, MALE_F0, PITCH_STEPS

    voiced = ~np.isnan(f0)
    if not voiced.any():
        return None
    f0_hz, centroid_hz = float(np.median(f0[voiced])), float(np.median(centroid[voiced]))
    variants, curve = (MALE, MALE_F0) if f0_hz < GENDER_SPLIT_HZ else (FEMALE, FEMALE_F0)
    pitch = int(round(np.interp(np.log(f0_hz), np.log(curve), PITCH_STEPS)))
    return variants[int(centroid_hz // CENTROID_STEP_HZ) % len(variants)], pitch, f0_hz, centroid_hz


def compare(clips: list[tuple[str, np.ndarray]], times: bool = True) -> str:
    rows = ["| reference | pYIN: F0 Hz, centroid Hz -> voice | YIN: F0 Hz, centroid Hz -> voice | same |",
            "|---|---|---|---|"]
    same = variant = near = 0
    seconds = {"pyin": 0.0, "yin": 0.0}
    audio_s = 0.0
    for name, y in clips:
        picked = {}
        for method, run in (("pyin", pyin), ("yin", lambda clip: analyse(clip, ANALYSIS_SR))):
            t0 = time.perf_counter()
            picked[method] = choice(*run(y))
            seconds[method] += time.perf_counter() - t0
        audio_s += len(y) / ANALYSIS_SR
        old, new = picked["pyin"], picked["yin"]
        ok = old is not None and new is not None and old[:2] == new[:2]
        same += ok
        variant += old is not None and new is not None and old[0] == new[0]
        near += old is not None and new is not None and old[0] == new[0] and abs(old[1] - new[1]) <= 2
        cell = (lambda c: "unvoiced" if c is None else f"{c[2]:.1f}, {c[3]:.0f} -> {c[0]} p{c[1]}")
        rows.append(f"| {name} | {cell(old)} | {cell(new)} | {'yes' if ok else 'no'} |")
    n = len(clips)
    summary = (f"{n} references: the same voice (variant and pitch) {same}/{n}, the same variant {variant}/{n}, "
               f"the same variant with the pitch within 2 {near}/{n}.")
    if times:
        summary += (f" Analysis time per second of reference: pYIN {seconds['pyin'] / audio_s * 1000:.0f} ms, "
                    f"YIN {seconds['yin'] / audio_s * 1000:.1f} ms (pYIN's first call includes numba compiling it).")
    return "\n".join(rows + ["", summary])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.pitch", description=__doc__.splitlines()[0])
    parser.add_argument("--record", action="store_true", help="append the table to bench/RESULTS.md")
    parser.add_argument("--no-times", action="store_true", help="leave the (load-dependent) timings out")
    args = parser.parse_args(argv)
    table = compare(references(), times=not args.no_times)
    print(table)
    if args.record:
        from bench.scenarios import machine

        with RESULTS.open("a") as out:
            out.write(f"\n### `python -m bench.pitch` {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n\n"
                      f"- Machine: {machine()}.\n\n{table}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
