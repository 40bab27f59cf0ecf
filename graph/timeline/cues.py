"""Reading a transcript the user brings (SRT or WebVTT) into cues, and cues into the lines a job dubs.

A cue may name its speaker as ``[Alice] text`` (SRT, and what dubgraph's own SRT writes) or ``<v Alice>text``
(WebVTT voice spans, what dubgraph's own VTT writes). When every cue names one, the job needs neither ASR nor
diarization; otherwise unnamed cues take the diarized speaker whose turns overlap them most.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from graph.errors import BadInput
from graph.timeline.assign import DEFAULT_SPEAKER, AssignOptions, speaker_of
from graph.types import SpeakerTurn, Utterance, Word

MAX_CUES = 20_000
MAX_CUE_CHARS = 2_000
_STAMP = r"(?:(\d+):)?(\d{1,2}):(\d{2})[,.](\d{1,3})"
_TIMING = re.compile(rf"^\s*{_STAMP}\s*-->\s*{_STAMP}")
_BRACKET = re.compile(r"^\s*\[([^\]\n]{1,64})\]\s*")
_VOICE = re.compile(r"<v(?:\.[\w.-]+)?\s+([^>\n]{1,64})>")
_TAGS = re.compile(r"<[^>]*>|\{\\[^}]*\}")


@dataclass(frozen=True)
class Cue:
    start_s: float
    end_s: float
    text: str
    speaker: str | None = None


def _seconds(hours: str | None, minutes: str, seconds: str, fraction: str) -> float:
    return int(hours or 0) * 3600 + int(minutes) * 60 + int(seconds) + int(fraction.ljust(3, "0")) / 1000


def parse_cues(text: str, name: str = "transcript") -> list[Cue]:
    """Cues of an SRT or WebVTT document in time order; ``BadInput`` naming the line for anything malformed."""
    text = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    lines = text.split("\n")
    cues: list[Cue] = []
    index = 0
    while index < len(lines):
        match = _TIMING.match(lines[index])
        if match is None:
            if "-->" in lines[index]:
                raise BadInput(f"{name} line {index + 1}: cannot read the times {lines[index].strip()!r} "
                               "(expected HH:MM:SS,mmm --> HH:MM:SS,mmm)")
            index += 1
            continue
        start, end = _seconds(*match.groups()[:4]), _seconds(*match.groups()[4:])
        if end <= start:
            raise BadInput(f"{name} line {index + 1}: the cue ends ({end:.3f} s) before it starts ({start:.3f} s)")
        body = []
        index += 1
        while index < len(lines) and lines[index].strip():
            body.append(lines[index].strip())
            index += 1
        cue = _cue(start, end, " ".join(body))
        if len(cue.text) > MAX_CUE_CHARS:
            raise BadInput(f"{name}: the cue at {start:.3f} s has {len(cue.text)} characters (at most {MAX_CUE_CHARS})")
        if cue.text:
            cues.append(cue)
        if len(cues) > MAX_CUES:
            raise BadInput(f"{name} has more than {MAX_CUES} cues")
    if not cues:
        raise BadInput(f"{name} holds no cues with text: expected SRT (1 / 00:00:01,000 --> 00:00:02,500 / text) "
                       "or WebVTT")
    return sorted(cues, key=lambda c: (c.start_s, c.end_s))


def _cue(start: float, end: float, body: str) -> Cue:
    speaker = None
    voice = _VOICE.search(body)
    if voice:
        speaker = voice.group(1).strip()
    else:
        bracket = _BRACKET.match(body)
        if bracket:
            speaker, body = bracket.group(1).strip(), body[bracket.end():]
    return Cue(round(start, 3), round(end, 3), " ".join(_TAGS.sub("", body).split()), speaker or None)


def named(cues: Sequence[Cue]) -> bool:
    """Every cue names its speaker: no diarization is needed."""
    return all(cue.speaker for cue in cues)


def cue_turns(cues: Sequence[Cue]) -> list[SpeakerTurn]:
    """The named cues as speaker turns (what reference picking needs to find solo speech)."""
    return [SpeakerTurn(cue.speaker, cue.start_s, cue.end_s) for cue in cues if cue.speaker]


def cue_utterances(cues: Sequence[Cue], turns: Sequence[SpeakerTurn] = ()) -> list[Utterance]:
    """One line per cue, ids ``u0000``...: its own speaker, else the diarized one overlapping it most (the nearest
    turn when none overlaps; ``assign.speaker_of``)."""
    reach = AssignOptions(nearest_turn_s=float("inf"))
    return [
        Utterance(f"u{index:04d}", cue.speaker or speaker_of(Word(cue.text, cue.start_s, cue.end_s), turns, reach)
                  or DEFAULT_SPEAKER, cue.start_s, cue.end_s, cue.text)
        for index, cue in enumerate(cues)
    ]


ALIGN_S = 0.5  # a translated cue's middle may sit this far outside its source line's slot


def aligned_texts(cues: Sequence[Cue], utterances: Sequence[Utterance], name: str = "translation") -> list[str]:
    """The text of each source line (``utterances``, in time order) from a translated transcript cue-aligned with
    them: one cue per line, in order, each cue's middle within its line's slot (``ALIGN_S`` of slack); BadInput
    naming the first cue that does not line up."""
    lines = sorted(utterances, key=lambda u: (u.start_s, u.end_s))
    if len(cues) != len(lines):
        raise BadInput(f"{name} has {len(cues)} cues for {len(lines)} source lines: a translation needs one cue per "
                       "source line, in order (translate the transcript's cues one for one)")
    for index, (cue, line) in enumerate(zip(cues, lines), start=1):
        middle = (cue.start_s + cue.end_s) / 2
        if not line.start_s - ALIGN_S <= middle <= line.end_s + ALIGN_S:
            raise BadInput(f"{name} cue {index} ({cue.start_s:.3f}-{cue.end_s:.3f} s) does not line up with source "
                           f"line {line.id} ({line.start_s:.3f}-{line.end_s:.3f} s, {line.text[:40]!r}): a "
                           "translation keeps the transcript's cue times")
    return [cue.text for cue in cues]
