"""A job rendered again after its lines were edited: only what the edits made stale is regenerated.

A line is regenerated in a language when what it is voiced from changed since it was placed: its text there (the
person's, or a new machine translation after its source text changed), its speaker (then the other speaker's
conditionals, computed once by the first pass, voice it) or its slot; a line whose voicing failed is tried again.
Every other line, and every locked one, keeps its fitted samples from the checkpoint and its place; the edited
lines are placed by the solver in the room they leave (graph/timeline/solver.py ``fixed``), and the tracks are
mixed at the first pass's gains. So outside the edited lines the new tracks are the old ones, sample for sample
(unless the new mix would clip: then the whole track is scaled down). Subtitles, videos and the manifest (each
line's revision, every edit applied) are written again.

A render writes its files into ``out/.render/`` first; saving the state with the list of them is the commit, after
which they replace the last render's files one by one (each rename atomic), the manifest last. A render killed
before the commit leaves the last revision untouched and is done again (its lines are checkpointed); one killed
after it is finished by the next call (``render``, or any ``state``), so an output set is never half updated.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from graph.edits import JobState, StateFile
from graph.errors import DubError
from graph.media.outputs import MANIFEST, write_manifest
from graph.media.video import COMBINED_STEM, probe_video, video_formats
from graph.options import DubOptions, from_dict
from graph.run import background
from graph.run.checkpoint import Checkpoint
from graph.run.lines import LineVoicer
from graph.run.pipeline import DubJob, Event, ProgressFn, Stages, _Clock
from graph.run.placing import place_language
from graph.run.revisions import (
    checkpoint_of,
    fingerprint,
    keep_fits,
    kept_lines,
    translations_of,
    utterance_of,
    utterances_of,
)
from graph.run.tracks import OUTPUT_SR, Mix, Mixed, drop_staged, mix_language, write_language_videos
from graph.run.translate import translate_lines
from graph.types import LanguageOutput

log = logging.getLogger(__name__)

STAGING = ".render"  # in the output directory: a render's files until they replace the last render's


@dataclass(frozen=True)
class Rendered:
    revision: int  # the job's revision now
    changed: bool  # False: nothing was stale, nothing was written
    regenerated: dict[str, tuple[str, ...]]  # language -> ids of the lines voiced and placed again
    outputs: dict[str, LanguageOutput]
    manifest: str
    stage_s: dict[str, float]


def job_of(state: JobState, out_dir: Path) -> DubJob:
    data = state.job
    return DubJob(input=data["input"], out_dir=str(out_dir), options=from_dict(DubOptions, data["options"]),
                  sources=tuple(data["sources"]), targets=tuple(data["targets"]), models=dict(data["models"]),
                  job_id=data["job_id"], max_duration_s=data["max_duration_s"], transcript=data["transcript"],
                  translations=dict(data["translations"]))


def needed_roles(state_dir: str | Path) -> tuple[str, ...]:
    """The model roles the next render of the job in ``state_dir`` calls: the translator when a line's source text
    needs translating, the synthesizer when any line is voiced again (neither when nothing is stale)."""
    file = StateFile(state_dir)
    with file.locked():
        state = file.load()
    if not state.stale:
        return ()
    store = checkpoint_of(state, Path(state_dir))
    roles = []
    if any(_untranslated(state, lang) for lang in state.targets):
        roles.append("translator")
    if any(len(kept_lines(state, store, lang, load=False)) < len(state.lines) for lang in state.targets):
        roles.append("synthesizer")
    return tuple(roles)


async def render(state_dir: str | Path, out_dir: str | Path, stages: Stages, progress: ProgressFn | None = None,
                 job_id: str | None = None) -> Rendered:
    """Render the job kept in ``state_dir`` (its files in ``out_dir``) again, if anything is stale."""
    file, out_dir = StateFile(state_dir), Path(out_dir)
    handle = await asyncio.to_thread(file.acquire)
    try:
        state = await asyncio.to_thread(file.load)
        emit = ((lambda stage, done, total: progress(Event(stage, done, total, job_id or state.job["job_id"])))
                if progress else (lambda *a: None))
        if state.commit is not None:
            await asyncio.to_thread(finish_commit, file, state, out_dir)
        if not state.stale:
            return Rendered(state.revision, False, {}, {}, str(out_dir / MANIFEST), {})
        return await _render(file, state, out_dir, stages, emit)
    finally:
        file.release(handle)


def finish_commit(file: StateFile, state: JobState, out_dir: Path) -> None:
    """Move a committed render's files into place (those still staged), then forget the commit."""
    staging = out_dir / STAGING
    for name in state.commit["files"]:
        if (staging / name).exists():
            os.replace(staging / name, out_dir / name)
    state.commit = None
    file.save(state)
    shutil.rmtree(staging, ignore_errors=True)


def _untranslated(state: JobState, lang: str) -> list:
    """Lines with nothing to voice in ``lang`` (their source text changed) that are not kept as they are (locked)."""
    return [line for line in state.lines if line.wanted(lang) is None
            and not (line.locked and line.id in state.placed.get(lang, {}))]


async def _render(file: StateFile, state: JobState, out_dir: Path, stages: Stages, emit) -> Rendered:
    job = job_of(state, out_dir)
    opts, targets = job.options, state.targets
    store = checkpoint_of(state, file.directory)
    clock = _Clock()
    containers: tuple[str, ...] = tuple(state.job.get("containers") or ())
    if containers or opts.background:
        _check_input(state)
    await _translate(state, stages, opts, clock, emit)
    utterances = utterances_of(state)
    kept = {lang: await asyncio.to_thread(kept_lines, state, store, lang) for lang in targets}
    voices = await _voices(state, store, stages, kept)
    staging = out_dir / STAGING
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    video = await asyncio.to_thread(probe_video, job.input, opts.audio_track) if containers else None
    if video is not None:
        containers = video_formats(opts.formats, video, job.input)
    bed = None
    if opts.background:
        started = await background.start(job, stages, store, OUTPUT_SR, clock, emit)
        bed = await background.finish(started, utterances, state.mix["bed_gains"])
    mix = Mix(state.duration_s, state.mix["sr"], state.mix["levels"], bed)
    mixed: dict[str, Mixed] = {}

    async def one_language(lang: str) -> None:
        free = len(utterances) - len(kept[lang])
        done = 0
        emit(f"synthesize:{lang}", 0, free)

        def voiced() -> None:
            nonlocal done
            done += 1
            emit(f"synthesize:{lang}", done, free)

        with clock.timed(f"synthesize:{lang}"):
            voicer = LineVoicer(stages.synthesizer, opts, lang, OUTPUT_SR, store, job.job_id)
            placed = await place_language(voicer, utterances, translations_of(state, lang), voices, state.duration_s,
                                          opts.timing, voiced, kept[lang])
        with clock.timed(f"render:{lang}"):
            mixed[lang] = await mix_language(staging, lang, placed, mix, opts.formats, video if containers else None,
                                             state.mix["gains"].get(lang), state.mix["scale"].get(lang, 1.0),
                                             set(kept[lang]))
        emit(f"render:{lang}", 1, 1)

    try:
        await asyncio.gather(*(one_language(lang) for lang in targets))
        videos: dict[str, dict[str, str]] = {}
        if containers:
            with clock.timed("video"):
                videos = await write_language_videos(staging, job.input, video, containers, mixed, targets, opts,
                                                     state.source_language)
    finally:
        drop_staged(mixed)
    regenerated = {lang: tuple(u.id for u in utterances if u.id not in kept[lang]) for lang in targets}
    for lang in targets:
        fits = await asyncio.to_thread(keep_fits, store, lang, state.voices, mixed[lang].placed, set(regenerated[lang]))
        state.placed[lang] = fits
        state.mix["gains"][lang], state.mix["scale"][lang] = mixed[lang].gains, mixed[lang].scale
    state.revision += 1
    state.lines = [replace(line, stale=False) for line in state.lines]
    state.edits = [{**edit, "rendered": state.revision} if edit["rendered"] is None else edit for edit in state.edits]
    outputs = {lang: replace(mixed[lang].output, files={**mixed[lang].output.files, **videos.get(lang, {})})
               for lang in targets}
    manifest = await asyncio.to_thread(_write_manifest, staging, out_dir, state, utterances, outputs, clock.stage_s)
    names = [name for out in outputs.values() for name in out.files.values()]
    names += list(videos.get(COMBINED_STEM, {}).values()) + [manifest.name]
    state.commit = {"revision": state.revision, "files": names}
    await asyncio.to_thread(file.save, state)  # the commit: from here on this render is the job's
    await asyncio.to_thread(finish_commit, file, state, out_dir)
    log.info("[%s] rendered revision %d: %s", job.job_id, state.revision,
             ", ".join(f"{lang} {len(ids)} line(s) regenerated" for lang, ids in regenerated.items()))
    return Rendered(state.revision, True, regenerated, outputs, str(out_dir / MANIFEST), clock.stage_s)


def _check_input(state: JobState) -> None:
    """The input must be the one dubbed (the videos copy its picture, the bed comes from its sound)."""
    path = Path(state.job["input"])
    if not path.is_file():
        raise DubError(f"the input {path} is gone: it is needed to render this job's videos or background again; put "
                       "it back or dub it again")
    if fingerprint(path) != list(state.job["fingerprint"]):
        raise DubError(f"the input {path} changed since it was dubbed: dub it again instead of rendering")


async def _translate(state: JobState, stages: Stages, opts: DubOptions, clock: _Clock, emit) -> None:
    """Machine n-best for the lines whose source text changed (one call per language), kept in the state."""
    for lang in state.targets:
        todo = _untranslated(state, lang)
        if not todo:
            continue
        emit(f"translate:{lang}", 0, 1)
        with clock.timed(f"translate:{lang}"):
            found = await translate_lines(stages.translator, [utterance_of(line) for line in todo],
                                          state.source_language, lang, opts, state.job["job_id"])
        fresh = {line_id: tuple(t.candidates) for line_id, t in found.items()}
        state.lines = [replace(line, candidates={**line.candidates, lang: fresh[line.id]}) if line.id in fresh
                       else line for line in state.lines]
        emit(f"translate:{lang}", 1, 1)


async def _voices(state: JobState, store: Checkpoint, stages: Stages, kept: dict[str, dict]) -> dict[str, tuple]:
    """Each speaker's conditionals as the voicer takes them, read from the checkpoint for the speakers of the lines
    voiced again (never computed again: the voice is the one the first pass made)."""
    needed = {line.speaker for lang in state.targets for line in state.lines if line.id not in kept[lang]}
    voices: dict[str, tuple[str, Any]] = {}
    for speaker in state.speakers:
        key = state.voices[speaker]
        if speaker not in needed:
            voices[speaker] = (key, None)
            continue
        value = await asyncio.to_thread(store.get, key)
        if value is None:
            raise DubError(f"the voice of {speaker} is missing from the job's checkpoint ({store.root}): it was "
                           "deleted; dub the input again")
        voices[speaker] = (key, stages.put(value))
    return voices


def _write_manifest(staging: Path, out_dir: Path, state: JobState, utterances, outputs: dict[str, LanguageOutput],
                    render_s: dict[str, float]) -> Path:
    """The last manifest brought up to this revision: the lines as edited, the edits applied, this render's times."""
    try:
        previous = json.loads((out_dir / MANIFEST).read_text())
    except (OSError, ValueError):
        raise DubError(f"{out_dir / MANIFEST} is missing or unreadable: dub the input again") from None
    previous.pop("languages", None)
    job = {**previous, "revision": state.revision, "speakers": list(state.speakers),
           "utterances": [u.to_json() for u in utterances], "edits": state.edits, "render_s": render_s}
    return write_manifest(staging, job, outputs, {line.id: line.revision for line in state.lines})
