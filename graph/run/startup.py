"""The start-up timeline of a run: where a cold run's wall time goes before and around the job's own work.

On a small machine a cold run is mostly start-up: Ray's own processes, then one process per model actor that
imports its library and loads its model, all competing for a few cores. ``Startup`` records, in seconds from the
run's origin (the command's process start for the CLI): Ray's start, each actor's process start, the moment its
constructor began (Ray worker up, actor module imported) and ended (model loaded), when the driver saw it ready,
the CPU seconds it had used by then, whether it was a warm actor started before this run, and when each stage of
the job first and last reported progress. It goes into the manifest (``startup``) and the CLI's ``-v`` output.

Actor-side times come from ``timed(cls)``: the actor class with a constructor that notes its times and a
``startup()`` method returning them (one extra call per actor, after it is ready). Clocks are the machines'
wall clocks (``time.time``), so times from another node are as good as its clock.
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from typing import Any

ROUND = 3


def process_started(pid: int | str = "self") -> float | None:
    """When a process started, in epoch seconds (Linux /proc); None where that cannot be read."""
    try:
        ticks = int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[19])
        boot = next(float(line.split()[1]) for line in open("/proc/stat") if line.startswith("btime "))
    except (OSError, ValueError, IndexError, StopIteration):
        return None
    return boot + ticks / os.sysconf("SC_CLK_TCK")


def timed(cls: type) -> type:
    """``cls`` with its construction timed: ``startup()`` on an instance says when its process started, when the
    constructor began and ended, and the process's CPU seconds then (see ``Startup.actor``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        began, cpu = time.time(), time.process_time()
        cls.__init__(self, *args, **kwargs)
        self._startup = {"pid": os.getpid(), "process_start": process_started(), "init_start": began,
                         "init_end": time.time(), "init_cpu_s": time.process_time() - cpu,
                         "cpu_s": time.process_time()}

    def startup(self) -> dict[str, Any]:
        return dict(self._startup)

    return type(cls.__name__, (cls,), {"__init__": __init__, "startup": startup, "__module__": cls.__module__,
                                       "__qualname__": cls.__qualname__, "__doc__": cls.__doc__})


class Startup:
    """Events of one run's start, in seconds from ``origin`` (epoch seconds; default: now)."""

    def __init__(self, origin: float | None = None):
        self.origin = time.time() if origin is None else origin
        self.events: list[dict[str, Any]] = []
        self.actors: list[dict[str, Any]] = []
        self.work: dict[str, dict[str, float]] = {}

    def at(self, epoch_s: float | None) -> float | None:
        return None if epoch_s is None else round(epoch_s - self.origin, ROUND)

    def mark(self, event: str, **info: Any) -> None:
        self.events.append({"event": event, "at_s": self.at(time.time()), **info})

    @contextmanager
    def span(self, event: str, **info: Any):
        """Time a block as one event (start and end); ``info`` may be updated inside the block."""
        start = time.time()
        try:
            yield info
        finally:
            self.events.append({"event": event, "start_s": self.at(start), "end_s": self.at(time.time()), **info})

    def actor(self, role: str, ready_at: float, report: dict[str, Any] | None = None, warm: bool = False) -> None:
        """One model actor: when the driver saw it ready, and what it says of its own start (``timed``); it is
        warm when its model was loaded before this run began (``warm`` says so for an actor that cannot tell)."""
        entry: dict[str, Any] = {"role": role, "warm": warm, "ready_s": self.at(ready_at)}
        if report:
            entry.update(warm=report["init_end"] < self.origin, pid=report["pid"],
                         process_start_s=self.at(report["process_start"]), model_start_s=self.at(report["init_start"]),
                         model_loaded_s=self.at(report["init_end"]), model_load_cpu_s=round(report["init_cpu_s"], ROUND),
                         cpu_s=round(report["cpu_s"], ROUND))
        self.actors.append(entry)

    def watch(self, progress=None):
        """A progress callback noting when each stage first and last reported (then calling ``progress``)."""

        def note(event) -> None:
            now = self.at(time.time())
            times = self.work.setdefault(event.stage, {"first_s": now})
            if event.completed and "first_done_s" not in times:
                times["first_done_s"] = now
            if event.completed >= event.total:
                times["done_s"] = now
            if progress is not None:
                progress(event)

        return note

    def to_json(self) -> dict[str, Any]:
        return {"origin": round(self.origin, ROUND), "events": list(self.events), "actors": list(self.actors),
                "work": {stage: dict(times) for stage, times in self.work.items()},
                "driver_cpu_s": round(time.process_time(), ROUND)}

    def text(self) -> str:
        """The timeline for the CLI's verbose output."""
        return "\n  ".join(["start-up timeline (seconds from the command's start):", *self.lines()])

    def lines(self) -> list[str]:
        """The timeline, one event per line."""
        rows = []
        for e in self.events:
            info = " ".join(f"{k}={v}" for k, v in e.items() if k not in ("event", "at_s", "start_s", "end_s"))
            when = f"{e['at_s']:7.2f}" if "at_s" in e else f"{e['start_s']:7.2f} -> {e['end_s']:.2f}"
            rows.append(f"{when}  {e['event']} {info}".rstrip())
        for a in self.actors:
            if a["warm"]:
                rows.append(f"{a['ready_s']:7.2f}  {a['role']} actor: warm (model loaded at {a.get('model_loaded_s')}, "
                            "before this run)")
            elif "model_loaded_s" in a:
                rows.append(f"{a['ready_s']:7.2f}  {a['role']} actor ready: process {a['process_start_s']}, model "
                            f"{a['model_start_s']} -> {a['model_loaded_s']} ({a['model_load_cpu_s']} s CPU; "
                            f"{a['cpu_s']} s CPU in all)")
            else:
                rows.append(f"{a['ready_s']:7.2f}  {a['role']} actor ready")
        for stage, times in self.work.items():
            done = f" -> {times['done_s']:.2f}" if "done_s" in times else ""
            rows.append(f"{times['first_s']:7.2f}  {stage}{done}")
        rows.append(f"driver CPU {time.process_time():.2f} s")
        return rows
