"""SRT and WebVTT from placed lines (times are where the dubbed line actually plays)."""

from __future__ import annotations

from collections.abc import Sequence

from graph.types import PlacedLine


def _stamp(seconds: float, sep: str) -> str:
    ms = max(0, int(round(seconds * 1000)))
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs, ms = divmod(ms, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{sep}{ms:03d}"


def _cues(lines: Sequence[PlacedLine]) -> list[PlacedLine]:
    return sorted((line for line in lines if line.text.strip() and line.end_s > line.start_s), key=lambda l: l.start_s)


def to_srt(lines: Sequence[PlacedLine]) -> str:
    blocks = [
        f"{index}\n{_stamp(line.start_s, ',')} --> {_stamp(line.end_s, ',')}\n[{line.speaker}] {line.text.strip()}\n"
        for index, line in enumerate(_cues(lines), start=1)
    ]
    return "\n".join(blocks)


def to_vtt(lines: Sequence[PlacedLine]) -> str:
    blocks = [
        f"{line.utterance_id}\n{_stamp(line.start_s, '.')} --> {_stamp(line.end_s, '.')}\n"
        f"<v {line.speaker}>{line.text.strip()}\n"
        for line in _cues(lines)
    ]
    return "WEBVTT\n\n" + "\n".join(blocks)
