"""Text translation with a Hugging Face seq2seq model: NLLB-200 (any pair) or a Marian model (fixed pairs).

``spec.options["family"]`` picks how the model is driven:

- ``"nllb"`` (default): one model for every language pair; the tokenizer's ``src_lang`` marks the source and
  ``forced_bos_token_id`` (the target's flores code) makes the decoder start in the target language.
- ``"marian"``: a ``MarianMTModel`` trained for one pair, with no language tokens at all;
  ``spec.options["pairs"]`` lists the ``(source, target)`` codes it serves. Several pairs on one Marian model
  only make sense for a test model (the tiny random fixture) since nothing tells the model which target to
  produce; real multi-target Marian models (``>>xx<<`` prefixes) are not supported.

Loader contract (``spec.loader``, "module:function"): ``function(location, device) -> (model, tokenizer)``, the
model a transformers seq2seq model already on ``device``, the tokenizer a transformers tokenizer whose
``__call__`` and ``batch_decode`` work as usual (for NLLB it must accept ``src_lang`` as an attribute).
"""

from __future__ import annotations

import logging
from typing import Any

from actors.device import pick_device
from actors.models import ModelSpec, load_object, resolve
from graph.errors import BadInput
from graph.languages import LANGUAGES, Language, language
from graph.options import TranslateOptions

log = logging.getLogger(__name__)

FAMILIES = ("nllb", "marian")


class Translator:
    """One seq2seq model; ``translate`` returns n-best candidates per text, best first."""

    def __init__(self, spec: ModelSpec, profile: str = "full", device: str | None = None):
        self.spec = spec
        self.family = spec.options.get("family", "nllb")
        if self.family not in FAMILIES:
            raise BadInput(f"translator {spec.name!r}: unknown family {self.family!r}; choose one of {FAMILIES}")
        self.pairs = self._pairs(spec)
        location = resolve(spec, profile).location
        self.device = pick_device(device)
        if spec.loader:
            self.model, self.tokenizer = load_object(spec.loader)(location, self.device)
        else:
            self.model, self.tokenizer = _load(self.family, location, self.device)
        self.model.eval()
        log.info("translator %s (%s) loaded from %s on %s", spec.name, self.family, location, self.device)

    def translate(
        self, texts: list[str], source: str, target: str, options: TranslateOptions = TranslateOptions()
    ) -> list[tuple[str, ...]]:
        """Candidates for each text, in input order; an empty text gives ``("",)`` and never reaches the model."""
        src, tgt = self._check(source, target)
        results: list[tuple[str, ...]] = [("",)] * len(texts)
        # Similar lengths share a batch, so little of each generate call is spent on padding.
        todo = sorted((i for i, text in enumerate(texts) if text.strip()), key=lambda i: len(texts[i]))
        for start in range(0, len(todo), options.max_batch):
            chunk = todo[start : start + options.max_batch]
            candidates = self._generate([" ".join(texts[i].split()) for i in chunk], src, tgt, options)
            for i, cands in zip(chunk, candidates):
                results[i] = cands
        return results

    def _generate(
        self, texts: list[str], src: Language, tgt: Language, options: TranslateOptions
    ) -> list[tuple[str, ...]]:
        import torch

        kwargs: dict[str, Any] = {}
        if self.family == "nllb":
            self.tokenizer.src_lang = src.nllb
            kwargs["forced_bos_token_id"] = self.tokenizer.convert_tokens_to_ids(tgt.nllb)
        batch = self.tokenizer(texts, return_tensors="pt", padding=True, truncation=True).to(self.device)
        n_return = min(options.n_best, options.num_beams)
        # A translation over twice its source (+16 tokens) is a decoding loop, not a translation.
        limit = getattr(self.model.config, "max_position_embeddings", 1024) - 1
        max_new = min(2 * batch["input_ids"].shape[1] + 16, limit)
        with torch.inference_mode():
            out = self.model.generate(
                **batch,
                num_beams=options.num_beams,
                num_return_sequences=n_return,
                do_sample=False,
                max_new_tokens=max_new,
                **kwargs,
            )
        decoded = self.tokenizer.batch_decode(out, skip_special_tokens=True)
        return [_unique(decoded[k * n_return : (k + 1) * n_return]) for k in range(len(texts))]

    def _check(self, source: str, target: str) -> tuple[Language, Language]:
        if self.pairs is None:
            return language(source, None, "source"), language(target, None, "target")
        src = language(source, tuple(sorted({s for s, _ in self.pairs})), "source")
        tgt = language(target, tuple(sorted(t for s, t in self.pairs if s == src.code)), "target")
        return src, tgt

    def _pairs(self, spec: ModelSpec) -> tuple[tuple[str, str], ...] | None:
        """Marian: the (source, target) pairs the model serves, as dubgraph codes; NLLB: None (all of LANGUAGES)."""
        if self.family == "nllb":
            return None
        pairs = spec.options.get("pairs") or ()
        if not pairs:
            raise BadInput(f"translator {spec.name!r}: a Marian model needs options['pairs'] = [(source, target)]")
        known = tuple(LANGUAGES)
        return tuple((language(s, known, "source").code, language(t, known, "target").code) for s, t in pairs)


def _load(family: str, location: str, device: str) -> tuple[Any, Any]:
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer, MarianMTModel

    model_cls = MarianMTModel if family == "marian" else AutoModelForSeq2SeqLM
    return model_cls.from_pretrained(location).to(device), AutoTokenizer.from_pretrained(location)


def _unique(candidates: list[str]) -> tuple[str, ...]:
    """Stripped, first occurrence kept (beams come best first), blanks dropped, never empty."""
    seen = tuple(dict.fromkeys(c.strip() for c in candidates if c.strip()))
    return seen or ("",)
