"""A job's placed lines kept for its next render: the line state a first pass leaves (``graph.edits``), each
line's fitted samples in the checkpoint (``fit-KEY``), and the lines a re-render keeps as they were.

A fitted line's key is made of what its samples follow from (language, voice, line, text, pace, exact plan), so
an unchanged line finds its samples again and a changed one never finds stale ones.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from graph.edits import JobState, LineState
from graph.options import to_dict
from graph.run.checkpoint import Checkpoint, key_of
from graph.run.objects import fetch
from graph.run.placing import Placed
from graph.run.tracks import Mix, Mixed
from graph.timeline.solver import Plan
from graph.types import Translation, Utterance

FAILED = "synthesis_failed"  # a line that failed is voiced again by the next render, edited or not


def plan_plain(plan: Plan) -> dict[str, Any]:
    return {**asdict(plan), "flags": tuple(plan.flags)}


def plan_of(data: dict[str, Any]) -> Plan:
    return Plan(**{**data, "flags": tuple(data["flags"])})


def fit_key(lang: str, voice: str, placed: Placed) -> str:
    line = placed.line
    return "fit-" + key_of(lang, voice, line.utterance_id, line.text, line.pace, sorted(plan_plain(placed.plan).items()))


def keep_fits(store: Checkpoint, lang: str, voices: dict[str, str], placed: Sequence[Placed],
              only: set[str] | None = None) -> dict[str, dict[str, Any]]:
    """Store each placed line's fitted samples (``only`` these ids: the others are stored already); the entries
    of the state's ``placed`` for them."""
    entries = {}
    for p in placed:
        voice = voices[p.line.speaker]
        key = fit_key(lang, voice, p)
        if only is None or p.line.utterance_id in only:
            store.put(key, p.samples)
        entries[p.line.utterance_id] = {"line": p.line, "plan": plan_plain(p.plan), "fit": key, "voice": voice}
    return entries


def kept_lines(state: JobState, store: Checkpoint, lang: str, load: bool = True) -> dict[str, Placed | None]:
    """The lines of ``lang`` the next render keeps as they are, with their fitted samples (``load`` False: only
    which lines, the values None): those whose speaker, slot and text are what they were placed with, unless their
    speaker's voice changed or their voicing failed (then they are voiced again, except when locked)."""
    kept = {}
    for line in state.lines:
        entry = state.placed.get(lang, {}).get(line.id)
        if entry is None:
            continue
        placed, wanted = entry["line"], line.wanted(lang)
        same = (placed.speaker == line.speaker and (placed.source_start_s, placed.source_end_s) == (line.start_s, line.end_s)
                and (tuple(placed.candidates) == wanted or (line.locked and wanted is None)))
        fresh = entry["voice"] == state.voices.get(line.speaker) and FAILED not in placed.flags
        if not (same and (fresh or line.locked)):
            continue
        if not load:
            if store.has(entry["fit"]):
                kept[line.id] = None
            continue
        samples = store.get(entry["fit"])
        if samples is not None:
            kept[line.id] = Placed(replace(placed, source_text=line.source_text), samples, plan_of(entry["plan"]))
    return kept


def utterances_of(state: JobState) -> list[Utterance]:
    """The job's lines as the pipeline's utterances, in source order."""
    lines = sorted(state.lines, key=lambda line: (line.start_s, line.end_s, line.id))
    return [utterance_of(line) for line in lines]


def utterance_of(line: LineState) -> Utterance:
    return Utterance(line.id, line.speaker, line.start_s, line.end_s, line.source_text)


def translations_of(state: JobState, lang: str) -> dict[str, Translation]:
    """What each line is voiced from in ``lang`` (lines still to be translated have none)."""
    return {line.id: Translation(line.id, lang, wanted) for line in state.lines
            if (wanted := line.wanted(lang)) is not None}


def first_state(job, state_dir: Path, store: Checkpoint, source_language: str, utterances: Sequence[Utterance],
                translations: dict[str, dict[str, Translation]], voices: dict[str, str], mix: Mix,
                mixed: dict[str, Mixed], containers: Sequence[str]) -> JobState:
    """The line state a first pass leaves (revision 0, nothing edited), its fitted lines stored in ``store``."""
    lines = [LineState(u.id, u.speaker, u.text, u.start_s, u.end_s,
                       candidates={lang: tuple(translations[lang][u.id].candidates) for lang in translations})
             for u in utterances]
    placed = {lang: keep_fits(store, lang, voices, m.placed) for lang, m in mixed.items()}
    return JobState(
        revision=0, job={**job_plain(job, state_dir, store), "containers": list(containers)},
        source_language=source_language,
        duration_s=mix.duration_s, speakers=tuple(sorted(voices)), voices=dict(voices),
        mix={"sr": mix.sr, "levels": dict(mix.levels),
             "bed_gains": None if mix.bed is None else mix.bed.voice_gains,
             "gains": {lang: m.gains for lang, m in mixed.items()},
             "scale": {lang: m.scale for lang, m in mixed.items()}},
        lines=lines, placed=placed)


async def keep_voices(store: Checkpoint, voices: dict) -> None:
    """Every voice's conditionals in the job's checkpoint, where a re-render reads them: a library voice's are kept
    in the library, which may lose that voice before the job is edited."""
    for voice in voices.values():
        if not await asyncio.to_thread(store.has, voice.key):
            value = await fetch(voice.ref)
            await asyncio.to_thread(store.put, voice.key, value)


def job_plain(job, state_dir: Path, store: Checkpoint) -> dict[str, Any]:
    """What rebuilds the ``DubJob`` (graph/run/pipeline.py): paths absolute, the checkpoint relative to the state
    when inside the same tree (so an output directory can be moved whole)."""
    checkpoint = Path(store.root).resolve()
    return {
        "input": str(Path(job.input).resolve()), "fingerprint": fingerprint(job.input),
        "transcript": str(Path(job.transcript).resolve()) if job.transcript else None,
        "translations": {lang: str(Path(path).resolve()) for lang, path in job.translations.items()},
        "options": to_dict(job.options), "sources": list(job.sources), "targets": list(job.targets),
        "models": dict(job.models), "job_id": job.job_id, "max_duration_s": job.max_duration_s,
        "checkpoint": os.path.relpath(checkpoint, Path(state_dir).resolve()),
    }


def fingerprint(path: str | Path) -> list[int]:
    """What tells a changed input from the one a job dubbed (size, modification time)."""
    stat = Path(path).stat()
    return [stat.st_size, stat.st_mtime_ns]


def checkpoint_of(state: JobState, state_dir: Path) -> Checkpoint:
    return Checkpoint((Path(state_dir) / state.job["checkpoint"]).resolve())
