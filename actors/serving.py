"""Ray Serve deployments of the five model roles, and the stage handles the job runner drives them through.

Each deployment is a thin shell: it builds its role's actor from the profile (``Cls(spec, profile)``) in its own
replica, so the ingress never imports a model library, and runs every model call in a worker thread
(``asyncio.to_thread``) so the replica keeps answering health checks and serves up to ``max_ongoing_requests``
calls at once. Defaults suit one CPU machine (fractions of a CPU, two synthesizer replicas); a Serve config
overrides any of them (``serve_config.yaml``, ``serve_config.gpu.yaml``).

The translator batches (``@serve.batch``) across requests in two lanes: dub jobs' lines, and interactive
``/v1/translate`` texts, so an interactive request never waits in a queue of job batches, at most for the one
model call that is running.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import ray
from ray import serve
from ray.exceptions import RayActorError

from actors.chatterbox.batcher import LINE_WAIT_S, BatchingSynthesizer
from actors.models import ROLES, Profile, get_profile, load_object
from graph.errors import BadInput
from graph.options import TranslateOptions
from graph.run.pipeline import Stages
from graph.run.stages import ServeStage, Stage

log = logging.getLogger(__name__)

BATCH_TEXTS = 32  # texts per translation model call (both lanes); user_config "max_batch_texts" changes it
JOB_WAIT_S = 0.02  # how long a job batch waits for more requests to join it
TEXT_WAIT_S = 0.005  # interactive requests wait less


def profile_with(name: str | Profile, actors: dict[str, str] | None = None) -> Profile:
    """The named profile with some roles served by another actor class ("module:Class", same interface)."""
    profile = get_profile(name)
    for role, actor in (actors or {}).items():
        if role not in ROLES:
            raise BadInput(f"unknown role {role!r} in actors; roles: {', '.join(ROLES)}")
        profile = profile.with_model(replace(profile.model(role), actor=actor))
    return profile


def model_classes(profile: Profile) -> dict[str, str]:
    """Role -> the actor class ("module:Class") that serves it."""
    return {spec.role: spec.actor for spec in profile.models}


class _Model:
    """Builds its role's actor in this replica (``wrapper`` around it when set); each call runs in a worker thread."""

    role: ClassVar[str]
    wrapper: ClassVar[type | None] = None  # built as wrapper(spec, profile) instead; it loads spec.actor itself

    def __init__(self, profile: str | Profile, actors: dict[str, str] | None = None):
        profile = profile_with(profile, actors)
        spec = profile.model(self.role)
        self.model = (self.wrapper or load_object(spec.actor))(spec, profile.name)
        log.info("%s replica ready: %s (%s)", self.role, spec.name, spec.actor)

    async def _call(self, method: str, *args: Any) -> Any:
        return await asyncio.to_thread(getattr(self.model, method), *args)


@serve.deployment(ray_actor_options={"num_cpus": 0.25}, max_ongoing_requests=2)
class Transcriber(_Model):
    role = "asr"

    async def transcribe(self, wave, options):
        return await self._call("transcribe", wave, options)


@serve.deployment(ray_actor_options={"num_cpus": 0.25}, max_ongoing_requests=2)
class Diarizer(_Model):
    role = "diarizer"

    async def diarize(self, wave, options):
        return await self._call("diarize", wave, options)

    async def embed(self, samples, sr: int):
        return await self._call("embed", samples, sr)


@serve.deployment(num_replicas=2, ray_actor_options={"num_cpus": 0.25}, max_ongoing_requests=4)
class Synthesizer(_Model):
    """Lines from every job: each alone in a worker thread, or, with ``batch_lines`` > 1, decoded together.

    user_config: {"batch_lines": int (1), "line_wait_s": float (0.02), "decode": a preset ("auto" (default):
    fast on a GPU, exact on a CPU; "fast"; "exact") or {DecodeOptions fields, "preset": ...}}. With
    batching, lines of any job, speaker and language that arrive while a batch gathers (at most ``line_wait_s``
    after the first) or runs join the next batch of at most ``batch_lines``; keep ``max_ongoing_requests`` >=
    ``batch_lines`` or batches never fill.
    A cancelled request's line leaves its batch (actors/chatterbox/batcher.py).
    """

    role = "synthesizer"
    wrapper = BatchingSynthesizer  # its methods are coroutines: awaited here, not run in a thread

    def reconfigure(self, config: dict[str, Any]) -> None:
        self.model.configure(int(config.get("batch_lines", 1)), float(config.get("line_wait_s", LINE_WAIT_S)),
                             config.get("decode", "auto"))

    async def prepare(self, reference, sr: int):
        return await self.model.prepare(reference, sr)

    async def synthesize(self, text, language, conditionals, seed, exaggeration, cfg_weight, temperature, pace=1.0):
        return await self.model.synthesize(text, language, conditionals, seed, exaggeration, cfg_weight, temperature,
                                           pace)

    def stats(self) -> dict[str, Any]:
        return self.model.stats()

    def describe(self) -> dict[str, Any]:
        return self.model.describe()


# Started by the first job that keeps a separated background, not with the app (a job without one never needs it);
# stopped again after an hour without one. Serve starts a replica at once for a request that finds none.
ON_DEMAND = {"min_replicas": 0, "initial_replicas": 0, "max_replicas": 1, "downscale_delay_s": 3600}


@serve.deployment(ray_actor_options={"num_cpus": 0.25}, max_ongoing_requests=2, autoscaling_config=ON_DEMAND)
class Separator(_Model):
    """A job's background: the speech estimate of its speech mix, once per job that keeps a separated bed."""

    role = "separator"

    async def separate(self, samples, sr: int):
        return await self._call("separate", samples, sr)


@serve.deployment(ray_actor_options={"num_cpus": 0}, max_ongoing_requests=16)
class ModelSet:
    """The root of a models-only application (``serve_app:build_models``): holds the model deployments an ingress
    elsewhere finds by name, and says which model classes they run, so that ingress can check its profile."""

    def __init__(self, profile: str, actors: dict[str, str] | None, *deployments):
        self.deployments = deployments  # kept: the application's deployments are those bound here
        self.actors = model_classes(profile_with(profile, actors))

    def models(self) -> dict[str, str]:
        return self.actors


@dataclass(frozen=True)
class _Texts:
    """One request's share of a batch: texts of one language pair and options."""

    texts: tuple[str, ...]
    source: str
    target: str
    options: TranslateOptions


def _count_texts(items: list[_Texts]) -> int:
    return sum(len(item.texts) for item in items)


@serve.deployment(ray_actor_options={"num_cpus": 0.25}, max_ongoing_requests=64)
class Translator(_Model):
    """``translate`` for dub jobs, ``translate_text`` for interactive requests; both batched by text count."""

    role = "translator"

    def __init__(self, profile: str, actors: dict[str, str] | None = None):
        super().__init__(profile, actors)
        self.max_texts = BATCH_TEXTS
        self._model_lock = asyncio.Lock()  # one model call at a time (tokenizers keep per-call state)

    def reconfigure(self, config: dict[str, Any]) -> None:
        """user_config: {"max_batch_texts": int, "job_wait_s": float, "text_wait_s": float}."""
        self.max_texts = int(config.get("max_batch_texts", BATCH_TEXTS))
        for lane, wait in ((self._job_lane, config.get("job_wait_s", JOB_WAIT_S)),
                           (self._text_lane, config.get("text_wait_s", TEXT_WAIT_S))):  # fmt: skip
            lane.set_max_batch_size(self.max_texts)
            lane.set_batch_wait_timeout_s(float(wait))

    async def translate(self, texts, source: str, target: str, options: TranslateOptions = TranslateOptions()):
        return await self._split(self._job_lane, texts, source, target, options)

    async def translate_text(self, texts, source: str, target: str, options: TranslateOptions = TranslateOptions()):
        return await self._split(self._text_lane, texts, source, target, options)

    async def _split(self, lane, texts, source, target, options) -> list[tuple[str, ...]]:
        """A request larger than one batch goes in batch-sized pieces (a batch never exceeds ``max_texts``)."""
        texts = tuple(texts)
        pieces = [texts[i : i + self.max_texts] for i in range(0, len(texts), self.max_texts)]
        results = await asyncio.gather(*(lane(_Texts(p, source, target, options)) for p in pieces))
        out: list[tuple[str, ...]] = []
        for result in results:
            if isinstance(result, Exception):
                raise result
            out.extend(result)
        return out

    @serve.batch(max_batch_size=BATCH_TEXTS, batch_wait_timeout_s=JOB_WAIT_S, batch_size_fn=_count_texts)
    async def _job_lane(self, items: list[_Texts]) -> list[list[tuple[str, ...]] | Exception]:
        return await self._run_batch(items)

    @serve.batch(max_batch_size=BATCH_TEXTS, batch_wait_timeout_s=TEXT_WAIT_S, batch_size_fn=_count_texts)
    async def _text_lane(self, items: list[_Texts]) -> list[list[tuple[str, ...]] | Exception]:
        return await self._run_batch(items)

    async def _run_batch(self, items: list[_Texts]) -> list[list[tuple[str, ...]] | Exception]:
        """One model call per (pair, options) group; a group's error goes to its requests only."""
        groups: dict[tuple, list[int]] = defaultdict(list)
        for i, item in enumerate(items):
            groups[(item.source, item.target, item.options)].append(i)
        results: list[Any] = [None] * len(items)
        for (source, target, options), members in groups.items():
            texts = [text for i in members for text in items[i].texts]
            try:
                async with self._model_lock:
                    out = await asyncio.to_thread(self.model.translate, texts, source, target, options)
            except Exception as exc:  # returned, not raised: the other groups of this batch still succeed
                for i in members:
                    results[i] = exc
                continue
            start = 0
            for i in members:
                results[i] = out[start : start + len(items[i].texts)]
                start += len(items[i].texts)
        return results


class _RetryDeadReplica:
    """A stage whose calls are retried once when their replica died (Serve routes the retry to a live one).

    Line synthesis is left out (``methods``): ``graph.run.lines`` retries a failed line itself and logs it per line.
    """

    def __init__(self, stage: Stage, methods: frozenset[str] | None = None):
        self.stage = stage
        self.methods = methods
        self.parallelism = stage.parallelism

    def _retries(self, method: str) -> bool:
        return self.methods is None or method in self.methods

    async def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return await self._attempt(method, False, args, kwargs)

    async def call_ref(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return await self._attempt(method, True, args, kwargs)

    async def _attempt(self, method: str, as_ref: bool, args: tuple, kwargs: dict) -> Any:
        for attempt in (1, 2):
            try:
                if not as_ref:
                    return await self.stage.call(method, *args, **kwargs)
                ref = await self.stage.call_ref(method, *args, **kwargs)
                await ref  # a reference to a failed call only fails where it is used: surface it here
                return ref
            except RayActorError as exc:
                if attempt == 2 or not self._retries(method):
                    raise
                log.warning("%s failed on a dead replica (%s): retrying", method, type(exc).__name__)
        raise AssertionError("unreachable")


def serve_stages(transcriber, diarizer, translator, synthesizer, synth_parallelism: int, separator=None) -> Stages:
    """Stages over deployment handles; large values (waveforms) go to the object store once (``ray.put``)."""
    return Stages(
        separator=_RetryDeadReplica(ServeStage(separator, 1)) if separator is not None else None,
        asr=_RetryDeadReplica(ServeStage(transcriber, 1)),
        diarizer=_RetryDeadReplica(ServeStage(diarizer, 1)),
        translator=_RetryDeadReplica(ServeStage(translator, 1)),
        synthesizer=_RetryDeadReplica(ServeStage(synthesizer, synth_parallelism), frozenset({"prepare"})),
        put=ray.put,
    )
