"""The dubbing DAG over stage handles (see ``graph.run.stages``): the same code for Serve, actor pools and tests.

decode -> (ASR || diarization || separation of the background) -> utterances -> per speaker: voice (the user's
       clip, a library voice, or a reference picked from the recording) -> conditionals (once, one object) -> per
       language, all at once: translate (the glossary enforced; begun with the voices) -> voice every line (fan-out,
       duration-aware, pronunciations applied) -> solve the timeline -> re-voice what the solver asks for -> fit ->
       render over the bed -> measure onsets in the audio -> files -> video (every language's track muxed with the
       copied video)
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from graph import audio
from graph.edits import StateFile
from graph.errors import BadAudio, BadInput
from graph.languages import language
from graph.media.outputs import check_writable, write_manifest
from graph.media.transcripts import read_transcript, read_translation
from graph.media.video import COMBINED_STEM, probe_video, video_formats
from graph.options import DubOptions, to_dict
from graph.run import background
from graph.run.checkpoint import Checkpoint, key_of
from graph.run.lines import LineVoicer
from graph.run.placing import place_language
from graph.run.revisions import first_state, keep_voices
from graph.run.stages import Stage
from graph.run.tracks import OUTPUT_SR, Mix, Mixed, drop_staged, mix_language, write_language_videos
from graph.run.translate import glossary_table, translate_lines
from graph.run.voices import job_voices
from graph.timeline.assign import build_utterances
from graph.timeline.cues import cue_turns, cue_utterances, named
from graph.timeline.render import speaker_levels
from graph.timeline.timing import check_stretch
from graph.types import LanguageOutput, SpeakerTurn, Transcript, Translation, Utterance

log = logging.getLogger(__name__)

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
    separator: Stage | None = None  # the background's speech estimate; None: no separation (ducking only)


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
    transcript: str | None = None  # an SRT/VTT the user brings instead of ASR (and of diarization when all named)
    translations: dict[str, str] = field(default_factory=dict)  # lang -> a translated SRT/VTT used instead of MT
    state: str | None = None  # where the line state is kept for edits (graph/edits.py); None: not kept
    references: dict[str, str] = field(default_factory=dict)  # speaker -> the user's reference clip (a path)
    library: str | None = None  # the voice library's directory (graph/media/library.py)


@dataclass(frozen=True)
class DubResult:
    job_id: str
    duration_s: float
    source_language: str
    speakers: tuple[str, ...]
    outputs: dict[str, LanguageOutput]
    manifest: str
    stage_s: dict[str, float]
    videos: dict[str, str] = field(default_factory=dict)  # the video carrying every language: format -> file name


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


async def _at_once(*calls) -> list:
    """Every call's result, the calls run together (the decodes and the probe are separate ffmpeg processes); a
    failure is raised as if they had run in order: the first failing call's, whichever ended first."""
    results = await asyncio.gather(*calls, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results


async def dub(
    job: DubJob,
    stages: Stages,
    progress: ProgressFn | None = None,
    checkpoint: Checkpoint | None = None,
    conditionals: dict[str, Any] | None = None,
    startup: Any = None,
) -> DubResult:
    """Run one job end to end and write its files; ``conditionals`` may be shared across jobs (key -> ref);
    ``startup``: the run's start-up timeline (``graph.run.startup.Startup``), written into the manifest."""
    emit = (lambda stage, done, total: progress(Event(stage, done, total, job.job_id))) if progress else (lambda *a: None)
    store = checkpoint or Checkpoint(None)
    opts = job.options
    targets = tuple(language(t, job.targets).code for t in opts.targets)
    if opts.asr.language:
        language(opts.asr.language, job.sources, what="source")
    check_stretch()
    out_dir = check_writable(job.out_dir)
    clock = _Clock()

    with clock.timed("decode"):
        stream = opts.audio_track
        analysis, source, video = await _at_once(
            asyncio.to_thread(audio.decode, job.input, audio.SAMPLE_RATE, job.max_duration_s, stream),
            asyncio.to_thread(audio.decode, job.input, None, job.max_duration_s, stream),
            asyncio.to_thread(probe_video, job.input, stream))
        containers = video_formats(opts.formats, video, job.input)
    emit("decode", 1, 1)
    if audio.is_silent(analysis):
        raise BadAudio(f"{job.input} is silent: there is no speech to dub")
    wave = stages.put(analysis.samples)
    bed_source = await background.start(job, stages, store, OUTPUT_SR, clock, emit) if opts.background else None

    try:
        if job.transcript:
            source_language, utterances, turns = await _from_transcript(job, stages, wave, store, clock, emit)
        else:
            transcript, turns = await _analyse(job, stages, wave, store, clock, emit)
            utterances = build_utterances(transcript.words, turns)
            source_language = transcript.language
    except BaseException:
        if bed_source:
            bed_source.cancel()
        raise
    if not utterances:
        raise BadAudio(f"no speech was recognised in {job.input} (silence, music or noise only?): nothing to dub")
    language(source_language, job.sources, what="source")
    speakers = tuple(sorted({u.speaker for u in utterances}))
    log.info("[%s] %d lines from %d speakers", job.job_id, len(utterances), len(speakers))

    translated: dict[str, dict[str, Translation]] = {}
    mixed: dict[str, Mixed] = {}
    translating = {lang: asyncio.ensure_future(_translate(job, stages, utterances, source_language, lang, store, clock,
                                                          emit)) for lang in targets}  # they need no voice: now
    try:
        with clock.timed("voices"):
            conds = await job_voices(job, stages, source, utterances, turns, store, conditionals, emit)
        synthesizer = await _describe(stages.synthesizer)
        bed = await background.finish(bed_source, utterances) if bed_source else None
        mix = Mix(analysis.duration_s, bed.sr if bed else OUTPUT_SR, speaker_levels(bed.speech if bed else analysis,
                                                                                    utterances), bed)
        voices = {speaker: (voice.key, voice.ref) for speaker, voice in conds.items()}

        async def one_language(lang: str) -> None:
            translated[lang] = await translating[lang]
            voicer = LineVoicer(stages.synthesizer, opts, lang, OUTPUT_SR, store, job.job_id)
            done = 0
            emit(f"synthesize:{lang}", 0, len(utterances))

            def voiced() -> None:
                nonlocal done
                done += 1
                emit(f"synthesize:{lang}", done, len(utterances))

            t0 = time.perf_counter()
            placed = await place_language(voicer, utterances, translated[lang], voices, analysis.duration_s,
                                          opts.timing, voiced)
            clock.stage_s[f"synthesize:{lang}"] = round(time.perf_counter() - t0, 3)
            with clock.timed(f"render:{lang}"):
                mixed[lang] = await mix_language(out_dir, lang, placed, mix, opts.formats,
                                                 video if containers else None)
            emit(f"render:{lang}", 1, 1)

        await asyncio.gather(*(one_language(lang) for lang in targets))
        videos = {}
        if containers:
            with clock.timed("video"):
                videos = await write_language_videos(out_dir, job.input, video, containers, mixed, targets, opts,
                                                     source_language)
    finally:
        for task in (*translating.values(), *([bed_source] if bed_source else [])):
            task.cancel()  # those of a run that failed before they were needed (done ones are left as they are)
        drop_staged(mixed)
    outputs = {lang: replace(mixed[lang].output, files={**mixed[lang].output.files, **videos.get(lang, {})})
               for lang in targets}
    if job.state is not None and store.root is not None:
        await keep_voices(store, conds)
        state = await asyncio.to_thread(first_state, job, Path(job.state), store, source_language, utterances,
                                        translated, {s: v.key for s, v in conds.items()}, mix, mixed, containers)
        await asyncio.to_thread(StateFile(job.state).save, state)
    manifest = write_manifest(
        out_dir,
        {
            "job_id": job.job_id,
            "revision": 0,
            "input": Path(job.input).name,
            "transcript": Path(job.transcript).name if job.transcript else None,
            "translations": {lang: Path(path).name for lang, path in job.translations.items()},
            "duration_s": round(analysis.duration_s, 3),
            "source_language": source_language,
            "speakers": list(speakers),
            "models": job.models,
            "synthesizer": synthesizer,
            "options": to_dict(opts),
            "background": bed.to_json(job.models.get("separator")) if bed else {"method": "none"},
            "video": _video_json(video, videos, opts) if containers else None,
            "stage_s": clock.stage_s,
            "startup": startup.to_json() if startup is not None else None,
            "voices": {speaker: voice.to_json() for speaker, voice in conds.items()},
            "utterances": [u.to_json() for u in utterances],
            "edits": [],
        },
        outputs,
    )
    return DubResult(job.job_id, analysis.duration_s, source_language, speakers, outputs, str(manifest), clock.stage_s,
                     videos.get(COMBINED_STEM, {}))


def _video_json(video, written: dict[str, dict[str, str]], opts: DubOptions) -> dict:
    """What the manifest says of the video outputs: files, and the input's video they copy."""
    combined = written.get(COMBINED_STEM, {}) if opts.video.combined else {}
    return {"files": combined, "combined": opts.video.combined, "original_track": opts.video.original,
            "container": video.container, "codecs": list(video.codecs), "start_s": round(video.start_s, 6),
            "duration_s": round(video.duration_s, 6)}


async def _analysed(name: str, key: str, stage: Stage, method: str, wave, store, clock, emit, *args):
    """One analysis stage's result, resumed from its checkpoint when present."""
    cached = store.get(key)
    if cached is not None:
        return cached
    t0 = time.perf_counter()
    value = await stage.call(method, wave, *args)
    clock.stage_s[name] = round(time.perf_counter() - t0, 3)
    store.put(key, value)
    emit(name, 1, 1)
    return value


def _diarized(job, stages, wave, store, clock, emit):
    key = "diarize-" + key_of(job.options.diarize, job.models.get("diarizer"))
    return _analysed("diarize", key, stages.diarizer, "diarize", wave, store, clock, emit, job.options.diarize)


async def _analyse(job, stages, wave, store, clock, emit) -> tuple[Transcript, list[SpeakerTurn]]:
    """ASR and diarization at the same time."""
    asr = job.options.asr
    return await asyncio.gather(
        _analysed("asr", "asr-" + key_of(asr, job.models.get("asr")), stages.asr, "transcribe", wave, store, clock,
                  emit, asr),
        _diarized(job, stages, wave, store, clock, emit),
    )


async def _from_transcript(job, stages, wave, store, clock, emit) -> tuple[str, list[Utterance], list[SpeakerTurn]]:
    """The user's transcript instead of ASR: one line per cue; diarization only for cues that name no speaker."""
    source_language = job.options.asr.language or (job.sources[0] if len(job.sources) == 1 else None)
    if source_language is None:
        raise BadInput("a job that starts from a transcript needs its language: give the source language")
    cues = await asyncio.to_thread(read_transcript, job.transcript)
    turns = cue_turns(cues) if named(cues) else await _diarized(job, stages, wave, store, clock, emit)
    return language(source_language, job.sources, what="source").code, cue_utterances(cues, turns), turns


async def _describe(synthesizer: Stage) -> dict[str, Any]:
    """How the synthesizer voices lines (device, batch size, decode options), for the manifest; {} if it cannot say."""
    try:
        return await synthesizer.call("describe")
    except AttributeError:  # a bare model object (tests) has no describe
        return {}


async def _translate(job, stages, utterances, source_language, lang, store, clock, emit) -> dict[str, Translation]:
    if lang in job.translations:  # the user's own translation, cue for cue
        emit(f"translate:{lang}", 1, 1)
        return await asyncio.to_thread(read_translation, job.translations[lang], utterances, lang)
    opts = job.options.translate
    key = "translate-" + key_of(lang, source_language, opts, job.models.get("translator"), [u.text for u in utterances],
                                glossary_table(job.options, lang))
    cached = store.get(key)
    if cached is None:
        t0 = time.perf_counter()
        emit(f"translate:{lang}", 0, 1)
        cached = await translate_lines(stages.translator, utterances, source_language, lang, job.options, job.job_id)
        clock.stage_s[f"translate:{lang}"] = round(time.perf_counter() - t0, 3)
        store.put(key, cached)
    emit(f"translate:{lang}", 1, 1)
    return cached
