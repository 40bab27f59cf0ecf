"""Per speaker, the voice a job uses and its conditionals, computed once.

Where a speaker's voice comes from, the first that applies:

1. ``clip``: the job's own reference clip for that speaker (``DubJob.references``, checked by
   graph/media/voice_clip.py);
2. ``library``: the library voice the job names for the speaker (``VoiceOptions.library``);
3. ``matched``: with ``VoiceOptions.match``, the library voice whose speaker embedding is closest to the speaker's,
   when close enough (graph/timeline/matching.py). Both embeddings come from the diarizer's own embedding model
   (Resemblyzer's d-vector offline, pyannote's WeSpeaker in full): it is what tells speakers apart already, it is
   loaded anyway, and both profiles have one (espeak has no voice encoder). The speaker's is taken from the
   reference picked in 4, a library voice's from its clip;
4. ``picked``: 6-10 s of the speaker's own clean speech in the recording (graph/timeline/references.py).

Conditionals are keyed by the clip's content and the synthesizer model, computed once per key (across jobs too,
through ``shared``) and kept as one object-store reference that every line of the speaker reads. A clip's or a
picked reference's are checkpointed with the job; a library voice's are kept in the library (graph/media/library.py),
so each library voice is prepared once per synthesizer model, ever; its embeddings likewise.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from graph.errors import BadInput, VoiceNotFound, user_error
from graph.media.library import LibraryVoice, VoiceLibrary
from graph.media.voice_clip import read_clip
from graph.run.checkpoint import Checkpoint, key_of
from graph.run.objects import fetch
from graph.timeline.matching import Match, match_speakers
from graph.timeline.references import Reference, content_key, pick_reference
from graph.types import Clip, SpeakerEmbedding

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Voice:
    """One speaker's voice as used by a job: where it came from, and whether this job computed its conditionals."""

    key: str  # conditionals cache key (reference content hash + synthesizer model)
    ref: Any  # the conditionals: an object-store reference under Ray
    reference_s: float
    computed: bool  # False when reused from another job, a checkpoint or the library
    flags: tuple[str, ...] = ()
    source: str = "picked"  # picked | clip | library | matched
    name: str | None = None  # the clip's file name, or the library voice's name
    match: Match | None = None  # what matching found, when the job asked for it

    def to_json(self) -> dict:
        out = {"source": self.source, "key": self.key, "reference_s": round(self.reference_s, 3),
               "computed": self.computed, "flags": list(self.flags)}
        if self.name is not None:
            out["clip" if self.source == "clip" else "voice"] = self.name
        if self.match is not None:
            out["match"] = self.match.to_json()
        return out


async def job_voices(job, stages, source: Clip, utterances, turns, store: Checkpoint, shared: dict | None,
                     emit: Callable) -> dict[str, Voice]:
    """The voice of every speaker of ``utterances`` (see the module docstring for the order)."""
    shared = {} if shared is None else shared
    opts, tts = job.options.voices, job.options.tts
    synthesizer = job.models.get("synthesizer")
    speakers = sorted({u.speaker for u in utterances})
    unused = sorted((set(job.references) | set(opts.library)) - set(speakers))
    if unused:
        log.warning("[%s] voices given for speakers the job does not have: %s (its speakers: %s)", job.job_id,
                    ", ".join(unused), ", ".join(speakers))
    library = open_library(job.options, job.library)
    clips = {s: await asyncio.to_thread(read_clip, job.references[s], Path(job.references[s]).name)
             for s in speakers if s in job.references}
    named = {s: await asyncio.to_thread(library.get, opts.library[s])
             for s in speakers if s in opts.library and s not in clips}
    picked = {s: pick_reference(source, s, utterances, turns, tts.reference_min_s, tts.reference_max_s)
              for s in speakers if s not in clips and s not in named}
    for speaker, ref in picked.items():
        if ref.flags:
            log.warning("[%s] reference for %s: %s", job.job_id, speaker, ", ".join(ref.flags))
    matches = await _match(job, stages, library, picked, {v.name for v in named.values()}, store) if opts.match else {}

    async def one(speaker: str) -> Voice:
        match = matches.get(speaker)
        if speaker in clips:
            clip = clips[speaker]
            ref = Reference(speaker, clip, content_key(clip.samples, clip.sr))
            key, value, computed = await _conditionals(stages, ref, synthesizer, store, shared)
            return Voice(key, value, clip.duration_s, computed, (), "clip", Path(job.references[speaker]).name)
        entry = named.get(speaker)
        if entry is None and match is not None and match.voice is not None:
            try:
                entry = await asyncio.to_thread(library.get, match.voice)
            except VoiceNotFound:  # removed since matching: the speaker keeps their own voice
                log.warning("[%s] %s: library voice %s is gone, using the speaker's own", job.job_id, speaker,
                            match.voice)
        if entry is not None:
            clip = await asyncio.to_thread(library.clip, entry)
            ref = Reference(speaker, clip, entry.clip_key)
            key, value, computed = await _conditionals(stages, ref, synthesizer, store, shared, library, entry)
            return Voice(key, value, clip.duration_s, computed, (), "library" if speaker in named else "matched",
                         entry.name, match)
        ref = picked[speaker]
        key, value, computed = await _conditionals(stages, ref, synthesizer, store, shared)
        return Voice(key, value, ref.clip.duration_s, computed, ref.flags, "picked", None, match)

    voices = {}
    for done, voice in enumerate(await asyncio.gather(*(one(s) for s in speakers)), start=1):
        voices[speakers[done - 1]] = voice
        emit("voices", done, len(speakers))
    return voices


def check_voices(options, references: dict[str, str], library: str | None) -> None:
    """Before any model loads: every reference clip usable, every named library voice there, a library when one
    is needed (``BadAudio``/``BadInput`` saying what to fix)."""
    for speaker, path in references.items():
        if not isinstance(speaker, str) or not speaker.strip():
            raise BadInput(f"a voice clip must name its speaker (SPEAKER=FILE), got {speaker!r}")
        read_clip(path, f"{Path(path).name} (for {speaker})")
    shelf = open_library(options, library)
    for speaker, name in options.voices.library.items():
        try:
            shelf.get(name)
        except VoiceNotFound as exc:
            raise BadInput(f"speaker {speaker}: {exc}") from None


def open_library(options, library: str | None) -> VoiceLibrary | None:
    """The job's voice library; ``BadInput`` when the job needs one and has none."""
    if library is None:
        if options.voices.library or options.voices.match:
            raise BadInput("this job maps speakers to library voices but no voice library was given")
        return None
    return VoiceLibrary(library)


async def _conditionals(stages, ref: Reference, model: str | None, store: Checkpoint, shared: dict,
                        library: VoiceLibrary | None = None, entry: LibraryVoice | None = None) -> tuple[str, Any, bool]:
    """(key, conditionals as one shared reference, computed by this call?) for ``ref``'s clip."""
    key = "conds-" + key_of(ref.key, model)
    computed = False
    if key not in shared:
        if entry is not None:
            cached = await asyncio.to_thread(library.conditionals, entry, model)
            keep = (lambda value: library.keep_conditionals(entry, model, value))
        else:
            cached = store.get(key)
            keep = (lambda value: store.put(key, value)) if store.root is not None else None
        if cached is not None:
            shared[key] = stages.put(cached)
        else:
            shared[key] = asyncio.ensure_future(_prepare(stages, ref, keep))
            computed = True
    value = shared[key]
    if asyncio.isfuture(value):
        value = await value
        shared[key] = value
    return key, value, computed


async def _prepare(stages, ref: Reference, keep: Callable[[Any], None] | None) -> Any:
    """Conditionals from the synthesizer; when kept (checkpoint, library), the copy every line reads is put here
    (owned and kept on this node), so it outlives the worker node that computed it."""
    conds_ref = await stages.synthesizer.call_ref("prepare", ref.clip.samples, ref.clip.sr)
    if keep is None:
        return conds_ref
    value = await fetch(conds_ref)
    await asyncio.to_thread(keep, value)
    return stages.put(value)


async def _match(job, stages, library: VoiceLibrary, picked: dict[str, Reference], taken: set[str],
                 store: Checkpoint) -> dict[str, Match]:
    """Library voices for the speakers in ``picked`` (voices in ``taken`` are spoken for already)."""
    model = job.models.get("diarizer", "")
    entries = [v for v in await asyncio.to_thread(library.voices) if v.name not in taken]

    async def speaker(ref: Reference) -> SpeakerEmbedding | None:
        key = "embed-" + key_of(ref.key, model)
        embedding = store.get(key)
        if embedding is None:
            embedding = await _embed(stages, ref.clip, f"speaker {ref.speaker}", job.job_id)
            if embedding is not None:
                store.put(key, embedding)
        return embedding

    async def voice(entry: LibraryVoice) -> SpeakerEmbedding | None:
        embedding = await asyncio.to_thread(library.embedding, entry, model)
        if embedding is None:
            clip = await asyncio.to_thread(library.clip, entry)
            embedding = await _embed(stages, clip, f"library voice {entry.name}", job.job_id)
            if embedding is not None:
                await asyncio.to_thread(library.keep_embedding, entry, embedding)
        return embedding

    found = await asyncio.gather(*(speaker(r) for r in picked.values()), *(voice(e) for e in entries))
    ours, theirs = found[: len(picked)], found[len(picked) :]
    known = [e for e in found if e is not None]
    threshold = job.options.voices.match_threshold
    if threshold is None:
        threshold = known[0].threshold if known else 1.0
    matches = match_speakers({s: e.vector for s, e in zip(picked, ours) if e is not None},
                             {v.name: e.vector for v, e in zip(entries, theirs) if e is not None}, threshold)
    for speaker_label, match in matches.items():
        log.info("[%s] %s: closest library voice %s (%.3f, threshold %.3f) -> %s", job.job_id, speaker_label,
                 match.closest, match.score if match.score is not None else float("nan"), threshold, match.voice)
    return matches


async def _embed(stages, clip: Clip, what: str, job_id: str) -> SpeakerEmbedding | None:
    """The clip's speaker embedding; None (logged) when the model finds too little voice in it."""
    try:
        return await stages.diarizer.call("embed", clip.samples, clip.sr)
    except Exception as exc:  # a clip the embedding model refuses leaves that speaker or voice unmatched
        error = user_error(exc)
        if error is None:
            raise
        log.warning("[%s] no speaker embedding for %s, left out of voice matching: %s", job_id, what, error)
        return None
