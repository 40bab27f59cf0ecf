"""Pieces of actors.serving that need no running Serve: dead-replica retries and translation batch grouping."""

from __future__ import annotations

import asyncio
import logging

import pytest
from ray.exceptions import ActorDiedError

from actors.serving import Translator, _RetryDeadReplica, _Texts
from graph.errors import UnsupportedLanguage
from graph.options import TranslateOptions
from graph.run.stages import LocalStage


class DiesOnce:
    def __init__(self):
        self.calls = 0

    def _maybe_die(self, value):
        self.calls += 1
        if self.calls == 1:
            raise ActorDiedError()
        return value

    transcribe = synthesize = _maybe_die


def test_calls_on_a_dead_replica_are_retried_once_except_line_synthesis(caplog):
    with caplog.at_level(logging.WARNING):
        assert asyncio.run(_RetryDeadReplica(LocalStage(DiesOnce())).call("transcribe", "words")) == "words"
    assert "transcribe failed on a dead replica (ActorDiedError): retrying" in caplog.text
    lines = _RetryDeadReplica(LocalStage(DiesOnce()), frozenset({"prepare"}))
    with pytest.raises(ActorDiedError):  # graph.run.lines retries lines itself, per line
        asyncio.run(lines.call("synthesize", "line"))


class Upper:
    def __init__(self):
        self.batches = []

    def translate(self, texts, source, target, options):
        if target != "pt-br":
            raise UnsupportedLanguage(target, ("pt-br",))
        self.batches.append(list(texts))
        return [(text.upper(),) for text in texts]


def test_a_batch_makes_one_model_call_per_language_pair_and_keeps_errors_to_their_requests():
    translator = object.__new__(Translator.func_or_class)  # the class behind the deployment, without a replica
    translator.model = Upper()
    translator._model_lock = asyncio.Lock()
    options = TranslateOptions()
    items = [_Texts(("a", "b"), "en", "pt-br", options), _Texts(("c",), "en", "xx", options),
             _Texts(("d",), "en", "pt-br", options)]  # fmt: skip
    results = asyncio.run(translator._run_batch(items))
    assert results[0] == [("A",), ("B",)] and results[2] == [("D",)]
    assert isinstance(results[1], UnsupportedLanguage)
    assert translator.model.batches == [["a", "b", "d"]]
