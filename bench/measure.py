"""One scenario, both pipelines, measured the same way: wall time, peak RSS, conditionals, placement quality."""

from __future__ import annotations

import asyncio
import json
import os
import pickle
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.baseline import BaselineProcess, BaselineResult
from bench.scenarios import PeakRss, tree
from graph.options import DubOptions


@dataclass(frozen=True)
class Quality:
    onset_error_ms: tuple[float, ...]  # |onset heard in the track - source line start|, lines not moved on purpose
    output_over_input: float  # mean over languages
    flagged: int | None  # None: the pipeline flags nothing
    cut: int = 0  # lines with words left out

    @property
    def mean_ms(self) -> float:
        return statistics.fmean(self.onset_error_ms) if self.onset_error_ms else 0.0

    @property
    def max_ms(self) -> float:
        return max(self.onset_error_ms, default=0.0)


@dataclass
class Run:
    """What one pipeline did on one scenario."""

    wall_s: float
    dub_s: float  # seconds of dubbed audio written, all languages
    peak_rss_mb: float  # sum of RSS over the processes
    peak_pss_mb: float  # sum of PSS: shared pages counted once
    conditionals: int
    lines: int  # source lines (utterances)
    quality: Quality
    stage_s: dict[str, float]
    busy_s: dict[str, float] = field(default_factory=dict)  # synthesizer thread-seconds (graph)
    store: dict[str, Any] = field(default_factory=dict)  # object store after the run (graph)
    batches: list[int] = field(default_factory=list)  # lines per synthesize_batch call (graph, batched)

    @property
    def dub_per_s(self) -> float:
        return self.dub_s / self.wall_s if self.wall_s else 0.0


def bench_options(targets: tuple[str, ...], speakers: int, profile: str) -> DubOptions:
    """What both pipelines get: the known speaker count, WAV only (the baseline writes nothing else)."""
    from graph.options import DiarizeOptions

    return DubOptions(targets=targets, profile=profile, diarize=DiarizeOptions(num_speakers=speakers), formats=("wav",))


def run_baseline(baseline: BaselineProcess, input_path: Path, out_dir: Path, options: DubOptions) -> Run:
    with PeakRss(lambda: tree(baseline.pid)) as rss:
        result, wall = baseline.dub(input_path, out_dir, options)
    return baseline_run(result, wall, rss)


def baseline_run(result: BaselineResult, wall_s: float, rss: PeakRss) -> Run:
    import soundfile as sf

    from bench.timing import audit

    errors: list[float] = []
    for lang, path in result.outputs.items():
        track, sr = sf.read(path, dtype="float32")
        lines = [{"start_s": line.start_s, "end_s": line.start_s + line.duration_s, "natural_s": line.duration_s,
                  "source_start_s": line.source_start_s, "lost_s": 0.0} for line in result.lines if line.language == lang]
        errors += audit(track, sr, lines).onset_ms
    ratio = statistics.fmean(s / result.input_s for s in result.output_s.values())
    stages = dict(result.stage_s)
    return Run(
        wall_s, sum(result.output_s.values()), rss.peak_mb, rss.peak_pss_mb, result.conditionals,
        len(result.lines) // max(1, len(result.output_s)), Quality(tuple(errors), ratio, None), stages,
    )


def start_graph(profile, replicas) -> Any:
    """Actor pools of ``profile`` with their models loaded (the clock of a job starts after this)."""
    from graph.run.pools import start_stages, wait_ready

    stages = start_stages(profile, replicas)
    wait_ready(stages)
    return stages


def run_graph(stages, profile, input_path: Path, out_dir: Path, options: DubOptions, exclude_pids=()) -> Run:
    """One job through ``graph.run.pipeline.dub`` on warm actors; RSS over the driver and every Ray process."""
    import ray

    from graph.run.pipeline import dub
    from graph.run.pools import make_job

    synthesizers = stages.synthesizer.handles
    ray.get([h.stats.remote() for h in synthesizers])  # reset
    job = make_job(input_path, out_dir, options, profile)
    conditionals: dict[str, Any] = {}
    with PeakRss(lambda: tree(os.getpid(), exclude_pids)) as rss:
        started = time.perf_counter()
        result = asyncio.run(dub(job, stages, conditionals=conditionals))
        wall = time.perf_counter() - started
    busy: dict[str, float] = {}
    batches: list[int] = []
    for stats in ray.get([h.stats.remote() for h in synthesizers]):
        batches += stats["batches"]
        for part, seconds in stats["seconds"].items():
            busy[part] = busy.get(part, 0.0) + seconds
    manifest = json.loads(Path(result.manifest).read_text())
    return Run(
        wall, _dub_seconds(Path(out_dir), manifest), rss.peak_mb, rss.peak_pss_mb,
        sum(bool(v["computed"]) for v in manifest["voices"].values()), len(manifest["utterances"]),
        graph_quality(Path(out_dir), manifest), dict(result.stage_s), busy, object_store(conditionals), batches,
    )


def _dub_seconds(out_dir: Path, manifest: dict) -> float:
    import soundfile as sf

    return sum(sf.info(out_dir / f"{lang}.wav").duration for lang in manifest["languages"])


def graph_quality(out_dir: Path, manifest: dict) -> Quality:
    import soundfile as sf

    from bench.timing import audit_dub

    errors, ratios, flagged, cut = [], [], 0, 0
    for lang, output in manifest["languages"].items():
        timing = audit_dub(out_dir, lang)
        errors += timing.onset_ms
        cut += timing.cut
        ratios.append(sf.info(out_dir / f"{lang}.wav").duration / manifest["duration_s"])
        flagged += len(output["lines_flagged"])
    return Quality(tuple(errors), statistics.fmean(ratios), flagged, cut)


def object_store(conditionals: dict[str, Any], settle_s: float = 1.0) -> dict[str, Any]:
    """The conditionals objects a job left (one per speaker) and Ray's object store right after it.

    Ray frees a finished job's other objects (the decoded input, line clips) asynchronously: the store is read
    after ``settle_s``.
    """
    import ray
    from ray._private.internal_api import get_memory_info_reply, get_state_from_address

    refs = [ref for ref in conditionals.values() if isinstance(ref, ray.ObjectRef)]
    sizes = [len(pickle.dumps(value)) for value in ray.get(refs)]
    time.sleep(settle_s)
    stats = get_memory_info_reply(get_state_from_address(ray.get_runtime_context().gcs_address)).store_stats
    return {
        "conditionals_objects": len(refs),
        "conditionals_kb": [round(size / 1024, 1) for size in sizes],
        "store_kb": round(stats.object_store_bytes_used / 1024, 1),
        "store_objects": int(stats.num_local_objects),
    }
