"""The start-up timeline's own bookkeeping: an actor class timed, warm told from cold, stages' first progress."""

from __future__ import annotations

import time

from graph.run.pipeline import Event
from graph.run.startup import Startup, timed


class Model:
    """A stand-in model class: its constructor's arguments reach it unchanged."""

    def __init__(self, name: str, size: int = 1):
        self.name, self.size = name, size


def test_a_timed_class_constructs_as_before_and_reports_its_start():
    model = timed(Model)("m", size=3)
    assert isinstance(model, Model) and (model.name, model.size) == ("m", 3)
    assert type(model).__name__ == "Model" and type(model).__doc__ == Model.__doc__
    report = model.startup()
    assert report["init_start"] <= report["init_end"] <= time.time() and report["init_cpu_s"] >= 0
    assert report["process_start"] is None or report["process_start"] <= report["init_start"]


def test_an_actor_loaded_before_the_run_is_warm_and_one_loaded_during_it_is_not():
    before = timed(Model)("warm").startup()
    startup = Startup()
    after = timed(Model)("cold").startup()
    startup.actor("asr", time.time(), before)
    startup.actor("synthesizer", time.time(), after)
    startup.actor("translator", time.time(), None, warm=True)  # an actor that cannot report: the caller knows
    warm = {a["role"]: a["warm"] for a in startup.to_json()["actors"]}
    assert warm == {"asr": True, "synthesizer": False, "translator": True}
    assert startup.to_json()["actors"][0]["model_loaded_s"] <= 0  # before the run's origin (to the ms)


def test_stage_progress_is_noted_and_passed_on():
    seen = []
    startup = Startup()
    note = startup.watch(seen.append)
    for done in (0, 1, 2):
        note(Event("voices", done, 2, "job"))
    times = startup.to_json()["work"]["voices"]
    assert times["first_s"] <= times["first_done_s"] <= times["done_s"] and len(seen) == 3
    with startup.span("ray", address="embedded"):
        pass
    assert startup.events[-1]["event"] == "ray" and startup.events[-1]["address"] == "embedded"
    assert "ray address=embedded" in startup.text()
