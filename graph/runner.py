"""Running jobs on plain Ray actors: one pool per model role, built from a profile (CLI and backfill)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from pathlib import Path

from . import audio
from .checkpoint import Checkpoint
from .languages import language
from .options import DubOptions
from .outputs import check_writable, remove_outputs
from .pipeline import DubJob, DubResult, ProgressFn, Stages, dub
from .stages import ActorPool

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Replicas:
    """Actors per role and how they share the machine (fractional GPUs for synthesis when there is a GPU)."""

    asr: int = 1
    diarizer: int = 1
    translator: int = 1
    synthesizer: int = 1
    synth_threads: int = 2  # concurrent stateless calls inside one synthesizer actor
    # GPU fraction per actor when the cluster has GPUs (0.25 = four actors share one GPU)
    synth_gpu: float = 0.25
    asr_gpu: float = 0.25
    diarizer_gpu: float = 0.125
    translator_gpu: float = 0.125


def start_stages(profile, replicas: Replicas = Replicas()) -> Stages:
    """Start one actor pool per role (actors load their model in their own process)."""
    import ray

    from actors.models import load_object

    has_gpu = ray.cluster_resources().get("GPU", 0) > 0

    def pool(role: str, count: int, per_actor: int = 1, gpu: float = 0.0) -> ActorPool:
        spec = profile.model(role)
        cls = ray.remote(load_object(spec.actor))
        options = {"num_cpus": 0, "max_concurrency": per_actor, "max_restarts": 1}
        if gpu and has_gpu:
            options["num_gpus"] = gpu
        return ActorPool([cls.options(**options).remote(spec, profile.name) for _ in range(count)], per_actor)

    return Stages(
        asr=pool("asr", replicas.asr, gpu=replicas.asr_gpu),
        diarizer=pool("diarizer", replicas.diarizer, gpu=replicas.diarizer_gpu),
        translator=pool("translator", replicas.translator, gpu=replicas.translator_gpu),
        synthesizer=pool("synthesizer", replicas.synthesizer, replicas.synth_threads, replicas.synth_gpu),
        put=ray.put,
    )


def stop_stages(stages: Stages) -> None:
    import ray

    for stage in (stages.asr, stages.diarizer, stages.translator, stages.synthesizer):
        for handle in getattr(stage, "handles", ()):
            ray.kill(handle)


def make_job(input_path: str | Path, out_dir: str | Path, options: DubOptions, profile, job_id: str | None = None) -> DubJob:
    """Validate everything checkable before any model loads: languages, input file, output directory."""
    for target in options.targets:
        language(target, profile.targets)
    if options.asr.language:
        language(options.asr.language, profile.sources, what="source")
    audio.probe(input_path)
    check_writable(out_dir)
    return DubJob(
        input=str(input_path),
        out_dir=str(out_dir),
        options=options,
        sources=profile.sources,
        targets=profile.targets,
        models={spec.role: spec.name for spec in profile.models},
        job_id=job_id or uuid.uuid4().hex[:12],
    )


def check_models(profile) -> None:
    """Raise the first ModelNotFound of a profile on this machine, before actors start."""
    from actors.models import check

    for _, found in check(profile):
        if isinstance(found, Exception):
            raise found


def dub_file(
    input_path: str | Path,
    out_dir: str | Path,
    options: DubOptions,
    profile,
    address: str | None = None,
    progress: ProgressFn | None = None,
    replicas: Replicas = Replicas(),
    checkpoint_dir: str | Path | None = None,
) -> DubResult:
    """Dub one file on a local (embedded) or existing Ray cluster; partial outputs are removed on failure."""
    from .local_ray import init_ray

    job = make_job(input_path, out_dir, options, profile)
    if not address:
        check_models(profile)
    init_ray(address)
    stages = start_stages(profile, replicas)
    try:
        return asyncio.run(dub(job, stages, progress, Checkpoint(checkpoint_dir)))
    except BaseException:
        remove_outputs(Path(out_dir), options.targets, options.formats)
        raise
    finally:
        stop_stages(stages)
