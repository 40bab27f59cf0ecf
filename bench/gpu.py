"""`make gpu-check` (= ``python -m bench.gpu``): the GPU path checked and measured in one run, < 8 min on one H100/H200.

1. The ``gpu`` tests (``pytest -m gpu tests/actors/chatterbox``): CUDA graphs per bucket give the eager decode's tokens.
2. T3 and S3Gen of the full-size ChatterBox multilingual architecture (seeded random weights) per batch size 1, 8,
   32, 64 and 128, ``fast`` decode vs ``exact``, every line forced to 6 s of speech (150 tokens): x real time and
   peak GPU memory (bench/batch.py's measurement).
3. End to end on Ray actors: 3 speakers x 20 lines x 3 languages (bench.scenarios' 3x20x3 espeak dialogue) from its
   transcript (so no ASR or diarization weights need to travel), the tiny Marian translator and the full-size
   synthesizer with forced lengths (bench/forced.py), one job alone and four at once: seconds of dubbed audio per
   wall second, the goal being >= 100 on one H100.

A GPU machine may have no espeak-ng or ffmpeg and nothing can be downloaded there, so the inputs (the dialogue as
WAV, its transcript, the tiny Marian) are made beforehand on any machine with ``python -m bench.gpu --prepare DIR``
and carried along. Fitting the lines needs sox: where the machine lacks it, ``make gpu-debs`` downloads
Debian's packages into ``.deb/`` to carry, and ``make gpu-check`` unpacks them. The report (markdown) goes to ``--out`` (and stdout); ``--record`` appends it to
bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

SIZES = (1, 8, 32, 64, 128)
LINE_S = 6.0  # forced audio per line in the kernel measurements (150 speech tokens)
PRESETS = ("fast", "exact")
SCENARIO = "3x20x3"
GOAL_DUB_PER_S = 100.0  # seconds of dubbed audio per wall second, one H100
CONCURRENT_JOBS = 4
ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Job:
    preset: str
    jobs: int
    lines: int
    dub_s: float
    wall_s: float
    batches: list[int]
    flagged: int

    @property
    def dub_per_s(self) -> float:
        return self.dub_s / self.wall_s


def prepare(directory: Path) -> None:
    """The end-to-end inputs: the 3x20x3 dialogue (WAV), its transcript with speakers (SRT), the tiny Marian."""
    import soundfile as sf

    from bench.scenarios import CPU_SCENARIOS, _commit, build_input
    from tests.fixtures import tiny_chatterbox, tiny_marian

    directory.mkdir(parents=True, exist_ok=True)
    scenario = next(s for s in CPU_SCENARIOS if s.name == SCENARIO)
    wav = build_input(scenario, directory)
    lines = json.loads(wav.with_suffix(".json").read_text())["lines"]
    cues = [f"{i}\n{_stamp(line['start_s'])} --> {_stamp(line['end_s'])}\n[{line['speaker']}] {line['text']}\n"
            for i, line in enumerate(lines, start=1)]
    wav.with_suffix(".srt").write_text("\n".join(cues))
    samples, sr = sf.read(wav, dtype="float32")
    sf.write(wav.with_suffix(".flac"), samples, sr)  # a third of the WAV: what travels to a GPU machine is capped
    wav.unlink()
    tiny_marian.build(directory / "tiny_marian")
    (directory / "vocab").mkdir(exist_ok=True)
    tiny_chatterbox.write_vocab(directory / "vocab" / tiny_chatterbox.VOCAB_FILE)
    (directory / "commit").write_text(_commit())
    print(f"prepared {directory}: {SCENARIO}.flac, {SCENARIO}.srt ({len(cues)} cues), tiny_marian, vocab")


def _stamp(seconds: float) -> str:
    ms = int(round(seconds * 1000))
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"


def run_tests() -> str:
    """The gpu-marked tests; their summary line."""
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider", "tests/actors/chatterbox"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    print(proc.stdout[-3000:], proc.stderr[-2000:], sep="\n", flush=True)
    lines = [line for line in proc.stdout.splitlines() if " passed" in line or " failed" in line or " error" in line]
    return lines[-1] if lines else f"pytest exited {proc.returncode}"


def kernels(preset: str, sizes: tuple[int, ...]) -> list:
    """T3 and S3Gen per batch size under one decode preset, on a freshly loaded full-size model."""
    import tempfile

    import torch

    from actors.chatterbox.batch_t3 import preset as decode_preset
    from bench.batch import load, measure, voices
    from bench.forced import quiet

    quiet()
    with tempfile.TemporaryDirectory() as directory:
        synth = load("full", "cuda", Path(directory))
    synth.configure_decode(decode_preset(preset, "cuda"), max(sizes))
    conds = voices(synth)
    tokens = round(LINE_S * 25)
    rows = []
    for batch in sizes:
        rows.append(measure(synth, conds, batch, tokens, "cuda"))
        row = rows[-1]
        print(f"{preset} batch {batch}: T3 {row.audio_s / row.t3_s:.1f}x S3Gen {row.audio_s / row.s3gen_s:.1f}x "
              f"peak {_gb(row.t3_peak_gb)}/{_gb(row.s3gen_peak_gb)} GB", flush=True)
    captures = synth._pool.captures if synth._pool else 0
    del synth, conds
    gc.collect()
    torch.cuda.empty_cache()
    print(f"{preset}: {captures} decode-step graphs captured", flush=True)
    return rows


def profile(inputs: Path):
    """Full-size random ChatterBox (forced lengths) + the tiny Marian; ASR and diarizer are never started."""
    from actors.models import OFFLINE, Profile
    from bench.scenarios import TARGETS, synthesizer_spec
    from tests.fixtures import tiny_marian

    return Profile(
        name="gpu-check", description="full-size random ChatterBox (forced lengths), tiny Marian; from transcripts",
        models=(OFFLINE.model("asr"), OFFLINE.model("diarizer"), tiny_marian.spec_for(inputs / "tiny_marian"),
                synthesizer_spec(inputs / "vocab", "bench.forced:load_full_random",
                                 "full-size ChatterBox multilingual, random weights (forced lengths)")),
        sources=("en",), targets=TARGETS,
    )


def end_to_end(inputs: Path, out: Path, presets: tuple[str, ...], deadline: float) -> list[Job]:
    """Jobs through the graph on Ray actors (translator + synthesizer: the transcript names every speaker)."""
    import ray
    import soundfile as sf

    from bench.scenarios import TARGETS
    from graph.options import AsrOptions, DubOptions
    from graph.run.local_ray import init_ray
    from graph.run.pipeline import dub
    from graph.run.pools import Replicas, make_job, start_stages, stop_stages, wait_ready

    audio = inputs / f"{SCENARIO}.flac"
    srt = audio.with_suffix(".srt")
    prof = profile(inputs)
    options = DubOptions(targets=TARGETS, profile=prof.name, asr=AsrOptions(language="en"))
    init_ray(num_cpus=os.cpu_count(), num_gpus=1)
    results = []
    for preset in presets:
        if time.monotonic() > deadline:
            print(f"skipping the {preset} end-to-end run: out of time", flush=True)
            continue
        replicas = Replicas(synthesizer=1, synth_batch=128, synth_decode=preset, synth_gpu=0.75, translator_gpu=0.125)
        stages = start_stages(prof, replicas, roles=("translator", "synthesizer"))
        try:
            wait_ready(stages)

            async def jobs(count: int, tag: str):
                made = [make_job(audio, out / preset / f"{tag}-{i}", options, prof, f"{tag}{i}", transcript=srt)
                        for i in range(count)]
                return await asyncio.gather(*(dub(job, stages) for job in made))

            asyncio.run(jobs(1, "warm"))  # first batches capture their buckets' graphs
            for count in (1, CONCURRENT_JOBS) if preset == "fast" else (1,):  # exact is the slow reference
                ray.get([h.stats.remote() for h in stages.synthesizer.handles])  # reset
                started = time.perf_counter()
                done = asyncio.run(jobs(count, f"x{count}-"))
                wall = time.perf_counter() - started
                stats = ray.get([h.stats.remote() for h in stages.synthesizer.handles])
                manifests = [json.loads(Path(r.manifest).read_text()) for r in done]
                dub_s = sum(sf.info(Path(r.manifest).parent / f"{lang}.wav").duration
                            for r in done for lang in r.outputs)
                lines = sum(len(m["languages"][lang]["lines"]) for m in manifests for lang in m["languages"])
                flagged = sum(len(m["languages"][lang]["lines_flagged"]) for m in manifests for lang in m["languages"])
                results.append(Job(preset, count, lines, dub_s, wall, [b for s in stats for b in s["batches"]],
                                   flagged))
                print(f"e2e {preset} x{count}: {dub_s:.0f} s dubbed in {wall:.2f} s = {dub_s / wall:.1f} s/s; "
                      f"batches {results[-1].batches}", flush=True)
        finally:
            stop_stages(stages)
    ray.shutdown()
    return results


def _gb(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def report(info: dict, tests: str, rows: dict[str, list], jobs: list[Job], elapsed_s: float,
           failures: list[str] = ()) -> str:
    out = [f"## GPU check {info['date']}", "",
           f"- Device: {info['device']}; host {info['cpu']}, {info['cores']} cores, {info['ram']} RAM; torch "
           f"{info['torch']}, transformers {info['transformers']}. Commit: {info['commit']}.",
           f"- `gpu` tests: {tests}.",
           "- Full-size ChatterBox multilingual with seeded random weights. Decode presets: `fast` = T3 and the S3Gen "
           "estimator in bf16, static KV caches per bucket with the step in a CUDA graph, race sampler, no "
           "alignment analyzer; `exact` = fp32, dynamic cache, chatterbox's sampler and analyzer per line.", ""]
    if rows:
        out += [f"T3 and S3Gen alone, lines forced to {LINE_S:g} s (x real time = s of audio per wall s, all lines):",
                "", "| batch | " + " | ".join(f"T3 {p}" for p in rows) + " | " + " | ".join(f"S3Gen {p}" for p in rows)
                + " | " + " | ".join(f"peak GB {p} (T3/S3Gen)" for p in rows) + " |",
                "|---" * (1 + 3 * len(rows)) + "|"]
        for i in range(min(len(r) for r in rows.values())):
            batch = next(iter(rows.values()))[i].batch
            cells = [f"{r[i].audio_s / r[i].t3_s:.1f}x" for r in rows.values()]
            cells += [f"{r[i].audio_s / r[i].s3gen_s:.1f}x" for r in rows.values()]
            cells += [f"{_gb(r[i].t3_peak_gb)} / {_gb(r[i].s3gen_peak_gb)}" for r in rows.values()]
            out.append(f"| {batch} | " + " | ".join(cells) + " |")
        out.append("")
    if jobs:
        out += [f"End to end on Ray ({SCENARIO}: 3 speakers x 20 lines x 3 languages from its transcript; tiny "
                "Marian; synthesizer batch 128):", "",
                "| decode | jobs at once | lines | dubbed s | wall s | dubbed s per wall s | batches | lines flagged |",
                "|---|---|---|---|---|---|---|---|"]
        for j in jobs:
            out.append(f"| {j.preset} | {j.jobs} | {j.lines} | {j.dub_s:.0f} | {j.wall_s:.2f} | **{j.dub_per_s:.1f}** | "
                       f"{', '.join(map(str, j.batches))} | {j.flagged} |")
        best = max(jobs, key=lambda j: j.dub_per_s)
        verdict = "met" if best.dub_per_s >= GOAL_DUB_PER_S else "not met"
        out += ["", f"- Goal >= {GOAL_DUB_PER_S:.0f} s of dubbed audio per wall second: best {best.dub_per_s:.1f} "
                    f"({best.preset}, {best.jobs} job(s) at once): {verdict}."]
    out += [f"- {failure}" for failure in failures]
    out.append(f"- The whole check took {elapsed_s / 60:.1f} min.")
    return "\n".join(out) + "\n"


def machine_info(inputs: Path) -> dict:
    import torch
    import transformers

    from bench.scenarios import machine

    info = machine()
    if info["commit"] == "unknown" and (inputs / "commit").exists():  # no git where the check ran
        info["commit"] = (inputs / "commit").read_text().strip() + " (as prepared)"
    info.update(device=torch.cuda.get_device_name(0), torch=torch.__version__, transformers=transformers.__version__)
    return info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prepare", type=Path, help="make the end-to-end inputs in this directory and stop")
    parser.add_argument("--inputs", type=Path, default=ROOT / "gpu-inputs", help="made by --prepare")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or "gpu-check"))
    parser.add_argument("--budget-s", type=float, default=450.0, help="skip what would start after this")
    parser.add_argument("--skip", default="", help="comma-separated parts to skip: tests, kernels, e2e")
    parser.add_argument("--record", action="store_true", help="append the report to bench/RESULTS.md")
    args = parser.parse_args()
    if args.prepare:
        prepare(args.prepare)
        return
    import torch

    if not torch.cuda.is_available():
        raise SystemExit("the GPU check needs a CUDA device")
    started = time.monotonic()
    deadline = started + args.budget_s
    skip = set(filter(None, args.skip.split(",")))
    args.out.mkdir(parents=True, exist_ok=True)
    info, rows, jobs, failures = machine_info(args.inputs), {}, [], []

    def attempt(part: str, run) -> None:
        """One part of the check; a failure is reported with what the others measured, never lost with them."""
        if part in skip:
            return
        try:
            run()
        except Exception as exc:  # noqa: BLE001 - reported, and the next part still runs
            import traceback

            traceback.print_exc()
            failures.append(f"{part} failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
        text = report(info, tests[0], rows, jobs, time.monotonic() - started, failures)
        (args.out / "gpu-check.md").write_text(text)

    tests = ["skipped"]
    attempt("tests", lambda: tests.__setitem__(0, run_tests()))
    for preset in PRESETS:
        if time.monotonic() < deadline:
            attempt("kernels", lambda: rows.__setitem__(preset, kernels(preset, SIZES)))
    attempt("e2e", lambda: jobs.extend(end_to_end(args.inputs, args.out / "e2e", PRESETS, deadline)))
    text = (args.out / "gpu-check.md").read_text()
    print(text)
    if args.record:
        from bench.report import append

        append(text)


if __name__ == "__main__":
    main()
