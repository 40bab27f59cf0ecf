"""`python -m bench.run` (`make bench`): dubgraph vs the serialized baseline, side by side, on this machine.

Per scenario the baseline (its own process, bench/baseline.py) and the graph (Ray actors, graph/run/pipeline.py) dub
the same input with the same models and thread budget, one after the other; models load, and each pipeline dubs
the first scenario once untimed (first-call costs), before the clocks start. Then the graph dubs every scenario
again with its synthesizers decoding lines in batches (``--batch`` lines each, ``synthesize_batch``), and once
more with 4 one-line synthesizer replicas to state its memory. The tables are printed and
appended to bench/RESULTS.md. The GPU check is `make gpu-check` (bench/gpu.py).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from bench.scenarios import CPU_SCENARIOS, Scenario, build_input, cpu_profile, machine, models_dir

GOALS = {"2x10x1": 5.0, "3x20x3": 7.0}  # speedup the project aims at (reported, not asserted)
MEMORY_REPLICAS = 4


def cpu_replicas(threads: int, synthesizers: int | None = None, batch: int = 1):
    """One synthesizer process per CPU thread, one line (or one batch) at a time each: threads inside one actor
    share its GIL, and the tiny model's decode is Python-bound (1 actor x 2 threads measured no faster than 1 x 1
    on 2 cores)."""
    from graph.run.pools import Replicas

    return Replicas(synthesizer=synthesizers or threads, synth_threads=1, synth_batch=batch)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", metavar="SCENARIO", help="scenario names, e.g. 1x5x1 2x10x1")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="CPU threads for each pipeline")
    parser.add_argument("--batch", type=int, default=8, help="lines per batch of each synthesizer in the batched runs")
    parser.add_argument("--work", type=Path, help="where inputs and outputs go (default: a temp directory)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave bench/RESULTS.md alone")
    return parser.parse_args(argv)


def selected(names: list[str] | None, scenarios: tuple[Scenario, ...]) -> list[Scenario]:
    if not names:
        return list(scenarios)
    known = {s.name: s for s in scenarios}
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise SystemExit(f"unknown scenario(s) {unknown}; choose from {', '.join(known)}")
    return [known[n] for n in names]


def run_cpu(args: argparse.Namespace) -> str:
    import ray
    import soundfile as sf

    from bench.baseline import BaselineProcess
    from bench.measure import bench_options, run_baseline, run_graph, start_graph
    from bench.report import Row
    from graph.run.local_ray import init_ray
    from graph.run.pools import stop_stages

    os.environ.setdefault("TQDM_DISABLE", "1")
    begun = time.perf_counter()
    info = machine()
    scenarios = selected(args.only, CPU_SCENARIOS)
    work = args.work or Path(tempfile.mkdtemp(prefix="dubgraph-bench-"))
    profile = cpu_profile(models_dir())
    inputs = {s.name: build_input(s, work / "inputs") for s in scenarios}
    _say(f"inputs in {work / 'inputs'}; loading models")
    baseline = BaselineProcess(profile, "cpu", args.threads)
    init_ray(num_cpus=args.threads)
    started = time.perf_counter()
    stages = start_graph(profile, cpu_replicas(args.threads))
    graph_load_s = time.perf_counter() - started
    rows: list[Row] = []
    bases = {}
    warm = scenarios[0]
    warm_options = bench_options(warm.targets, warm.speakers, profile.name)
    shape = cpu_replicas(args.threads).synth_shape
    try:
        _say(f"warm-up (untimed): {warm.name} through both")
        run_baseline(baseline, inputs[warm.name], work / "out" / "warm-up" / "baseline", warm_options)
        run_graph(stages, profile, inputs[warm.name], work / "out" / "warm-up" / "graph", warm_options, [baseline.pid])
        for s in scenarios:
            options = bench_options(s.targets, s.speakers, profile.name)
            out = work / "out" / s.name
            base = bases[s.name] = run_baseline(baseline, inputs[s.name], out / "baseline", options)
            _say(f"{s.name}: baseline {base.wall_s:.1f} s")
            graph = run_graph(stages, profile, inputs[s.name], out / "graph", options, [baseline.pid])
            _say(f"{s.name}: graph {graph.wall_s:.1f} s ({base.wall_s / graph.wall_s:.1f}x)")
            rows.append(Row(s.name, len(s.targets), sf.info(inputs[s.name]).duration, base, graph, shape))
        baseline.close()
        stop_stages(stages)
        batched = cpu_replicas(args.threads, batch=args.batch)
        stages = start_graph(profile, batched)
        run_graph(stages, profile, inputs[warm.name], work / "out" / "warm-up" / "graph-batched", warm_options)
        for s in scenarios:
            options = bench_options(s.targets, s.speakers, profile.name)
            graph = run_graph(stages, profile, inputs[s.name], work / "out" / s.name / "graph-batched", options)
            _say(f"{s.name}: graph, {batched.synth_shape}: {graph.wall_s:.1f} s "
                 f"({bases[s.name].wall_s / graph.wall_s:.1f}x; batches {graph.batches})")
            rows.append(Row(s.name, len(s.targets), sf.info(inputs[s.name]).duration, bases[s.name], graph,
                            batched.synth_shape))
        stop_stages(stages)
        memory = next((s for s in scenarios if s.name == "2x10x1"), scenarios[0])
        many = cpu_replicas(args.threads, MEMORY_REPLICAS)
        stages = start_graph(profile, many)
        run_graph(stages, profile, inputs[warm.name], work / "out" / "warm-up" / "graph-r4", warm_options)
        options = bench_options(memory.targets, memory.speakers, profile.name)
        graph = run_graph(stages, profile, inputs[memory.name], work / "out" / f"{memory.name}-r4", options)
        _say(f"{memory.name} with {MEMORY_REPLICAS} synthesizer replicas: {graph.wall_s:.1f} s")
        input_s = sf.info(inputs[memory.name]).duration
        rows.append(Row(memory.name, len(memory.targets), input_s, None, graph, many.synth_shape))
    finally:
        baseline.close()
        stop_stages(stages)
        ray.shutdown()
    loads = (baseline.load_s, graph_load_s, time.perf_counter() - begun)
    return cpu_report(rows, info, args.threads, *loads)


def cpu_report(rows, info: dict[str, str], threads: int, baseline_load_s: float, graph_load_s: float,
               total_s: float) -> str:
    from bench.report import main_table, memory_lines, split_table

    goals = []
    for row in rows:
        if row.scenario in GOALS and row.speedup is not None:
            goal = GOALS[row.scenario]
            verdict = "met" if row.speedup >= goal else "not met"
            goals.append(f"{row.scenario} {row.speedup:.1f}x (goal >= {goal:.0f}x: {verdict})")
    busy = {}
    for row in rows:
        for part, seconds in row.graph.busy_s.items():
            busy[part] = busy.get(part, 0.0) + seconds
    total = sum(busy.values()) or 1.0
    ranked = sorted(busy.items(), key=lambda item: -item[1])
    shares = ", ".join(f"{part} {100 * seconds / total:.0f} %" for part, seconds in ranked)
    end_load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    batching = [f"{row.scenario} mean {sum(row.graph.batches) / len(row.graph.batches):.1f}, max "
                f"{max(row.graph.batches)} ({len(row.graph.batches)} batches)" for row in rows if row.graph.batches]
    return "\n".join([
        f"## CPU run {info['date']}",
        "",
        f"- Machine: {info['cpu']}, {info['cores']} cores, {info['ram']} RAM; load average (1/5/15 min) "
        f"{info['load']} at the start, {end_load} at the end (other jobs share this machine).",
        f"- Commit: {info['commit']}.",
        f"- Threads: baseline = one process, torch {threads} threads, OMP_NUM_THREADS={threads}; graph = embedded "
        f"Ray with num_cpus={threads}, 1 torch thread per actor (Ray's OMP_NUM_THREADS=1), {threads} synthesizer "
        "replicas (one line at a time each) unless the row says otherwise.",
        "- Models: faster-whisper tiny.en + Silero VAD/Resemblyzer (offline profile, real weights), tiny random "
        "Marian, tiny random ChatterBox multilingual (real architecture) with forced line lengths (bench/forced.py).",
        f"- Model loading, not in the wall times: baseline {baseline_load_s:.1f} s, graph actors {graph_load_s:.1f} s; "
        f"the whole bench (inputs, models, warm-up, all runs) took {total_s / 60:.1f} min.",
        "",
        main_table(rows),
        "",
        "Per stage (seconds; the graph's languages overlap, so `synthesize` is the longest language):",
        "",
        split_table(rows),
        "",
        "Memory and object store:",
        "",
        *memory_lines(rows),
        "",
        f"- Goals: {'; '.join(goals) or 'scenarios not run'}.",
        f"- Graph synthesizer busy time over all runs: {shares} (batched rows count a batch's T3 and S3Gen once).",
        f"- Lines per batch in the batched rows: {'; '.join(batching) or 'no batched rows'}.",
    ])


def _say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    text = run_cpu(args)
    print(text)
    if not args.no_write:
        from bench.report import append

        append(text)
        _say("appended to bench/RESULTS.md")


if __name__ == "__main__":
    main()
