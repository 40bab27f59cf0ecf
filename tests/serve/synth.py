"""Test synthesizers: espeak-ng (the offline profile's voice) that tests can count and steer.

``CountingSynthesizer`` goes through a control actor, which counts every line actually synthesized, can slow
lines down (so a test can act mid-job), fail the lines of chosen seeds (a line that always fails) and hold lines
at a gate (a quiet moment to restart at). ``LoggedSynthesizer`` does the counting and holding with files, for
tests that kill the whole Ray cluster.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import time
from pathlib import Path

import ray

from actors.espeak import EspeakSynthesizer

CONTROL_NAME = "dubgraph-test-synth-control"
NAMESPACE = "dubgraph-tests"


@ray.remote(num_cpus=0)
class SynthControl:
    def __init__(self):
        self.records: list[tuple[str, int, float]] = []  # (text, seed, pace) of every take synthesized
        self.delay_s = 0.0
        self.fail_seeds: set[int] = set()
        self.paused = False
        self.cutoff = 0  # tickets below it are refused once they reach the gate
        self.tickets = 0
        self.inside: dict[int, int] = {}  # pid -> lines being synthesized there (past the gate)

    def configure(self, delay_s: float = 0.0, fail_seeds=(), paused: bool = False) -> None:
        self.delay_s, self.fail_seeds, self.paused = delay_s, set(fail_seeds), paused

    def refuse_waiting(self) -> None:
        """Lines held at the gate now fail (their caller is gone), later ones wait for the gate as usual."""
        self.cutoff = self.tickets

    async def enter(self, seed: int, pid: int) -> bool:
        ticket = self.tickets
        self.tickets += 1
        while self.paused and ticket >= self.cutoff:
            await asyncio.sleep(0.02)
        if ticket < self.cutoff or seed in self.fail_seeds:
            return False
        self.inside[pid] = self.inside.get(pid, 0) + 1
        await asyncio.sleep(self.delay_s)
        return True

    def leave(self, text: str, seed: int, pid: int, synthesized: bool, pace: float = 1.0) -> None:
        self.inside[pid] -= 1
        if synthesized:
            self.records.append((text, seed, pace))

    def forget(self, pid: int) -> None:
        """A killed process never leaves: drop what it had in flight."""
        self.inside.pop(pid, None)

    def state(self) -> dict:
        return {"records": list(self.records), "inside": dict(self.inside)}


def control():
    """The control actor of this Ray session (created on first use)."""
    return SynthControl.options(name=CONTROL_NAME, namespace=NAMESPACE, get_if_exists=True).remote()


class CountingSynthesizer(EspeakSynthesizer):
    """EspeakSynthesizer whose every ``synthesize`` passes the control's gate and is counted."""

    def synthesize(self, text, language, conditionals, seed=0, exaggeration=0.5, cfg_weight=0.5, temperature=0.8,
                   pace=1.0):
        ctl = ray.get_actor(CONTROL_NAME, namespace=NAMESPACE)
        pid = os.getpid()
        if not ray.get(ctl.enter.remote(seed, pid)):
            raise RuntimeError(f"the test control refused the line with seed {seed}")
        done = False
        try:
            clip = super().synthesize(text, language, conditionals, seed, exaggeration, cfg_weight, temperature, pace)
            done = True
            return clip
        finally:
            ray.get(ctl.leave.remote(text, seed, pid, done, pace))


LOG_ENV = "DUBGRAPH_TEST_SYNTH_LOG"  # JSON lines: {"event": "enter"|"start"|"done", "seed", "text", "pace", "pid"}
GATE_ENV = "DUBGRAPH_TEST_SYNTH_GATE"  # while this file exists, it holds how many lines may start in all


class LoggedSynthesizer(EspeakSynthesizer):
    """EspeakSynthesizer that records every line in a file and lets only as many start as a gate file allows.

    Unlike the control actor, the record and the gate are files: they outlive a Ray cluster that is SIGKILLed.
    """

    def synthesize(self, text, language, conditionals, seed=0, exaggeration=0.5, cfg_weight=0.5, temperature=0.8,
                   pace=1.0):
        self._record("enter", text, seed, pace)  # the call reached a replica: in flight from here
        self._record("start", text, seed, pace, wait=True)
        clip = super().synthesize(text, language, conditionals, seed, exaggeration, cfg_weight, temperature, pace)
        self._record("done", text, seed, pace)
        return clip

    @staticmethod
    def _record(event: str, text: str, seed: int, pace: float, wait: bool = False) -> None:
        log, gate = Path(os.environ[LOG_ENV]), Path(os.environ[GATE_ENV])
        entry = json.dumps({"event": event, "seed": seed, "text": text, "pace": pace, "pid": os.getpid()}) + "\n"
        while True:
            with open(log, "a+") as f:
                fcntl.flock(f, fcntl.LOCK_EX)  # replicas in other processes count and append one at a time
                f.seek(0)
                started = sum(json.loads(line)["event"] == "start" for line in f if line.strip())
                allowed = int(gate.read_text()) if wait and gate.exists() else None
                if allowed is None or started < allowed:
                    f.write(entry)
                    return
            time.sleep(0.05)  # held at the gate, as a slow replica would be


def take(event: dict) -> tuple:
    """What one synthesizer call voiced: the line (seed, text) at a pace. The timeline asks for a line again at
    another pace when its first take missed its plan: that is a new take, not a line voiced again."""
    return event["seed"], event["text"], event["pace"]


def logged(log: Path) -> list[dict]:
    """What LoggedSynthesizer recorded."""
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()] if log.exists() else []
