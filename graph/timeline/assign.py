"""Words x speaker turns -> utterances: the lines that get translated, voiced and placed.

Each word goes to the speaker whose turn overlaps it most (nearest turn when none overlaps); consecutive words of
one speaker form a line, split at long pauses and at sentence ends once the line is long enough; fragments too
short to dub on their own join the neighbouring line of the same speaker.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from graph.types import SpeakerTurn, Utterance, Word

SENTENCE_END = (".", "?", "!", "…")
DEFAULT_SPEAKER = "SPEAKER_00"


@dataclass(frozen=True)
class AssignOptions:
    max_pause_s: float = 1.0  # a pause this long always ends a line
    sentence_min_s: float = 1.5  # a sentence end ends a line once the line is at least this long
    max_line_s: float = 12.0  # longer lines are cut at the next word boundary
    merge_under_s: float = 0.6  # fragments shorter than this join a neighbour of the same speaker
    merge_gap_s: float = 0.5  # ... when the gap between them is at most this
    nearest_turn_s: float = 1.0  # a word outside every turn takes the nearest turn within this distance
    min_speech_fraction: float = 0.5  # a line less covered by detected speech is an ASR hallucination in silence
    snap_s: float = 0.5  # a line's start moves to its speaker's speech onset when that is at most this earlier


def speaker_of(word: Word, turns: Sequence[SpeakerTurn], options: AssignOptions) -> str | None:
    """The speaker whose turns overlap ``word`` most; else the nearest turn within reach; else None."""
    overlap: dict[str, float] = {}
    for turn in turns:
        shared = min(word.end_s, turn.end_s) - max(word.start_s, turn.start_s)
        if shared > 0:
            overlap[turn.speaker] = overlap.get(turn.speaker, 0.0) + shared
    if overlap:
        return max(overlap.items(), key=lambda item: (item[1], item[0]))[0]
    mid = (word.start_s + word.end_s) / 2
    distance, nearest = min(
        ((max(turn.start_s - mid, mid - turn.end_s), turn.speaker) for turn in turns), default=(None, None)
    )
    return nearest if distance is not None and distance <= options.nearest_turn_s else None


def assign_speakers(words: Sequence[Word], turns: Sequence[SpeakerTurn], options: AssignOptions) -> list[str]:
    """One speaker label per word; unplaceable words inherit the previous word's speaker."""
    labels: list[str] = []
    for word in words:
        speaker = speaker_of(word, turns, options)
        labels.append(speaker or (labels[-1] if labels else (turns[0].speaker if turns else DEFAULT_SPEAKER)))
    return labels


def _ends_line(line: list[Word], word: Word, options: AssignOptions) -> bool:
    last = line[-1]
    duration = last.end_s - line[0].start_s
    if word.start_s - last.end_s >= options.max_pause_s or duration >= options.max_line_s:
        return True
    return last.text.rstrip().endswith(SENTENCE_END) and duration >= options.sentence_min_s


def _group(words: Sequence[Word], labels: Sequence[str], options: AssignOptions) -> list[tuple[str, list[Word]]]:
    groups: list[tuple[str, list[Word]]] = []
    for word, speaker in zip(words, labels):
        if groups and groups[-1][0] == speaker and not _ends_line(groups[-1][1], word, options):
            groups[-1][1].append(word)
        else:
            groups.append((speaker, [word]))
    return groups


def _merge_fragments(groups: list[tuple[str, list[Word]]], options: AssignOptions) -> list[tuple[str, list[Word]]]:
    merged: list[tuple[str, list[Word]]] = []
    for speaker, words in groups:
        short = words[-1].end_s - words[0].start_s < options.merge_under_s
        if merged and merged[-1][0] == speaker:
            prev = merged[-1][1]
            prev_short = prev[-1].end_s - prev[0].start_s < options.merge_under_s
            if (short or prev_short) and words[0].start_s - prev[-1].end_s <= options.merge_gap_s:
                prev.extend(words)
                continue
        merged.append((speaker, list(words)))
    return merged


def _covered_s(start: float, end: float, turns: Sequence[SpeakerTurn]) -> float:
    spans = sorted((max(start, t.start_s), min(end, t.end_s)) for t in turns if t.end_s > start and t.start_s < end)
    covered, reach = 0.0, start
    for a, b in spans:
        if b > reach:
            covered += b - max(a, reach)
            reach = b
    return covered


def speech_bounds(
    speaker: str, start_s: float, end_s: float, turns: Sequence[SpeakerTurn], options: AssignOptions
) -> tuple[float, float] | None:
    """A line's edges snapped to where its speaker's detected speech begins and ends (Whisper's first and last
    word times drift by a few hundred ms), or None when detected speech covers too little of it: Whisper's
    habit of inventing "Thank you." in trailing silence. Without turns there is nothing to check against."""
    if not turns:
        return start_s, end_s
    if _covered_s(start_s, end_s, turns) < options.min_speech_fraction * max(end_s - start_s, 1e-3):
        return None
    own = [t for t in turns if t.speaker == speaker and t.end_s > start_s and t.start_s < end_s]
    if own:
        onset = min(t.start_s for t in own)
        if onset >= start_s - options.snap_s:
            start_s = onset
        end_s = min(end_s, max(t.end_s for t in own))
    return start_s, end_s


def build_utterances(
    words: Sequence[Word], turns: Sequence[SpeakerTurn], options: AssignOptions = AssignOptions()
) -> list[Utterance]:
    """Lines in time order, ids ``u0000``...; every word in exactly one line, except lines detected speech does not
    support (see :func:`speech_bounds`)."""
    words = sorted((w for w in words if w.text.strip()), key=lambda w: (w.start_s, w.end_s))
    groups = _merge_fragments(_group(words, assign_speakers(words, turns, options), options), options)
    lines = []
    for speaker, line in groups:
        bounds = speech_bounds(speaker, line[0].start_s, line[-1].end_s, turns, options)
        if bounds is not None:
            lines.append((speaker, bounds, " ".join(w.text.strip() for w in line)))
    return [
        Utterance(id=f"u{index:04d}", speaker=speaker, start_s=round(start, 3), end_s=round(end, 3), text=text)
        for index, (speaker, (start, end), text) in enumerate(lines)
    ]
