"""`python -m bench.separation`: the background bed by source separation vs ducking, on a mix with known parts.

The mix (tests/fixtures/mix.py) is speech over a bed sox makes (chords of sine partials with a triangle bass, plus
pink noise), 12 dB under the speech, in mono and in 5.1 (speech in the centre). The speech is the espeak dialogue
(clean synthetic lines with silence between them) and, as a second case, the real two-speaker conversation that
ships with pyannote.audio (sample.wav: breaths, hesitations, overlapping turns; its reference turns sample.rttm
are the lines). Each method's bed is the one the pipeline lays under the voices, built by the same functions
(graph.timeline.bed):
- separation: the separator's speech estimate of the speech mix, subtracted from every channel by its gain;
- ducking: the source faded to silence under the lines the offline ASR and diarizer find in the mix.
Scores, against the true bed (they do not depend on the machine's load):
- SI-SDR of the estimated bed (all channels), dB;
- speech leakage: the energy of the true speech left in the bed, dB relative to the mix (per 50 ms frame, the
  projection of the bed on the true speech);
- bed level under each line minus the true bed's level there, dB (ducking: silence);
- separation time per minute of audio (load-dependent: rerun on a quiet machine; ``--no-times`` leaves it out).
The table is printed and appended to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from graph.timeline.bed import ducked_background, line_spans, mix_weights, separated_bed, speech_mix, voice_gains

RESULTS = Path(__file__).with_name("RESULTS.md")
FRAME_S = 0.05
MIN_FRAME_ENERGY = 1e-8


def si_sdr(estimate: np.ndarray, reference: np.ndarray) -> float:
    """Scale-invariant signal-to-distortion ratio (dB) of ``estimate`` against ``reference`` (any shape, flattened)."""
    est, ref = np.ravel(estimate).astype(np.float64), np.ravel(reference).astype(np.float64)
    target = (est @ ref) / (ref @ ref) * ref
    noise = est - target
    return float(10 * np.log10((target @ target) / max(noise @ noise, 1e-20)))


def speech_leakage_db(bed: np.ndarray, speech: np.ndarray, mixture: np.ndarray, sr: int) -> float:
    """Energy of the true ``speech`` left in ``bed`` (framewise projection), dB relative to the mixture's energy."""
    frame = int(FRAME_S * sr)
    n = bed.shape[-1] // frame * frame
    b = np.atleast_2d(bed)[:, :n].reshape(-1, n // frame, frame).astype(np.float64)
    s = np.atleast_2d(speech)[:, :n].reshape(-1, n // frame, frame).astype(np.float64)
    energy = np.einsum("cfk,cfk->cf", s, s)
    kept = energy > MIN_FRAME_ENERGY
    share = np.where(kept, np.einsum("cfk,cfk->cf", b, s) / np.where(kept, energy, 1.0), 0.0)
    leaked = float(np.sum(share**2 * energy))
    mix = np.asarray(mixture, np.float64)
    return float(10 * np.log10(max(leaked, 1e-20) / float(np.sum(mix * mix))))


def bed_level_errors_db(bed: np.ndarray, true_bed: np.ndarray, spans: list[tuple[int, int]]) -> list[float]:
    """Per line: the estimated bed's level minus the true bed's level over the line (dB; -inf for silence)."""
    errors = []
    for a, b in spans:
        got, want = np.mean(np.asarray(bed[:, a:b], np.float64) ** 2), np.mean(np.asarray(true_bed[:, a:b], np.float64) ** 2)
        errors.append(float(10 * np.log10(got / want)) if got > 0 else float("-inf"))
    return errors


@dataclass(frozen=True)
class Score:
    layout: str
    method: str
    model: str
    si_sdr_db: float
    leakage_db: float
    level_errors_db: list[float]
    s_per_min: float | None = None

    @property
    def within_3db(self) -> bool:
        return all(abs(e) <= 3.0 for e in self.level_errors_db)


def score(layout: str, method: str, model: str, estimate: np.ndarray, mix, spans, s_per_min=None) -> Score:
    return Score(layout, method, model, si_sdr(estimate, mix.bed), speech_leakage_db(estimate, mix.speech, mix.mixture, mix.sr),
                 bed_level_errors_db(estimate, mix.bed, spans), s_per_min)


def line_utterances(mix):
    """The lines the offline ASR + diarizer find in the mixture (what ducking ducks under), as the pipeline builds them."""
    from actors.models import OFFLINE, load_object
    from graph.audio import decode
    from graph.options import DiarizeOptions
    from graph.timeline.assign import build_utterances

    mono = decode(mix.path).samples  # the pipeline's analysis audio: ffmpeg's mono downmix at 16 kHz
    asr = load_object(OFFLINE.model("asr").actor)(OFFLINE.model("asr"), "offline")
    diarizer = load_object(OFFLINE.model("diarizer").actor)(OFFLINE.model("diarizer"), "offline")
    transcript = asr.transcribe(mono)
    turns = diarizer.diarize(mono, DiarizeOptions(num_speakers=len(mix.dialogue.speakers)))
    return build_utterances(transcript.words, turns)


def separators() -> list[tuple[str, object]]:
    """Every profile's separator that this machine has (the full profile's only with its weights present)."""
    from actors.models import PROFILES, load_object, resolve
    from graph.errors import ModelNotFound

    found = []
    for name in ("offline", "full"):
        spec = PROFILES[name].model("separator")
        try:
            resolve(spec, name, allow_download=False)
        except ModelNotFound as exc:
            print(f"skipping {spec.name}: {exc}")
            continue
        found.append((spec.name, load_object(spec.actor)(spec, name)))
    return found


def conversation(work: Path):
    """pyannote.audio's sample.wav as a Dialogue whose lines are its reference speaker turns (sample.rttm)."""
    import importlib.util
    import shutil

    import soundfile as sf

    from tests.fixtures.make_dialogue import Dialogue, DialogueLine

    root = Path(next(iter(importlib.util.find_spec("pyannote.audio").submodule_search_locations))) / "sample"
    path = shutil.copy(root / "sample.wav", work / "conversation.wav")
    lines = []
    for row in (root / "sample.rttm").read_text().splitlines():
        fields = row.split()
        start, length, speaker = float(fields[3]), float(fields[4]), fields[7]
        lines.append(DialogueLine(speaker, start, start + length, ""))
    info = sf.info(path)
    return Dialogue(Path(path), work / "conversation.json", tuple(lines), info.frames / info.samplerate, info.samplerate)


def run(layouts: list[str], sources: list[str], work: Path) -> list[Score]:
    from tests.fixtures.make_dialogue import TWO_SPEAKERS, build_dialogue
    from tests.fixtures.mix import build_mix

    speech = {"espeak": lambda: build_dialogue(work / "dialogue.wav", TWO_SPEAKERS), "sample": lambda: conversation(work)}
    models = separators()
    scores = []
    for source in sources:
        dialogue = speech[source]()
        for layout in layouts:
            mix = build_mix(work / f"{source}-{layout}", layout, dialogue)
            name = f"{source}, {layout}"
            weights = mix_weights(mix.layout, mix.mixture.shape[0])
            mixed = speech_mix(mix.mixture, weights)
            utterances = line_utterances(mix)
            true_spans = line_spans(mix.dialogue.lines, mix.sr, mix.mixture.shape[1])
            ducked = ducked_background(mix.mixture, mix.sr, utterances)
            scores.append(score(name, "ducking", "-", ducked, mix, true_spans))
            for model_name, model in models:
                t0 = time.perf_counter()
                estimate = model.separate(mixed, mix.sr)
                per_min = (time.perf_counter() - t0) / (mix.mixture.shape[1] / mix.sr / 60)
                spans = line_spans(utterances, mix.sr, mix.mixture.shape[1])
                bed = separated_bed(mix.mixture, estimate, voice_gains(mix.mixture, estimate, weights, spans))
                scores.append(score(name, "separation", model_name, bed, mix, true_spans, per_min))
    return scores


def table(scores: list[Score], times: bool) -> str:
    header = ["speech, layout", "bed by", "model", "bed SI-SDR dB", "speech leakage dB", "bed level under lines dB (min / max)",
              "within 3 dB"] + (["separation s per min of audio"] if times else [])
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for s in scores:
        low, high = min(s.level_errors_db), max(s.level_errors_db)
        row = [s.layout, s.method, s.model, f"{s.si_sdr_db:.1f}", f"{s.leakage_db:.1f}",
               "silence" if high == float("-inf") else f"{_db(low)} / {_db(high)}", "yes" if s.within_3db else "no"]
        if times:
            row.append(f"{s.s_per_min:.1f}" if s.s_per_min is not None else "–")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.separation", description=__doc__.splitlines()[0])
    parser.add_argument("--layouts", default="mono,5.1", help="comma-separated: mono, stereo, 5.1 (default mono,5.1)")
    parser.add_argument("--speech", default="espeak",
                        help="comma-separated: espeak (the dialogue), sample (pyannote's conversation); default espeak")
    parser.add_argument("--no-times", action="store_true", help="leave the (load-dependent) time column out")
    parser.add_argument("--no-record", action="store_true", help="print only; do not append to bench/RESULTS.md")
    args = parser.parse_args(argv)
    from bench.scenarios import machine

    info = machine()
    with tempfile.TemporaryDirectory(prefix="dubgraph-bench-sep-") as work:
        scores = run(_names(args.layouts), _names(args.speech), Path(work))
    text = (f"\n## Background bed: separation vs ducking, {info['date']}\n\n"
            f"- Machine: {info['cpu']}, {info['cores']} cores, {info['ram']} RAM; load average {info['load']} "
            f"at the start.\n- Commit: {info['commit']}. "
            f"Command: `python -m bench.separation {' '.join(sys.argv[1:] if argv is None else argv)}`.\n\n"
            + table(scores, not args.no_times) + "\n")
    print(text)
    if not args.no_record:
        with open(RESULTS, "a") as f:
            f.write(text)


def _db(value: float) -> str:
    return "silence" if value == float("-inf") else f"{value:+.1f}"


def _names(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


if __name__ == "__main__":
    main()
