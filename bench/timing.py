"""`python -m bench.timing`: how well dubbed lines keep time, measured in the rendered audio, graph vs baseline.

Per scenario the graph (``graph.run.pipeline.dub``, stages in-process: timing does not depend on Ray) dubs the input
once; the baseline is the serialized pipeline's placement (bench/baseline.py: each line after the source's gap
before it, no fit) of the same voice's natural-pace takes of the best candidates. Both tracks are measured the same
way (``graph.timeline.onsets.measure_lines``): onsets and ends where speech is heard, against the source's line
starts. These are quality numbers: they do not depend on the machine's load, only on the models and inputs.

Scenarios: pyannote's sample.wav, the 2-speaker espeak dialogue and the fast 3-speaker dialogue (205-240 words per
minute) on the offline profile (espeak-ng voices); the fast dialogue voiced by the tiny random ChatterBox with
forced lengths (bench/forced.py: 15 characters per second of the offline translator's pt-br, longer than the fast
speakers' slots).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from graph.timeline.onsets import measure_lines

SCENARIOS = ("sample.wav", "dialogue", "fast", "fast-tiny")
MOVE_TOLERANCE_S = 0.04  # a line counts as moved when heard this much off its source start


@dataclass(frozen=True)
class Audit:
    """One track's timing, from its audio (``onset_ms``: |heard onset - source start| of the lines not moved)."""

    lines: int
    measured: int  # lines whose onset could be told apart in the track
    cut: int
    lost_s: float
    speedups: tuple[float, ...]  # natural duration / heard duration, per line
    onset_ms: tuple[float, ...]
    moves_ms: tuple[float, ...]  # heard onset - source start of the lines moved (pre-roll < 0, shift > 0)

    @property
    def p95_speedup(self) -> float:
        return _p95(self.speedups)

    @property
    def p95_onset_ms(self) -> float:
        return _p95(self.onset_ms)

    @property
    def max_move_ms(self) -> float:
        return max((abs(m) for m in self.moves_ms), default=0.0)


def _p95(values) -> float:
    return float(np.percentile(values, 95)) if len(values) else 0.0


def audit(track: np.ndarray, sr: int, lines: list[dict[str, Any]]) -> Audit:
    """Measure ``lines`` (manifest lines: ``start_s``, ``end_s``, ``source_start_s``, ``natural_s``, ``lost_s``;
    ``shift_s``/``preroll_s`` where the graph moved one) in ``track``."""
    heard = measure_lines(track, sr, [(line["start_s"], line["end_s"]) for line in lines])
    onset_ms, moves_ms, speedups = [], [], []
    for line, h in zip(lines, heard):
        onset, end = h.onset_s, h.end_s
        if onset is None:
            onset = line.get("onset_s")  # the graph's own measurement on a stem, where the mix hides the edge
        if end is None:
            end = line.get("offset_s")
        if onset is not None and end is not None and end > onset and line["natural_s"] > 0:
            speedups.append(line["natural_s"] / (end - onset))
        if h.onset_s is None:
            continue
        error_s = h.onset_s - line["source_start_s"]
        if line.get("shift_s", 0) or line.get("preroll_s", 0):
            moves_ms.append(error_s * 1000)
        else:
            onset_ms.append(abs(error_s) * 1000)
    return Audit(
        lines=len(lines), measured=sum(h.onset_s is not None for h in heard),
        cut=sum(line["lost_s"] > 0 for line in lines), lost_s=round(sum(line["lost_s"] for line in lines), 3),
        speedups=tuple(speedups), onset_ms=tuple(onset_ms), moves_ms=tuple(moves_ms),
    )


def audit_dub(out_dir: Path, lang: str) -> Audit:
    """The graph's track of ``lang`` in ``out_dir`` against its manifest."""
    import soundfile as sf

    manifest = json.loads((Path(out_dir) / "manifest.json").read_text())
    track, sr = sf.read(Path(out_dir) / f"{lang}.wav", dtype="float32")
    return audit(track, sr, manifest["languages"][lang]["lines"])


class Recorder:
    """The synthesizer, remembering each line's conditionals by seed (so the baseline voices the same voices)."""

    def __init__(self, synthesizer: Any):
        self.synthesizer = synthesizer
        self.voices: dict[int, Any] = {}
        self.calls = 0

    def prepare(self, reference, sr):
        return self.synthesizer.prepare(reference, sr)

    def synthesize(self, text, language, conditionals, seed=0, *args):
        self.voices[seed] = conditionals
        self.calls += 1
        return self.synthesizer.synthesize(text, language, conditionals, seed, *args)


def baseline_track(recorder: Recorder, manifest: dict, lang: str, options) -> tuple[np.ndarray, int, list[dict]]:
    """The serialized baseline's track: each line's best candidate at the voice's natural pace, concatenated after
    the source's gaps (bench/baseline.py ``_concatenate``), and its lines in the audit's form."""
    import soundfile as sf

    from bench.baseline import _concatenate
    from graph.run.lines import line_seed
    from graph.timeline.onsets import speech_span
    from graph.types import Utterance

    tts = options.tts
    utterances = {u["id"]: Utterance(**u) for u in manifest["utterances"]}
    parts, natural, sr = [], {}, 24000
    with tempfile.TemporaryDirectory() as tmp:
        for line in manifest["languages"][lang]["lines"]:
            u, text = utterances[line["utterance_id"]], line["candidates"][0]
            seed = line_seed(tts.seed, u.id)
            clip = recorder.synthesizer.synthesize(text, lang, recorder.voices[seed], seed, tts.exaggeration,
                                                   tts.cfg_weight, tts.temperature)
            span = speech_span(clip.samples, clip.sr)
            natural[u.id] = span[1] - span[0] if span else 0.0
            path = Path(tmp) / f"{u.id}.wav"
            sf.write(path, clip.samples, clip.sr)
            parts.append((u, text, path))
            sr = clip.sr
        placed, track = _concatenate(parts, lang, manifest["duration_s"], sr)
    lines = [{"start_s": p.start_s, "end_s": p.start_s + p.duration_s, "source_start_s": p.source_start_s,
              "natural_s": natural[p.utterance_id], "lost_s": 0.0} for p in placed]
    return track, sr, lines


def run_scenario(name: str, work: Path) -> tuple[Audit, Audit, float]:
    """(graph, baseline) audits of one scenario, and the graph's synthesizer calls per line."""
    from actors.models import load_object
    from graph.options import DiarizeOptions, DubOptions
    from graph.run.pipeline import DubJob, Stages, dub
    from graph.run.stages import LocalStage

    source, speakers, profile = _input(name, work)
    options = DubOptions(targets=("pt-br",), profile=profile.name, diarize=DiarizeOptions(num_speakers=speakers),
                         formats=("wav",))

    def actor(role: str) -> Any:
        spec = profile.model(role)
        return load_object(spec.actor)(spec, profile.name)

    recorder = Recorder(actor("synthesizer"))
    stages = Stages(LocalStage(actor("asr")), LocalStage(actor("diarizer")), LocalStage(actor("translator")),
                    LocalStage(recorder, parallelism=2))
    out = work / "out" / name
    job = DubJob(str(source), str(out), options, profile.sources, profile.targets, {})
    result = asyncio.run(dub(job, stages))
    manifest = json.loads(Path(result.manifest).read_text())
    track, sr, lines = baseline_track(recorder, manifest, "pt-br", options)
    return audit_dub(out, "pt-br"), audit(track, sr, lines), recorder.calls / max(1, len(lines))


def _input(name: str, work: Path):
    from actors.models import OFFLINE, Profile
    from bench.scenarios import cpu_profile, models_dir, pyannote_sample
    from tests.fixtures.make_dialogue import FAST_GAPS_S, FAST_THREE, FAST_VOICES, TWO_SPEAKERS, build_dialogue

    if name == "sample.wav":
        return pyannote_sample(), 2, OFFLINE
    if name == "dialogue":
        return build_dialogue(work / "dialogue.wav", TWO_SPEAKERS).path, 2, OFFLINE
    fast = build_dialogue(work / "fast_dialogue.wav", FAST_THREE, FAST_VOICES, FAST_GAPS_S).path
    if name == "fast":
        return fast, 3, OFFLINE
    # the offline profile's real pt-br translations (the tiny Marian's random ones are short), voiced by the tiny
    # ChatterBox at forced lengths
    tiny = cpu_profile(models_dir()).model("synthesizer")
    models = tuple(OFFLINE.model(role) for role in ("asr", "diarizer", "translator")) + (tiny,)
    return fast, 3, Profile("timing-tiny", "offline analysis and translation, tiny ChatterBox at forced lengths",
                            models, sources=OFFLINE.sources, targets=OFFLINE.targets)


def table(rows: list[tuple[str, Audit, Audit, float]]) -> str:
    header = ["scenario", "lines (onsets measured)", "lines cut", "s lost", "p95 speed-up", "max speed-up",
              "p95 onset error ms, unmoved lines", "lines moved, max move ms", "takes per line (graph)"]
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, graph, base, takes in rows:
        cells = [name]
        for getter in (lambda a: f"{a.lines} ({a.measured})", lambda a: str(a.cut), lambda a: f"{a.lost_s:.2f}",
                       lambda a: f"{a.p95_speedup:.2f}", lambda a: f"{max(a.speedups, default=0):.2f}",
                       lambda a: f"{a.p95_onset_ms:,.0f}", lambda a: f"{len(a.moves_ms)}, {a.max_move_ms:,.0f}"):
            cells.append(f"{getter(base)} → **{getter(graph)}**")
        cells.append(f"{takes:.2f}")
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    from bench.scenarios import machine

    parser = argparse.ArgumentParser(prog="python -m bench.timing", description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=SCENARIOS, help="scenarios to run (default: all)")
    parser.add_argument("--work", type=Path, help="where inputs and outputs go (default: a temp directory)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave bench/RESULTS.md alone")
    args = parser.parse_args(argv)
    os.environ.setdefault("TQDM_DISABLE", "1")
    info = machine()
    work = args.work or Path(tempfile.mkdtemp(prefix="dubgraph-timing-"))
    rows = []
    for name in args.only or SCENARIOS:
        started = time.perf_counter()
        rows.append((name, *run_scenario(name, work)))
        print(f"[timing] {name}: {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    text = "\n".join([
        f"## Timing {info['date']}",
        "",
        f"- Commit {info['commit']}; {info['cpu']}, {info['cores']} cores (quality numbers: load does not change them).",
        "- Each cell: baseline → **graph**. Speed-up: natural-pace duration of the take / duration heard. Onset "
        "error: |onset heard in the track - source line start| for lines the solver did not move; moved lines "
        "(pre-roll or shift) listed apart with their largest move. Lines cut: lines with words left out. Takes per "
        "line: the graph's synthesizer calls over lines (first takes, other candidates, cuts, retakes at a corrected "
        "pace; the baseline makes one per line).",
        "",
        table(rows),
    ])
    print(text)
    if not args.no_write:
        from bench.report import append

        append(text)


if __name__ == "__main__":
    main()
