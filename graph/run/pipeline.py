"""The dubbing DAG over stage handles (see ``graph.run.stages``): the same code for Serve, actor pools and tests.

decode -> (ASR || diarization) -> utterances -> per speaker: reference -> conditionals (once, one object)
       -> per language, all at once: translate -> synthesize every line (fan-out) -> fit -> render -> files
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from graph import audio
from graph.errors import BadAudio
from graph.languages import language
from graph.media.outputs import check_writable, write_language, write_manifest
from graph.options import DubOptions, to_dict
from graph.run.checkpoint import Checkpoint, key_of
from graph.run.lines import LineVoicer
from graph.run.stages import Stage
from graph.timeline.assign import build_utterances
from graph.timeline.references import Reference, pick_reference
from graph.timeline.render import Placement, ducked_background, render_track, speaker_levels
from graph.timeline.timing import window_ends
from graph.types import Clip, LanguageOutput, SpeakerTurn, Transcript, Translation, Utterance

log = logging.getLogger(__name__)

OUTPUT_SR = 24_000  # ChatterBox's native rate; other voices are resampled to it


@dataclass(frozen=True)
class Event:
    """Progress: ``completed`` of ``total`` units of ``stage`` (e.g. "synthesize:pt-br", 12, 40)."""

    stage: str
    completed: int
    total: int
    job_id: str = ""


ProgressFn = Callable[[Event], None]


@dataclass
class Stages:
    asr: Stage
    diarizer: Stage
    translator: Stage
    synthesizer: Stage
    put: Callable[[Any], Any] = lambda value: value  # ray.put where an object store exists


@dataclass(frozen=True)
class DubJob:
    input: str
    out_dir: str
    options: DubOptions
    sources: tuple[str, ...]  # source languages the profile accepts
    targets: tuple[str, ...]  # target languages the profile produces
    models: dict[str, str] = field(default_factory=dict)  # role -> model name, echoed in the manifest
    job_id: str = "job"
    max_duration_s: float | None = None


@dataclass(frozen=True)
class DubResult:
    job_id: str
    duration_s: float
    source_language: str
    speakers: tuple[str, ...]
    outputs: dict[str, LanguageOutput]
    manifest: str
    stage_s: dict[str, float]


class _Clock:
    def __init__(self):
        self.stage_s: dict[str, float] = {}

    def timed(self, name: str):
        clock = self

        class _Timer:
            def __enter__(self):
                self.t0 = time.perf_counter()

            def __exit__(self, *exc):
                clock.stage_s[name] = round(clock.stage_s.get(name, 0.0) + time.perf_counter() - self.t0, 3)

        return _Timer()


async def dub(
    job: DubJob,
    stages: Stages,
    progress: ProgressFn | None = None,
    checkpoint: Checkpoint | None = None,
    conditionals: dict[str, Any] | None = None,
) -> DubResult:
    """Run one job end to end and write its files; ``conditionals`` may be shared across jobs (key -> ref)."""
    emit = (lambda stage, done, total: progress(Event(stage, done, total, job.job_id))) if progress else (lambda *a: None)
    store = checkpoint or Checkpoint(None)
    opts = job.options
    targets = tuple(language(t, job.targets).code for t in opts.targets)
    if opts.asr.language:
        language(opts.asr.language, job.sources, what="source")
    out_dir = check_writable(job.out_dir)
    clock = _Clock()

    with clock.timed("decode"):
        analysis = await asyncio.to_thread(audio.decode, job.input, audio.SAMPLE_RATE, job.max_duration_s)
        source = await asyncio.to_thread(audio.decode, job.input, None, job.max_duration_s)
    emit("decode", 1, 1)
    if audio.is_silent(analysis):
        raise BadAudio(f"{job.input} is silent: there is no speech to dub")
    wave = stages.put(analysis.samples)

    transcript, turns = await _analyse(job, stages, wave, store, clock, emit)
    utterances = build_utterances(transcript.words, turns)
    if not utterances:
        raise BadAudio(f"no speech was recognised in {job.input} (silence, music or noise only?): nothing to dub")
    source_language = transcript.language
    language(source_language, job.sources, what="source")
    speakers = tuple(sorted({u.speaker for u in utterances}))
    log.info("[%s] %d lines from %d speakers", job.job_id, len(utterances), len(speakers))

    with clock.timed("voices"):
        conds = await _conditionals(job, stages, source, utterances, turns, store, conditionals, emit)

    levels = speaker_levels(analysis, utterances)
    windows = window_ends(utterances, analysis.duration_s)
    background = None
    if opts.background:
        bed_source = await asyncio.to_thread(audio.decode, job.input, OUTPUT_SR, job.max_duration_s)
        background = ducked_background(bed_source.samples, OUTPUT_SR, utterances)

    async def one_language(lang: str) -> LanguageOutput:
        translations = await _translate(job, stages, utterances, source_language, lang, store, clock, emit)
        voicer = LineVoicer(stages.synthesizer, opts, lang, OUTPUT_SR, store, job.job_id)
        done = 0
        total = len(utterances)
        emit(f"synthesize:{lang}", 0, total)

        async def line(u: Utterance):
            nonlocal done
            voice = conds[u.speaker]
            placed = await voicer.voice(u, translations[u.id], (voice.key, voice.ref), windows[u.id])
            done += 1
            emit(f"synthesize:{lang}", done, total)
            return placed

        t0 = time.perf_counter()
        results = await asyncio.gather(*(line(u) for u in utterances))
        clock.stage_s[f"synthesize:{lang}"] = round(time.perf_counter() - t0, 3)
        with clock.timed(f"render:{lang}"):
            track = await asyncio.to_thread(
                render_track,
                [Placement(p.speaker, p.start_s, samples) for p, samples in results],
                analysis.duration_s,
                OUTPUT_SR,
                levels,
                background,
            )
            output = await asyncio.to_thread(
                write_language, out_dir, lang, track, OUTPUT_SR, [p for p, _ in results], opts.formats
            )
        emit(f"render:{lang}", 1, 1)
        return output

    outputs = dict(zip(targets, await asyncio.gather(*(one_language(lang) for lang in targets))))
    manifest = write_manifest(
        out_dir,
        {
            "job_id": job.job_id,
            "input": Path(job.input).name,
            "duration_s": round(analysis.duration_s, 3),
            "source_language": source_language,
            "speakers": list(speakers),
            "models": job.models,
            "options": to_dict(opts),
            "stage_s": clock.stage_s,
            "voices": {speaker: voice.to_json() for speaker, voice in conds.items()},
            "utterances": [u.to_json() for u in utterances],
        },
        outputs,
    )
    return DubResult(job.job_id, analysis.duration_s, source_language, speakers, outputs, str(manifest), clock.stage_s)


async def _analyse(job, stages, wave, store, clock, emit) -> tuple[Transcript, list[SpeakerTurn]]:
    """ASR and diarization at the same time, each resumed from its checkpoint when present."""
    opts = job.options

    async def timed(name: str, key: str, stage: Stage, method: str, *args):
        cached = store.get(key)
        if cached is not None:
            return cached
        t0 = time.perf_counter()
        value = await stage.call(method, wave, *args)
        clock.stage_s[name] = round(time.perf_counter() - t0, 3)
        store.put(key, value)
        emit(name, 1, 1)
        return value

    return await asyncio.gather(
        timed("asr", "asr-" + key_of(opts.asr, job.models.get("asr")), stages.asr, "transcribe", opts.asr),
        timed("diarize", "diarize-" + key_of(opts.diarize, job.models.get("diarizer")), stages.diarizer, "diarize", opts.diarize),
    )


@dataclass(frozen=True)
class Voice:
    """One speaker's voice as used by a job: its reference and whether this job computed its conditionals."""

    key: str  # conditionals cache key (reference content hash + synthesizer model)
    ref: Any  # the conditionals: an object-store reference under Ray
    reference_s: float
    computed: bool  # False when reused from another job or a checkpoint
    flags: tuple[str, ...] = ()

    def to_json(self) -> dict:
        return {"key": self.key, "reference_s": round(self.reference_s, 3), "computed": self.computed,
                "flags": list(self.flags)}


async def _conditionals(job, stages, source: Clip, utterances, turns, store, shared, emit) -> dict[str, Voice]:
    """Per speaker: conditionals computed once from a picked reference, cached by content hash (also across
    jobs through ``shared``), kept as one reference that every line of that speaker in every language reads."""
    shared = {} if shared is None else shared
    speakers = sorted({u.speaker for u in utterances})
    tts = job.options.tts

    async def one(speaker: str) -> Voice:
        ref: Reference = pick_reference(source, speaker, utterances, turns, tts.reference_min_s, tts.reference_max_s)
        if ref.flags:
            log.warning("[%s] reference for %s: %s", job.job_id, speaker, ", ".join(ref.flags))
        key = "conds-" + key_of(ref.key, job.models.get("synthesizer"))
        computed = False
        if key not in shared:
            cached = store.get(key)
            if cached is not None:
                shared[key] = stages.put(cached)
            else:
                shared[key] = asyncio.ensure_future(_prepare(stages, ref, store, key))
                computed = True
        value = shared[key]
        if asyncio.isfuture(value):
            value = await value
            shared[key] = value
        return Voice(key, value, ref.clip.duration_s, computed, ref.flags)

    voices = {}
    for done, voice in enumerate(await asyncio.gather(*(one(s) for s in speakers)), start=1):
        voices[speakers[done - 1]] = voice
        emit("voices", done, len(speakers))
    return voices


async def _prepare(stages: Stages, ref: Reference, store: Checkpoint, key: str) -> Any:
    """Conditionals from the synthesizer; when checkpointed, the copy every line reads is put here (owned and
    kept on this node), so it outlives the worker node that computed it."""
    conds_ref = await stages.synthesizer.call_ref("prepare", ref.clip.samples, ref.clip.sr)
    if store.root is None:
        return conds_ref
    from graph.run.objects import fetch

    value = await fetch(conds_ref)
    store.put(key, value)
    return stages.put(value)


async def _translate(job, stages, utterances, source_language, lang, store, clock, emit) -> dict[str, Translation]:
    opts = job.options.translate
    key = "translate-" + key_of(lang, source_language, opts, job.models.get("translator"), [u.text for u in utterances])
    cached = store.get(key)
    if cached is None:
        t0 = time.perf_counter()
        emit(f"translate:{lang}", 0, 1)
        candidates = await stages.translator.call(
            "translate", [u.text for u in utterances], source_language, lang, opts
        )
        clock.stage_s[f"translate:{lang}"] = round(time.perf_counter() - t0, 3)
        cached = {u.id: Translation(u.id, lang, tuple(c) or ("",)) for u, c in zip(utterances, candidates)}
        store.put(key, cached)
    emit(f"translate:{lang}", 1, 1)
    return cached
