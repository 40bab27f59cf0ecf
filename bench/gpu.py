"""`python -m bench.run --gpu`: the full-size ChatterBox multilingual architecture (random weights) on one GPU.

Per scenario (2x10x1, 3x20x3) the baseline runs once (one model on the GPU, serialized), then the graph with 1, 2,
4 and 8 synthesizer replicas packed on the GPU with fractional ``num_gpus`` voicing 2 lines each at a time, and
with N replicas x batch B for N x B = 128 lines (``synthesize_batch`` under bf16 autocast, chatterbox's
alignment analyzer kept so forced lengths hold; the CUDA-graphed decode is measured by bench/batch.py, T3 alone).
Every line decodes exactly
``bench.forced.target_tokens`` speech tokens (25 per second of its audio). The synthesizer actors report where
their time went (conditionals, T3 decode, S3Gen). ASR, diarizer and translator are the CPU bench's models.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from actors.models import Profile
from bench.scenarios import CPU_SCENARIOS, build_input, cpu_profile, machine, models_dir, synthesizer_spec

REPLICAS = (1, 2, 4, 8)
BATCHED = ((1, 128), (2, 64), (4, 32))  # replicas, lines per batch: the same 128 lines in flight on one GPU
BATCH_DECODE = {"autocast": "bfloat16"}
SCENARIOS = ("2x10x1", "3x20x3")
GOAL_DUB_PER_S = 30.0  # seconds of dubbed audio per wall second across all replicas, one H100


def gpu_profile(directory: Path) -> Profile:
    """The CPU bench's profile with the synthesizer swapped for the full-size random model (vocab in ``directory``)."""
    from tests.fixtures.tiny_chatterbox import VOCAB_FILE, write_vocab

    vocab = directory / "full_random_chatterbox"
    vocab.mkdir(parents=True, exist_ok=True)
    write_vocab(vocab / VOCAB_FILE)
    spec = synthesizer_spec(vocab, "bench.forced:load_full_random",
                            "full-size ChatterBox multilingual, random weights (forced lengths)")
    return cpu_profile(directory).with_model(spec)


def replicas_for(count: int, batch: int = 1):
    from graph.run.pools import Replicas

    return Replicas(synthesizer=count, synth_threads=2, synth_gpu=1.0 / count, synth_batch=batch,
                    synth_decode=BATCH_DECODE if batch > 1 else None)


def run_gpu(args: argparse.Namespace) -> str:
    import ray
    import soundfile as sf
    import torch

    from bench.baseline import BaselineProcess
    from bench.measure import bench_options, run_baseline, run_graph, start_graph
    from bench.report import Row
    from graph.run.local_ray import init_ray
    from graph.run.pools import stop_stages

    if not torch.cuda.is_available():
        raise SystemExit("--gpu needs a CUDA device; the CPU bench is `python -m bench.run`")
    device = torch.cuda.get_device_name(0)
    info = machine()
    names = args.only or list(SCENARIOS)
    scenarios = [s for s in CPU_SCENARIOS if s.name in names]
    work = args.work or Path(tempfile.mkdtemp(prefix="dubgraph-bench-gpu-"))
    profile = gpu_profile(models_dir())
    inputs = {s.name: build_input(s, work / "inputs") for s in scenarios}
    init_ray(num_cpus=args.threads, num_gpus=1)
    rows: list[Row] = []
    baseline = BaselineProcess(profile, "cuda", args.threads)
    baselines = {}
    try:
        for s in scenarios:
            options = bench_options(s.targets, s.speakers, profile.name)
            baselines[s.name] = run_baseline(baseline, inputs[s.name], work / "out" / s.name / "baseline", options)
    finally:
        baseline.close()
    for count, batch in [(n, 1) for n in REPLICAS] + list(BATCHED):
        replicas = replicas_for(count, batch)
        stages = start_graph(profile, replicas)
        try:
            for s in scenarios:
                options = bench_options(s.targets, s.speakers, profile.name)
                out = work / "out" / s.name / f"graph-r{count}-b{batch}"
                graph = run_graph(stages, profile, inputs[s.name], out, options)
                input_s = sf.info(inputs[s.name]).duration
                rows.append(Row(s.name, len(s.targets), input_s, baselines[s.name], graph, replicas.synth_shape))
        finally:
            stop_stages(stages)
    ray.shutdown()
    return gpu_report(rows, info, device, args.threads)


def gpu_report(rows, info: dict[str, str], device: str, threads: int) -> str:
    from bench.report import main_table, memory_lines, split_table

    best = max(rows, key=lambda r: r.graph.dub_per_s)
    verdict = "met" if best.graph.dub_per_s >= GOAL_DUB_PER_S else "not met"
    return "\n".join([
        f"## GPU run {info['date']}",
        "",
        f"- Device: {device}; host {info['cpu']}, {info['cores']} cores, {info['ram']} RAM. Commit: {info['commit']}.",
        f"- Full-size ChatterBox multilingual with seeded random weights, lines forced to 25 speech tokens per "
        f"second of audio; baseline: one model on the GPU behind a lock; graph: synthesizer replicas sharing the "
        f"GPU (num_gpus = 1/replicas), 2 lines in flight per replica or one batch (bf16 autocast); CPU threads per "
        f"pipeline: {threads}.",
        "",
        main_table(rows),
        "",
        "Per stage (seconds):",
        "",
        split_table(rows),
        "",
        *memory_lines(rows),
        "",
        f"- Goal >= {GOAL_DUB_PER_S:.0f} s of dubbed audio per wall second: best {best.graph.dub_per_s:.1f} "
        f"({best.scenario}, synthesizers {best.synth}): {verdict}.",
        f"- Load average at the end: {', '.join(f'{x:.1f}' for x in os.getloadavg())}; "
        f"finished {time.strftime('%H:%M')}.",
    ])
