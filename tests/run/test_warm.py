"""A run on a cluster with warm actors (graph.run.warm): it reuses those of the same model and settings, starts the
rest itself, stops only what it started, and its manifest's start-up timeline says which was which and when."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from actors.models import OFFLINE
from graph.options import DubOptions, from_dict
from graph.run import pools, warm
from graph.run.pools import Replicas, dub_file, start_stages, stop_stages, wait_ready
from tests.fixtures.make_dialogue import write_transcript

pytestmark = pytest.mark.slow  # warm actors started, reused and stopped

ROLES = ("translator", "synthesizer")  # what a job from a transcript naming every speaker needs


@pytest.fixture(scope="module")
def warm_run(ray_local, dialogue, tmp_path_factory):
    """Warm translator and synthesizer (one each), then a job asking for two synthesizers; the run's stages are
    caught as the run stops them."""
    tmp = tmp_path_factory.mktemp("warm")
    warm_stages = start_stages(OFFLINE, Replicas(), roles=ROLES, keep=True)
    caught = []
    try:
        wait_ready(warm_stages)
        options = from_dict(DubOptions, {"targets": ["pt-br"], "profile": "offline", "asr": {"language": "en"},
                                         "formats": ["wav"]})
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(pools, "stop_stages", lambda stages: (caught.append(stages), stop_stages(stages)))
            result = dub_file(dialogue.path, tmp / "out", options, OFFLINE, replicas=Replicas(synthesizer=2),
                              transcript=write_transcript(dialogue, tmp / "talk.srt", named=True))
        yield json.loads(Path(result.manifest).read_text()), warm_stages, caught[0]
    finally:
        for name in warm.stop_all():
            assert name.startswith(warm.PREFIX)
        assert warm.names() == []


def test_warm_actors_are_reused_and_only_what_the_run_started_is_stopped(warm_run):
    import ray
    from ray.exceptions import RayActorError

    manifest, warm_stages, run_stages = warm_run
    warm_handles = [h for role in ROLES for h in getattr(warm_stages, role).handles]
    assert sorted(name.split(":")[1] for name in warm.names()) == sorted(ROLES)
    assert run_stages.translator.handles == warm_stages.translator.handles  # the same actor, not a new one
    started = [h for h in run_stages.synthesizer.handles if h not in warm_stages.synthesizer.handles]
    assert len(run_stages.synthesizer.handles) == 2 and len(started) == 1  # one warm, one started for this run
    ray.get([h.__ray_ready__.remote() for h in warm_handles], timeout=60)  # still up after the run
    with pytest.raises(RayActorError):
        ray.get(started[0].__ray_ready__.remote(), timeout=60)  # stopped with the run
    actors = sorted((a["role"], a["warm"]) for a in manifest["startup"]["actors"])
    assert actors == [("synthesizer", False), ("synthesizer", True), ("translator", True)]


def test_the_start_up_timeline_is_in_the_manifest_in_order(warm_run):
    startup = warm_run[0]["startup"]
    events = {e["event"]: e for e in startup["events"]}
    assert events["ray"]["start_s"] <= events["ray"]["end_s"] <= events["actors requested"]["start_s"]
    for actor in startup["actors"]:
        assert actor["model_start_s"] <= actor["model_loaded_s"] <= actor["ready_s"]
        assert actor["process_start_s"] <= actor["model_start_s"] and actor["model_load_cpu_s"] >= 0
        if actor["warm"]:  # loaded before this run began (its origin is 0)
            assert actor["model_loaded_s"] < 0
        else:
            assert actor["model_start_s"] >= events["actors requested"]["start_s"]
    work = startup["work"]
    assert {"voices", "translate:pt-br", "synthesize:pt-br"} <= set(work)
    assert work["voices"]["first_s"] <= work["voices"]["done_s"] <= work["synthesize:pt-br"]["done_s"]
    assert startup["driver_cpu_s"] > 0
