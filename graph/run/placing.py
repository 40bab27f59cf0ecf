"""One language's lines voiced and placed: duration-aware synthesis around the timeline solver.

1. Each speaker's longest line is voiced first, at the voice's natural pace: its characters per second are that
   voice's measured pace, from which the natural duration of every other line is predicted.
2. Every other line gets the best-ranked candidate predicted to fit its slot (else the shortest) and is voiced,
   all at once, at the speed-up the solver predicts for it.
3. The solver (graph/timeline/solver.py) places every line on its measured natural duration. A line that does
   not fit its slot even at ``max_stretch`` is re-voiced with the candidate the rule of step 2 picks on its
   measured pace, when that is another one (within the speed-up bound, speed is cheaper than another take); a
   line the solver must cut is re-voiced as the longest word prefix predicted to fit, so a cut falls between
   words and ends with the voice's own intonation. Then the solver runs again.
4. A line whose take is more than ``RETAKE`` longer or shorter than its plan is voiced again at a pace corrected
   by the ratio (``RETAKES`` times at most); a pitch-preserving stretch makes up the rest
   (graph/timeline/timing.py), and a cut that prediction still missed falls at a pause in the audio.

A re-render after edits passes the unchanged lines as ``kept``: they keep their plans and fitted samples (nothing
voiced, stretched or moved), a voice's pace is measured on its kept lines, and only the other lines go through
the steps above, placed in the room the kept ones leave.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from graph.options import TimingOptions
from graph.run.lines import LineVoicer, Take
from graph.timeline.solver import Plan, Slot, solve
from graph.timeline.timing import choose_candidate, fit_take, predicted_s, source_pace, word_prefix
from graph.types import PlacedLine, Translation, Utterance

RETAKE = 0.15  # a take more than 15 % off its plan is voiced again at a corrected pace; less is stretched
RETAKES = 2  # at most this many times (espeak-ng's duration does not scale exactly with its pace)
PACES = (0.5, 2.5)  # speed-ups asked of a synthesizer (espeak-ng's words per minute stay within its range)
ROUNDS = 2  # solve, re-voice (candidates, cuts), solve again: at most this many times
STRETCHED = 0.01  # a take time-stretched by more than 1 % is flagged "stretched" (the review page marks it so)

@dataclass(frozen=True)
class Placed:
    """A line as placed: its record, its fitted samples (at the take's rate) and the plan the solver gave it."""

    line: PlacedLine
    samples: np.ndarray
    plan: Plan


@dataclass
class _Line:
    u: Utterance
    candidates: tuple[str, ...]
    conds: tuple[str, Any]
    chosen: int = 0
    take: Take | None = None
    uncut_s: float | None = None  # natural duration of the text before a cut left words out
    flags: list[str] = field(default_factory=list)


async def place_language(voicer: LineVoicer, utterances: Sequence[Utterance], translations: dict[str, Translation],
                         conds: dict[str, tuple[str, Any]], total_s: float, options: TimingOptions,
                         voiced: Callable[[], None] = lambda: None,
                         kept: dict[str, Placed] | None = None) -> list[Placed]:
    """Every line of one language (``utterances``' order) placed; ``voiced`` after each first take.

    ``kept``: line id -> its placement from the last render, kept as it is (only the other lines are voiced)."""
    kept = kept or {}
    lines = [_Line(u, kept[u.id].line.candidates, conds[u.speaker]) if u.id in kept else
             _Line(u, translations[u.id].candidates, conds[u.speaker], flags=list(translations[u.id].flags))
             for u in utterances]
    free = [line for line in lines if line.u.id not in kept]
    voiced_here = {id(line) for line in free}
    fixed = {i: kept[line.u.id].plan for i, line in enumerate(lines) if line.u.id in kept}

    async def voice(line: _Line, text: str, pace: float, first: bool = False) -> None:
        line.take = await voicer.take(line.u, text, line.conds, _bounded(pace))
        if first:
            voiced()

    def solved(chars_per_s: dict[str, float] | None = None) -> list[Plan]:
        return solve([_slot(line, chars_per_s and chars_per_s[line.u.speaker]) for line in lines], total_s, options,
                     fixed)

    cps = {s: source_pace([u for u in utterances if u.speaker == s]) for s in {u.speaker for u in utterances}}
    cps.update(_kept_pace(kept.values()))
    firsts: dict[str, _Line] = {}
    for line in sorted(free, key=lambda x: -len(x.candidates[0].strip())):
        if not any(p.line.speaker == line.u.speaker for p in kept.values()):
            firsts.setdefault(line.u.speaker, line)
    for line in firsts.values():
        line.chosen = choose_candidate(line.candidates, line.u.duration_s, cps[line.u.speaker])
    await asyncio.gather(*(voice(line, line.candidates[line.chosen], 1.0, True) for line in firsts.values()))
    for speaker, line in firsts.items():
        if line.take.natural_s > 0:
            cps[speaker] = len(line.take.text.strip()) / line.take.natural_s
    for line in free:
        if line.take is None:
            line.chosen = choose_candidate(line.candidates, line.u.duration_s, cps[line.u.speaker])
    predicted = solved(cps)
    await asyncio.gather(*(voice(line, line.candidates[line.chosen], plan.rate, True)
                           for line, plan in zip(lines, predicted) if id(line) in voiced_here and line.take is None))

    for _ in range(ROUNDS):
        plans = solved()
        redo = [(line, *again) for line, plan in zip(lines, plans)
                if id(line) in voiced_here and (again := _revoice(line, plan, options))]
        if not redo:
            break
        await asyncio.gather(*(voice(line, text, rate) for line, text, rate in redo))
    plans = solved()
    natural = {id(line): line.take.natural_s for line in free}
    for _ in range(RETAKES):
        off = [(line, pace) for line, plan in zip(lines, plans)
               if id(line) in voiced_here and (pace := _retake_pace(line.take, plan))]
        await asyncio.gather(*(voice(line, line.take.text, pace) for line, pace in off))
        for line, _ in off:
            if "resynthesized" not in line.flags:
                line.flags.append("resynthesized")
    fitted = await asyncio.gather(*(asyncio.to_thread(_fit, line, plan, natural[id(line)], voicer.lang)
                                    for line, plan in zip(lines, plans) if id(line) in voiced_here))
    placed = {p.line.utterance_id: p for p in fitted}
    return [kept.get(u.id) or placed[u.id] for u in utterances]


def _kept_pace(kept: Iterable[Placed]) -> dict[str, float]:
    """Each voice's characters per second, measured on its longest kept line (as the first pass measured it)."""
    longest: dict[str, PlacedLine] = {}
    for line in (p.line for p in kept):
        best = longest.get(line.speaker)
        if line.natural_s > 0 and (best is None or len(line.text.strip()) > len(best.text.strip())):
            longest[line.speaker] = line
    return {speaker: len(line.text.strip()) / line.natural_s for speaker, line in longest.items()}


def _retake_pace(take: Take, plan: Plan) -> float | None:
    """The pace to voice a take again at, when it is more than ``RETAKE`` longer or shorter than its plan (at its
    rate, before any cut) and another pace within ``PACES`` can fix that; else None."""
    played_s = plan.end_s - plan.start_s + plan.lost_s
    if take.natural_s <= 0 or played_s <= 0:
        return None
    ratio = len(take.samples) / take.sr / played_s
    pace = _bounded(take.pace * ratio)
    return pace if abs(math.log(ratio)) > math.log(1 + RETAKE) and pace != take.pace else None


def _bounded(pace: float) -> float:
    """A pace within ``PACES``, to the hundredth (takes are checkpointed by it)."""
    return round(min(max(pace, PACES[0]), PACES[1]), 2)


def _slot(line: _Line, chars_per_s: float | None = None) -> Slot:
    """The line's slot with its natural duration: measured from its take, else predicted at ``chars_per_s``."""
    if line.take is not None:
        natural = line.take.natural_s
    else:
        natural = predicted_s(line.candidates[line.chosen], chars_per_s) if chars_per_s else 0.0
    return Slot(line.u.start_s, line.u.end_s, natural)


def _revoice(line: _Line, plan: Plan, options: TimingOptions) -> tuple[str, float] | None:
    """What to voice again after a solve, and at what speed-up: another candidate (once), or the words that fit."""
    take = line.take
    if take.natural_s <= 0:
        return None
    measured = len(take.text.strip()) / take.natural_s  # this voice's characters per second on this line
    slot_s = line.u.duration_s
    if "reselected" not in line.flags and line.uncut_s is None and take.natural_s > slot_s * options.max_stretch:
        better = choose_candidate(line.candidates, slot_s, measured)
        if better != line.chosen:
            line.chosen = better
            line.flags.append("reselected")
            text = line.candidates[better]
            return text, min(max(predicted_s(text, measured) / slot_s, 1.0), options.max_stretch)
    if plan.lost_s > 0:
        prefix = word_prefix(take.text, measured, (plan.end_s - plan.start_s) * plan.rate)
        if prefix != take.text:
            line.uncut_s = take.natural_s if line.uncut_s is None else line.uncut_s
            return prefix, plan.rate
    return None


def _fit(line: _Line, plan: Plan, natural_s: float, lang: str) -> Placed:
    """The take fitted to its plan, and the record of what was done to it (``natural_s``: the planned take's)."""
    take, u = line.take, line.u
    samples, stretch, cut_s = fit_take(take.samples, take.sr, plan)
    dropped_s = max(0.0, line.uncut_s - natural_s) if line.uncut_s is not None else 0.0
    lost_s = dropped_s / plan.rate + cut_s
    flags = list(take.flags) + line.flags + list(plan.flags)
    if abs(stretch - 1.0) > STRETCHED:  # the plan's rate may be 1 while its take, voiced at a pace, is stretched
        flags.append("stretched")
    if lost_s > 1e-3:
        flags.append("truncated")
    placed = PlacedLine(
        utterance_id=u.id, speaker=u.speaker, language=lang, source_start_s=u.start_s, source_end_s=u.end_s,
        source_text=u.text, text=take.text, candidates=line.candidates, chosen=line.chosen,
        start_s=round(plan.start_s, 3), end_s=round(plan.start_s + len(samples) / take.sr, 3),
        stretch=round(stretch, 4), flags=tuple(dict.fromkeys(flags)), rate=round(plan.rate, 4), pace=take.pace,
        remedy="cut" if lost_s > 1e-3 else plan.remedy, preroll_s=round(plan.preroll_s, 3),
        shift_s=round(plan.shift_s, 3), lost_s=round(lost_s, 3),
        natural_s=round(natural_s, 3),
    )
    return Placed(placed, samples, plan)


def with_heard(line: PlacedLine, onset_s: float | None, offset_s: float | None) -> PlacedLine:
    """The line with where its speech was heard in the rendered audio."""
    return replace(line, onset_s=None if onset_s is None else round(onset_s, 3),
                   offset_s=None if offset_s is None else round(offset_s, 3))
