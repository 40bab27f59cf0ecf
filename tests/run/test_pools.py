"""Actor pools: GPU requests against the cluster, waiting for actors with a limit, roles a job needs, the batch size
chosen on a GPU, and calls to an actor whose process was lost."""

from __future__ import annotations

import asyncio
import os

import pytest

from actors.models import FULL, OFFLINE
from graph.errors import BadInput, DubError
from graph.run.pools import GPU_BATCH_LINES, ROLES, Replicas, check_resources, needed_roles, wait_ready
from graph.run.stages import ActorPool, Unstarted


def test_gpu_requests_over_the_cluster_are_refused_before_any_actor_starts():
    """The bench's old ask on a 1-GPU node: synthesizers 1.0 in total plus ASR 0.25, diarizer and translator 0.125."""
    replicas = Replicas(synthesizer=4, synth_gpu=0.25)
    with pytest.raises(BadInput, match=r"ask for 1.5 GPUs \(asr 1 x 0.25, diarizer 1 x 0.125, translator 1 x 0.125, "
                                       r"synthesizer 4 x 0.25\) but the cluster has 1: lower the synthesizer"):
        check_resources(replicas, {"GPU": 1.0, "CPU": 16})
    check_resources(Replicas(synthesizer=2), {"GPU": 1.0})  # 1.0 fits
    check_resources(replicas, {"GPU": 2.0})
    check_resources(replicas, {"CPU": 2})  # no GPU: nothing asks for one
    three = Replicas(synthesizer=3)  # 0.75 + 0.5 = 1.25 for every role; 0.875 without ASR and diarizer
    with pytest.raises(BadInput, match="ask for 1.25 GPUs"):
        check_resources(three, {"GPU": 1.0})
    check_resources(three, {"GPU": 1.0}, roles=("translator", "synthesizer"))  # a job from a named transcript


def test_an_autoscaling_cluster_only_warns(caplog):
    check_resources(Replicas(synthesizer=8), {"GPU": 1.0}, strict=False)
    assert "waiting for the autoscaler" in caplog.text


def test_bad_fractions_and_counts_are_clear_errors():
    with pytest.raises(BadInput, match="GPU fractions 0..1; got synthesizer GPU fraction 1.5"):
        Replicas(synth_gpu=1.5)
    with pytest.raises(BadInput, match="synthesizer batch 0"):
        Replicas(synth_batch=0)


def test_batch_size_left_open_is_64_on_a_gpu_for_a_synthesizer_that_batches():
    assert Replicas().for_cluster(FULL, has_gpu=True).synth_batch == GPU_BATCH_LINES
    assert Replicas().for_cluster(FULL, has_gpu=False).synth_batch == 1
    assert Replicas().for_cluster(OFFLINE, has_gpu=True).synth_batch == 1  # espeak voices one line at a time
    assert Replicas(synth_batch=8).for_cluster(FULL, has_gpu=True).synth_batch == 8


def test_roles_a_job_needs(tmp_path):
    named = tmp_path / "named.srt"
    named.write_text("1\n00:00:01,000 --> 00:00:02,000\n[Ann] Hi.\n")
    unnamed = tmp_path / "unnamed.vtt"
    unnamed.write_text("WEBVTT\n\n00:01.000 --> 00:02.000\nHi.\n")
    assert needed_roles(None) == ROLES
    assert needed_roles(named) == ("translator", "synthesizer")
    assert needed_roles(unnamed) == ("diarizer", "translator", "synthesizer")


class Idle:
    def __init__(self, *args):
        pass


def test_an_actor_that_cannot_be_placed_fails_the_wait_with_what_is_missing(ray_local):
    """An actor asking for a resource no node has stays pending: the wait reports it and gives up at its limit."""
    import ray

    stuck = ray.remote(Idle).options(resources={"no_such_accelerator": 1}).remote()
    placed = ray.remote(Idle).remote()
    ray.get(placed.__ray_ready__.remote(), timeout=120)  # up before the 2 s wait starts, however busy the machine
    stages = type("S", (), {"asr": Unstarted("asr"), "diarizer": Unstarted("diarizer"),
                            "translator": ActorPool([placed]), "synthesizer": ActorPool([stuck]),
                            "separator": None})
    try:
        with pytest.raises(DubError, match=r"model actors not up after 2 s \(synthesizer\); the cluster has .* free"):
            wait_ready(stages, timeout_s=2, report_s=0.5)
    finally:
        ray.kill(stuck)


class LostOnce:
    """Its first process exits in the middle of ``work`` (as when its node is lost); the restarted one answers."""

    def __init__(self, marker: str):
        self.first = not os.path.exists(marker)
        open(marker, "a").close()

    def pid(self) -> int:
        return os.getpid()

    def work(self) -> int:
        if self.first:
            os._exit(1)
        return os.getpid()


def test_a_call_to_a_restarting_actor_waits_for_it_and_one_that_will_not_restart_fails(ray_local, tmp_path):
    """Ray refuses calls while an actor restarts (ActorUnavailableError): the pool calls again until it is back.
    With no restarts left the actor is dead: the call fails at once, nothing to wait for."""
    import ray
    from ray.exceptions import ActorDiedError

    remote = ray.remote(LostOnce)
    restarting = remote.options(num_cpus=0, max_restarts=1, max_task_retries=0).remote(str(tmp_path / "restarting"))
    first = ray.get(restarting.pid.remote())
    pool = ActorPool([restarting])
    again = asyncio.run(asyncio.wait_for(pool.call("work"), 120))
    assert again != first and again == ray.get(restarting.pid.remote())

    dying = remote.options(num_cpus=0, max_restarts=0).remote(str(tmp_path / "dying"))
    with pytest.raises(ActorDiedError):
        asyncio.run(asyncio.wait_for(ActorPool([dying]).call("work"), 120))
