"""Transcripts a user brings, read from disk: the source's (SRT or WebVTT, instead of ASR) and, per target
language, a translation of it cue for cue (instead of machine translation). The parsing and the alignment rules
are ``graph.timeline.cues``'; this is the file side: UTF-8, and errors that name the file."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from graph.errors import BadInput
from graph.timeline.cues import Cue, aligned_texts, parse_cues
from graph.types import Translation, Utterance


def read_transcript(path: str | Path, what: str = "transcript") -> list[Cue]:
    """The cues of a transcript file (SRT or WebVTT, UTF-8); ``BadInput`` saying what is wrong with it."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise BadInput(f"cannot read the {what} {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise BadInput(f"the {what} {path.name} is not UTF-8 text (SRT or WebVTT)") from None
    return parse_cues(text, path.name)


def read_translation(path: str | Path, utterances: Sequence[Utterance], lang: str) -> dict[str, Translation]:
    """A translated transcript as each source line's only candidate; BadInput when its cues do not line up."""
    cues = read_transcript(path, f"{lang} translation")
    lines = sorted(utterances, key=lambda u: (u.start_s, u.end_s))
    texts = aligned_texts(cues, lines, f"the {lang} translation {Path(path).name}")
    return {u.id: Translation(u.id, lang, (text,)) for u, text in zip(lines, texts)}
