"""The translate step of one language: n-best candidates per line, with the job's glossary enforced and checked.

How terms are enforced (placeholders, and lines translated in pieces when a translator drops them) is in
graph/timeline/glossary.py; this module makes the translator calls: one for every line, and one more for the
pieces of the lines whose every candidate lost a placeholder.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from graph.options import DubOptions
from graph.run.stages import Stage
from graph.timeline.glossary import Protected, join, missing, protect, required, restore, split
from graph.types import Translation, Utterance

log = logging.getLogger(__name__)


def glossary_table(options: DubOptions, lang: str) -> dict[str, str]:
    """Source term (case-folded) -> what a translation into ``lang`` must contain."""
    return required(options.glossary.terms.get(lang, {}), options.glossary.keep)


async def translate_lines(translator: Stage, utterances: list[Utterance], source: str, lang: str,
                          options: DubOptions, job_id: str = "job") -> dict[str, Translation]:
    """Every line's candidates (best first, never empty) and flags: ``glossary_split`` for a line translated in
    pieces around its terms, ``term_missing`` for one whose candidates still lack a required term."""
    table = glossary_table(options, lang)
    protected = [protect(u.text, table) for u in utterances]
    candidates = await translator.call("translate", [p.text for p in protected], source, lang, options.translate)
    kept: list[tuple[str, ...]] = [_restored(c, p) for c, p in zip(candidates, protected)]
    flags: list[tuple[str, ...]] = [()] * len(utterances)
    redo = [i for i, k in enumerate(kept) if not k]
    if redo:
        pieces = [piece for i in redo for piece in split(protected[i])]
        one_best = replace(options.translate, n_best=1)
        translated = await translator.call("translate", pieces, source, lang, one_best) if pieces else []
        done = iter(c[0] for c in translated)
        for i in redo:
            kept[i] = (join(protected[i], [next(done) for _ in split(protected[i])]),)
            flags[i] = ("glossary_split",)
    out = {}
    for u, p, cands, line_flags in zip(utterances, protected, kept, flags):
        complete = tuple(c for c in cands if not missing(c, p.targets))
        if p.targets and not complete:
            log.warning("[%s] line %s (%s) lacks glossary term(s) %s: %r", job_id, u.id, lang,
                        ", ".join(missing(cands[0], p.targets)), cands[0])
            line_flags += ("term_missing",)
        out[u.id] = Translation(u.id, lang, complete or cands or ("",), line_flags)
    return out


def _restored(candidates: tuple[str, ...], protected: Protected) -> tuple[str, ...]:
    """The candidates with their terms back in place; those that lost a placeholder are dropped."""
    if not protected.targets:
        return tuple(candidates) or ("",)
    return tuple(dict.fromkeys(r for c in candidates if (r := restore(c, protected)) is not None))
