"""Running jobs on plain Ray actors: one pool per model role, built from a profile (CLI and backfill)."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path

from graph import audio
from graph.errors import BadInput, DubError
from graph.languages import language
from graph.media.outputs import check_writable, remove_outputs
from graph.media.transcripts import read_transcript
from graph.media.video import probe_video, video_formats
from graph.options import DubOptions
from graph.run.checkpoint import Checkpoint
from graph.run import warm
from graph.run.pipeline import DubJob, DubResult, ProgressFn, Stages, dub
from graph.run.stages import ActorPool, Unstarted
from graph.run.startup import Startup, timed
from graph.run.voices import check_voices
from graph.timeline.cues import aligned_texts, cue_utterances, named

log = logging.getLogger(__name__)

MAX_COUNT = 1024  # actors per role, threads per actor, lines per batch
MAX_RESTARTS = 3  # an actor whose process or node died starts again elsewhere this often, then is dropped
MAX_WAIT_S = 10.0


ROLES = ("asr", "diarizer", "translator", "synthesizer")
WORK_DIR = ".dubgraph"  # in a CLI dub's output directory: the line state and checkpoint that editing needs
GPU_BATCH_LINES = 64  # lines a synthesizer decodes together on a GPU when the batch size is left to choose
READY_TIMEOUT_S = 900.0  # model actors that are not up by then (placement, download-free loading) fail the run
READY_REPORT_S = 30.0


@dataclass(frozen=True)
class Replicas:
    """Actors per role and how they share the machine (fractional GPUs when the cluster has GPUs)."""

    asr: int = 1
    diarizer: int = 1
    translator: int = 1
    synthesizer: int = 1
    separator: int = 0  # background separators; ``needed`` starts one when the options keep a separated bed
    synth_threads: int = 2  # lines one synthesizer actor voices at once, each alone (when synth_batch is 1)
    synth_batch: int | None = None  # lines one synthesizer decodes together; None: 64 on a GPU, else 1
    synth_wait_s: float = 0.02  # how long a line waits for others to join its batch
    synth_decode: str | dict = "auto"  # decode preset (auto/fast/exact) or DecodeOptions fields (chatterbox/batch_t3.py)
    # GPU fraction per actor when the cluster has GPUs (0.25 = four actors share one GPU)
    synth_gpu: float = 0.25
    asr_gpu: float = 0.25
    diarizer_gpu: float = 0.125
    translator_gpu: float = 0.125
    separator_gpu: float = 0.25

    def __post_init__(self) -> None:
        counts = {"asr": self.asr, "diarizer": self.diarizer, "translator": self.translator,
                  "synthesizer": self.synthesizer, "synthesizer threads": self.synth_threads,
                  "synthesizer batch": 1 if self.synth_batch is None else self.synth_batch}
        bad = [f"{name} {value}" for name, value in counts.items() if not 1 <= value <= MAX_COUNT]
        if not 0 <= self.separator <= MAX_COUNT:
            bad.append(f"separator {self.separator}")
        if not 0 <= self.synth_wait_s <= MAX_WAIT_S:
            bad.append(f"batch wait {self.synth_wait_s} s")
        bad += [f"{role} GPU fraction {gpu}" for role, gpu in self.gpu.items() if not 0 <= gpu <= 1]
        if bad:
            raise BadInput(f"replicas, threads and batch sizes must be from 1 to {MAX_COUNT} (separators from 0), "
                           f"waits from 0 to {MAX_WAIT_S:g} s and GPU fractions 0..1; got {', '.join(bad)}")

    @property
    def counts(self) -> dict[str, int]:
        return {"asr": self.asr, "diarizer": self.diarizer, "translator": self.translator,
                "synthesizer": self.synthesizer, "separator": self.separator}

    @property
    def gpu(self) -> dict[str, float]:
        return {"asr": self.asr_gpu, "diarizer": self.diarizer_gpu, "translator": self.translator_gpu,
                "synthesizer": self.synth_gpu, "separator": self.separator_gpu}

    @property
    def lines_per_synthesizer(self) -> int:
        batch = self.synth_batch or 1
        return batch if batch > 1 else self.synth_threads

    @property
    def synth_shape(self) -> str:
        """How lines are voiced, for reports: "2 x 1 line", "1 x batch 128"."""
        batch = self.synth_batch or 1
        per = f"batch {batch}" if batch > 1 else f"{self.synth_threads} line(s)"
        return f"{self.synthesizer} x {per}"

    def for_cluster(self, profile, has_gpu: bool) -> "Replicas":
        """The batch size chosen when left open: ``GPU_BATCH_LINES`` on a GPU for a synthesizer that batches."""
        if self.synth_batch is not None:
            return self
        return replace(self, synth_batch=GPU_BATCH_LINES if has_gpu and _batches(profile) else 1)


def _batches(profile) -> bool:
    from actors.chatterbox.batcher import can_batch
    from actors.models import load_object

    return can_batch(load_object(profile.model("synthesizer").actor))


def check_batching(profile, replicas: Replicas) -> None:
    """Batched synthesis needs a synthesizer with ``synthesize_batch`` (ChatterBox; not espeak): say so up front."""
    if (replicas.synth_batch or 1) != 1 and not _batches(profile):
        synth = profile.model("synthesizer")
        raise BadInput(f"the {profile.name} profile's synthesizer ({synth.name}) cannot decode lines in batches: "
                       "leave the synthesizer batch at 1")


def check_resources(replicas: Replicas, cluster: dict[str, float], strict: bool = True,
                    roles: tuple[str, ...] = ROLES) -> None:
    """The pools' GPU requests against the cluster's GPUs, before any actor starts: an actor whose request can never
    be placed would leave the run waiting forever. ``strict`` False (a cluster that may autoscale) only warns."""
    available = cluster.get("GPU", 0)
    if not available:
        return
    asking = [role for role in (*roles, "separator") if replicas.counts[role]]
    total = sum(replicas.counts[role] * replicas.gpu[role] for role in asking)
    if total <= available + 1e-9:
        return
    detail = ", ".join(f"{role} {replicas.counts[role]} x {replicas.gpu[role]:g}" for role in asking)
    message = (f"the model actors ask for {total:g} GPUs ({detail}) but the cluster has {available:g}: lower the "
               "synthesizer replicas (--synth-replicas) or the GPU fractions")
    if strict:
        raise BadInput(message)
    log.warning("%s; waiting for the autoscaler to add GPU workers", message)


def start_stages(profile, replicas: Replicas = Replicas(), strict: bool = True,
                 roles: tuple[str, ...] = ROLES, keep: bool = False) -> Stages:
    """Start one actor pool per role in ``roles`` (actors load their model in their own process).

    Synthesizers are ``BatchingSynthesizer`` actors around the profile's class, so the CLI, backfills and Serve
    voice lines the same way (one at a time per thread, or decoded in batches with ``synth_batch``). GPU requests
    are checked against the cluster first (``check_resources``). Warm actors of the same model and settings on the
    cluster (``graph.run.warm``) are used first and only the rest is started; ``keep`` starts the rest as warm
    actors too (named and detached: they outlive this driver, `dubgraph up`). Every actor is ``timed``.

    On a cluster, the actors of a role are spread over the nodes that can hold them, and an actor whose node is
    lost (a spot worker reclaimed) restarts elsewhere: the calls it had in flight run again there (model calls
    are stateless), and what it returned but was not fetched yet is recomputed by Ray from its lineage.
    """
    import ray

    from actors.chatterbox.batcher import BatchingSynthesizer
    from actors.models import load_object

    check_batching(profile, replicas)
    cluster = ray.cluster_resources()
    has_gpu = cluster.get("GPU", 0) > 0
    replicas = replicas.for_cluster(profile, has_gpu)
    if has_gpu:
        check_resources(replicas, cluster, strict, roles)

    def pool(role: str, wrapper: type | None = None, per_actor: int = 1, args: tuple = ()) -> ActorPool | Unstarted:
        if role not in (*roles, "separator"):  # the separator pool is asked for by ``replicas.separator``
            return Unstarted(role)
        spec = profile.model(role)
        model = load_object(spec.actor)
        options = {"num_cpus": 0, "max_concurrency": per_actor, "max_restarts": MAX_RESTARTS,
                   "max_task_retries": 1, "scheduling_strategy": "SPREAD"}  # fmt: skip
        if replicas.gpu[role] and has_gpu:
            options["num_gpus"] = replicas.gpu[role]
        key = warm.actor_key(role, profile.name, spec, tuple(dict.fromkeys((wrapper or model, model))), args, options)
        found = warm.find(role, key)
        remote = ray.remote(timed(wrapper or model))
        started = []
        for replica in range(len(found), replicas.counts[role]):
            named = {"name": warm.actor_name(role, key, replica), "namespace": warm.NAMESPACE,
                     "lifetime": "detached", "get_if_exists": True} if keep else {}
            started.append(remote.options(**options, **named).remote(spec, profile.name, *args))
        if found:
            log.info("%s: %d warm actor(s) reused (key %s), %d started", role, len(found), key, len(started))
        return ActorPool(found + started, per_actor, keep=found + started if keep else found)

    return Stages(
        asr=pool("asr"),
        diarizer=pool("diarizer"),
        translator=pool("translator"),
        synthesizer=pool("synthesizer", BatchingSynthesizer, replicas.lines_per_synthesizer,
                         (replicas.synth_batch, replicas.synth_wait_s, replicas.synth_decode)),
        put=ray.put,
        separator=(pool("separator") if replicas.separator and "separator" in {m.role for m in profile.models}
                   else None),
    )


def _pools(stages: Stages) -> list[tuple[str, ActorPool]]:
    return [(role, stage) for role in (*ROLES, "separator")
            if isinstance(stage := getattr(stages, role, None), ActorPool)]


def wait_ready(stages: Stages, timeout_s: float = READY_TIMEOUT_S, report_s: float = READY_REPORT_S,
               startup: Startup | None = None) -> None:
    """``ready`` for callers outside an event loop."""
    asyncio.run(ready(stages, timeout_s, report_s, startup))


async def ready(stages: Stages, timeout_s: float = READY_TIMEOUT_S, report_s: float = READY_REPORT_S,
                startup: Startup | None = None) -> None:
    """Wait until every actor has loaded its model, reporting what is still pending every ``report_s``; a model
    that cannot load, or an actor still unplaced after ``timeout_s``, stops the run. ``startup`` gets each actor's
    times (when it was seen ready, and what its ``startup()`` reports)."""
    import ray
    from ray.exceptions import RayActorError

    ready_at: dict[int, float] = {}

    async def one(handle) -> None:
        await handle.__ray_ready__.remote()
        ready_at[id(handle)] = time.time()

    pending = {asyncio.ensure_future(one(handle)): role for role, pool in _pools(stages) for handle in pool.handles}
    deadline = time.monotonic() + timeout_s
    try:
        while pending:
            done, _ = await asyncio.wait(pending, timeout=max(0.0, min(report_s, deadline - time.monotonic())))
            for task in done:
                role = pending.pop(task)
                try:
                    task.result()
                except RayActorError as exc:
                    raise DubError(f"the {role} actors could not start, nothing was dubbed: {exc}") from None
            if not pending:
                break
            waiting = ", ".join(sorted(set(pending.values())))
            free = {k: round(v, 3) for k, v in ray.available_resources().items() if k in ("CPU", "GPU")}
            if time.monotonic() >= deadline:
                raise DubError(f"model actors not up after {timeout_s:.0f} s ({waiting}); the cluster has {free} "
                               "free. Is a GPU worker missing, or a model still loading?")
            log.warning("waiting for model actors to start: %s (cluster resources free: %s)", waiting, free)
    finally:
        for task in pending:
            task.cancel()
    if startup is not None:
        await _record(stages, startup, ready_at)


async def _record(stages: Stages, startup: Startup, ready_at: dict[int, float]) -> None:
    """Each actor's own account of its start, in ``startup``."""
    for role, pool in _pools(stages):
        for handle in pool.handles:
            report = getattr(handle, "startup", None)
            startup.actor(role, ready_at[id(handle)], await report.remote() if report is not None else None,
                          warm=id(handle) in pool.keep)


def stop_stages(stages: Stages) -> None:
    """Kill the actors this run started; warm ones stay (``ActorPool.keep``)."""
    import ray

    for _, pool in _pools(stages):
        for handle in pool.handles:
            if id(handle) not in pool.keep:
                ray.kill(handle)


def make_job(input_path: str | Path, out_dir: str | Path, options: DubOptions, profile, job_id: str | None = None,
             transcript: str | Path | None = None, translations: dict[str, str] | None = None,
             state: str | Path | None = None, references: dict[str, str | Path] | None = None,
             library: str | Path | None = None) -> DubJob:
    """Validate everything checkable before any model loads: languages, input file, transcripts, voice clips and
    library voices, pronunciations, output directory.

    ``translations``: target language -> a translated SRT/WebVTT (cue for cue with the source lines, checked when
    the lines are known); ``state``: where to keep the line state for edits (graph/edits.py); ``references``:
    speaker -> the user's reference clip for that speaker; ``library``: the voice library's directory (needed when
    the options name library voices or ask for matching)."""
    for target in options.targets:
        language(target, profile.targets)
    if options.asr.language:
        language(options.asr.language, profile.sources, what="source")
    audio.probe(input_path, options.audio_track)
    video_formats(options.formats, probe_video(input_path, options.audio_track), input_path)
    cues = None
    if transcript is not None:
        cues = read_transcript(transcript)
        if not options.asr.language and len(profile.sources) != 1:
            raise BadInput("a job that starts from a transcript needs its language: give the source language")
    translations = {language(lang, options.targets, what="translated").code: str(path)
                    for lang, path in (translations or {}).items()}
    for lang, path in translations.items():
        translated = read_transcript(path, f"{lang} translation")
        if cues is not None:  # the lines are the transcript's cues: check the alignment now, not mid-job
            aligned_texts(translated, cue_utterances(cues), f"the {lang} translation {Path(path).name}")
    references = {speaker: str(path) for speaker, path in (references or {}).items()}
    library = str(library) if library is not None else None
    check_voices(options, references, library)
    _check_phonemes(options, profile)
    check_writable(out_dir)
    return DubJob(
        input=str(input_path),
        out_dir=str(out_dir),
        options=options,
        sources=profile.sources,
        targets=profile.targets,
        models={spec.role: spec.name for spec in profile.models},
        job_id=job_id or uuid.uuid4().hex[:12],
        transcript=str(transcript) if transcript is not None else None,
        translations=translations,
        state=str(state) if state is not None else None,
        references=references,
        library=library,
    )


def _check_phonemes(options: DubOptions, profile) -> None:
    """Pronunciations in ``[[...]]`` (espeak phonemes) only for a synthesizer that reads them."""
    from actors.models import load_object

    phonemes = [said for table in options.glossary.pronounce.values() for said in table.values() if "[[" in said]
    if phonemes and not getattr(load_object(profile.model("synthesizer").actor), "reads_phonemes", False):
        raise BadInput(f"pronunciations in [[...]] are espeak-ng phonemes, which the {profile.name} profile's "
                       f"synthesizer does not read ({phonemes[0]!r}); give a respelling instead")


def needed_roles(transcript: str | Path | None, match_voices: bool = False, translated: bool = False) -> tuple[str, ...]:
    """The model roles a job needs: no ASR from a transcript, no diarizer when every cue names its speaker (unless
    speakers are matched to library voices: the diarizer's embedding model does that), no translator when every
    target language comes ``translated``."""
    roles = ROLES
    if transcript is not None:
        roles = tuple(r for r in roles if r != "asr")
        if named(read_transcript(transcript)) and not match_voices:
            roles = tuple(r for r in roles if r != "diarizer")
    return tuple(r for r in roles if r != "translator") if translated else roles


def needed(replicas: Replicas, options: DubOptions) -> Replicas:
    """Separator actors only when the options keep a separated background (then at least one)."""
    wanted = options.background and options.separation
    return replace(replicas, separator=max(1, replicas.separator) if wanted else 0)


def check_models(profile, roles: tuple[str, ...] = ROLES, replicas: Replicas = Replicas()) -> None:
    """Raise the first ModelNotFound of the models a run will load (``roles``, and a separator when one is
    started), before actors start."""
    from actors.models import check

    for spec, found in check(profile):
        used = spec.role in roles or (spec.role == "separator" and replicas.separator)
        if used and isinstance(found, Exception):
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
    transcript: str | Path | None = None,
    startup: Startup | None = None,
    translations: dict[str, str] | None = None,
    edits: bool = True,
    references: dict[str, str | Path] | None = None,
    library: str | Path | None = None,
) -> DubResult:
    """Dub one file on a local (embedded) or existing Ray cluster; partial outputs are removed on failure.

    ``transcript``: an SRT/WebVTT of what is said, used instead of ASR (and of diarization when every cue names
    its speaker, ``[Alice] ...`` or ``<v Alice>...``); ``translations``: target language -> a translation of it,
    cue for cue, used instead of machine translation. ``edits``: keep what editing lines needs in
    ``out_dir/.dubgraph/`` (the line state and, unless ``checkpoint_dir`` names another place, the checkpoint).
    ``references``: speaker -> a reference clip of their voice, used instead of one picked from the recording;
    ``library``: the voice library (``options.voices`` maps speakers to its voices). ``startup``: the run's
    start-up timeline (default: one from now), completed here and written into the manifest. The job decodes its
    input while the actors load."""
    from graph.run.local_ray import init_ray

    startup = startup or Startup()
    state = Path(out_dir) / WORK_DIR if edits else None
    if checkpoint_dir is None and state is not None:
        checkpoint_dir = state / "checkpoint"
    job = make_job(input_path, out_dir, options, profile, transcript=transcript, translations=translations,
                   state=state, references=references, library=library)
    roles = needed_roles(transcript, options.voices.match, set(job.translations) >= set(options.targets))
    check_batching(profile, replicas)
    replicas = needed(replicas, options)
    if not address:
        check_models(profile, roles, replicas)
    with startup.span("ray", address=address or "embedded"):
        init_ray(address)
    with startup.span("actors requested"):
        stages = start_stages(profile, replicas, strict=not address, roles=roles)
    try:
        return asyncio.run(_ready_and_dub(job, stages, startup.watch(progress), Checkpoint(checkpoint_dir), startup))
    except BaseException:
        remove_outputs(Path(out_dir), options.targets, options.formats)
        raise
    finally:
        stop_stages(stages)


async def _ready_and_dub(job: DubJob, stages: Stages, progress: ProgressFn, checkpoint: Checkpoint,
                         startup: Startup) -> DubResult:
    """The job (decoding its input first) while the actors load; the job's own error (bad input) comes first,
    then an actor that cannot start."""
    actors = asyncio.ensure_future(ready(stages, startup=startup))
    work = asyncio.ensure_future(dub(job, stages, progress, checkpoint, startup=startup))
    try:
        done, _ = await asyncio.wait({actors, work}, return_when=asyncio.FIRST_EXCEPTION)
        for task in (work, actors):
            if task in done and task.exception() is not None:
                raise task.exception()
        return work.result()
    finally:
        for task in (actors, work):
            task.cancel()
        await asyncio.gather(actors, work, return_exceptions=True)
