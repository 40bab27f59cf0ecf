"""Warm actor keys: a run reuses a warm actor only when it is the same model with the same settings."""

from __future__ import annotations

from dataclasses import replace

from actors.chatterbox.batcher import BatchingSynthesizer
from actors.espeak import EspeakSynthesizer
from actors.models import FULL, OFFLINE
from graph.run.warm import NAMESPACE, PREFIX, actor_key, actor_name

OPTIONS = {"num_cpus": 0, "max_concurrency": 2, "max_restarts": 3, "max_task_retries": 1, "scheduling_strategy": "SPREAD"}
CLASSES = (BatchingSynthesizer, EspeakSynthesizer)
ARGS = (1, 0.02, "auto")


def key(**change) -> str:
    given = {"role": "synthesizer", "profile": "offline", "spec": OFFLINE.model("synthesizer"), "classes": CLASSES,
             "args": ARGS, "options": OPTIONS, **change}
    return actor_key(given["role"], given["profile"], given["spec"], given["classes"], given["args"], given["options"])


def test_the_same_model_and_settings_give_the_same_key():
    assert key() == key()
    assert key(options=dict(reversed(OPTIONS.items()))) == key()  # the order options were written in is no setting
    assert len(key()) == 16 and key().isalnum()


def test_every_setting_that_shapes_an_actor_changes_its_key(monkeypatch):
    spec = OFFLINE.model("synthesizer")
    others = [
        key(role="translator"),
        key(profile="full"),
        key(spec=FULL.model("synthesizer")),  # another model
        key(spec=replace(spec, options={**spec.options, "x": 1})),  # the same model, other model settings
        key(classes=(EspeakSynthesizer,)),  # not wrapped in the batcher
        key(args=(8, 0.02, "auto")),  # batch size
        key(args=(1, 0.02, "exact")),  # decode preset
        key(args=(1, 0.5, "auto")),  # batch wait
        key(options={**OPTIONS, "max_concurrency": 4}),  # lines served at once
        key(options={**OPTIONS, "num_gpus": 0.25}),  # on a GPU
    ]
    assert len({key(), *others}) == len(others) + 1
    full = FULL.model("asr")  # the same spec found somewhere else (its location override) is another model
    base = key(role="asr", spec=full, classes=(), args=())
    monkeypatch.setenv(full.env_var, "/another/whisper")
    assert key(role="asr", spec=full, classes=(), args=()) != base


def test_names_carry_the_role_key_and_replica():
    assert actor_name("asr", "0123456789abcdef", 2) == f"{PREFIX}asr:0123456789abcdef:2"
    assert NAMESPACE == "dubgraph"
