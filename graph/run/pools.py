"""Running jobs on plain Ray actors: one pool per model role, built from a profile (CLI and backfill)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from pathlib import Path

from graph import audio
from graph.errors import BadInput
from graph.languages import language
from graph.media.outputs import check_writable, remove_outputs
from graph.options import DubOptions
from graph.run.checkpoint import Checkpoint
from graph.run.pipeline import DubJob, DubResult, ProgressFn, Stages, dub
from graph.run.stages import ActorPool

log = logging.getLogger(__name__)

MAX_COUNT = 1024  # actors per role, threads per actor, lines per batch
MAX_RESTARTS = 3  # an actor whose process or node died starts again elsewhere this often, then is dropped
MAX_WAIT_S = 10.0


@dataclass(frozen=True)
class Replicas:
    """Actors per role and how they share the machine (fractional GPUs when the cluster has GPUs)."""

    asr: int = 1
    diarizer: int = 1
    translator: int = 1
    synthesizer: int = 1
    synth_threads: int = 2  # lines one synthesizer actor voices at once, each alone (when synth_batch is 1)
    synth_batch: int = 1  # > 1: lines one synthesizer actor decodes together in one batch (ChatterBox only)
    synth_wait_s: float = 0.02  # how long a line waits for others to join its batch
    synth_decode: dict | None = None  # DecodeOptions fields for batches (actors/chatterbox/batch_t3.py): GPU speed options
    # GPU fraction per actor when the cluster has GPUs (0.25 = four actors share one GPU)
    synth_gpu: float = 0.25
    asr_gpu: float = 0.25
    diarizer_gpu: float = 0.125
    translator_gpu: float = 0.125

    def __post_init__(self) -> None:
        counts = {"asr": self.asr, "diarizer": self.diarizer, "translator": self.translator,
                  "synthesizer": self.synthesizer, "synthesizer threads": self.synth_threads,
                  "synthesizer batch": self.synth_batch}
        bad = [f"{name} {value}" for name, value in counts.items() if not 1 <= value <= MAX_COUNT]
        if not 0 <= self.synth_wait_s <= MAX_WAIT_S:
            bad.append(f"batch wait {self.synth_wait_s} s")
        if bad:
            raise BadInput(f"replicas, threads and batch sizes must be from 1 to {MAX_COUNT} and waits from 0 to "
                           f"{MAX_WAIT_S:g} s; got {', '.join(bad)}")

    @property
    def lines_per_synthesizer(self) -> int:
        return self.synth_batch if self.synth_batch > 1 else self.synth_threads

    @property
    def synth_shape(self) -> str:
        """How lines are voiced, for reports: "2 x 1 line", "1 x batch 128"."""
        per = f"batch {self.synth_batch}" if self.synth_batch > 1 else f"{self.synth_threads} line(s)"
        return f"{self.synthesizer} x {per}"


def check_batching(profile, replicas: Replicas) -> None:
    """Batched synthesis needs a synthesizer with ``synthesize_batch`` (ChatterBox; not espeak): say so up front."""
    from actors.chatterbox.batcher import can_batch
    from actors.models import load_object

    synth = profile.model("synthesizer")
    if replicas.synth_batch != 1 and not can_batch(load_object(synth.actor)):
        raise BadInput(f"the {profile.name} profile's synthesizer ({synth.name}) cannot decode lines in batches: "
                       "leave the synthesizer batch at 1")


def start_stages(profile, replicas: Replicas = Replicas()) -> Stages:
    """Start one actor pool per role (actors load their model in their own process).

    Synthesizers are ``BatchingSynthesizer`` actors around the profile's class, so the CLI, backfills and Serve
    voice lines the same way (one at a time per thread, or decoded in batches with ``synth_batch``).

    On a cluster, the actors of a role are spread over the nodes that can hold them, and an actor whose node is
    lost (a spot worker reclaimed) restarts elsewhere: the calls it had in flight run again there (model calls
    are stateless), and what it returned but was not fetched yet is recomputed by Ray from its lineage.
    """
    import ray

    from actors.chatterbox.batcher import BatchingSynthesizer
    from actors.models import load_object

    check_batching(profile, replicas)
    has_gpu = ray.cluster_resources().get("GPU", 0) > 0

    def pool(role: str, count: int, gpu: float, actor: type | None = None, per_actor: int = 1,
             args: tuple = ()) -> ActorPool:
        spec = profile.model(role)
        remote = ray.remote(actor or load_object(spec.actor))
        options = {"num_cpus": 0, "max_concurrency": per_actor, "max_restarts": MAX_RESTARTS,
                   "max_task_retries": 1, "scheduling_strategy": "SPREAD"}  # fmt: skip
        if gpu and has_gpu:
            options["num_gpus"] = gpu
        return ActorPool([remote.options(**options).remote(spec, profile.name, *args) for _ in range(count)],
                         per_actor)

    return Stages(
        asr=pool("asr", replicas.asr, replicas.asr_gpu),
        diarizer=pool("diarizer", replicas.diarizer, replicas.diarizer_gpu),
        translator=pool("translator", replicas.translator, replicas.translator_gpu),
        synthesizer=pool("synthesizer", replicas.synthesizer, replicas.synth_gpu, BatchingSynthesizer,
                         replicas.lines_per_synthesizer,
                         (replicas.synth_batch, replicas.synth_wait_s, replicas.synth_decode)),
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
    from graph.run.local_ray import init_ray

    job = make_job(input_path, out_dir, options, profile)
    check_batching(profile, replicas)
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
