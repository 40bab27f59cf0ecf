"""Progress of a backfill: items and audio hours done, ETA, and throughput per stage, as log lines.

The lines go through ``logging`` (the CLI sends them to the console and to ``OUT/backfill.log``; under
``ray job submit`` the console is what ``ray job logs`` shows). Per-stage throughput is seconds of audio per
second spent in that stage (queueing included) summed over finished items: "asr 40x" means one item's ASR
call took 1/40 of the item's duration. The overall rate is audio done per wall-clock second of the run.
"""

from __future__ import annotations

import logging
import os
import time
from collections import defaultdict
from typing import Any

from graph.backfill.manifest import Item
from graph.run.pipeline import Event

log = logging.getLogger(__name__)

STAGE_ORDER = ("decode", "asr", "diarize", "voices", "translate", "synthesize", "render")


def _cpu_s() -> float:
    """CPU seconds of this process and its finished children (ffmpeg decodes): the driver's share of the work."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _hms(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class Progress:
    """Counts finished items against the planned ones; ``event`` is the pipeline's progress callback."""

    def __init__(self, total_items: int, total_audio_s: float, every_s: float = 30.0, clock=time.monotonic):
        self.total_items = total_items
        self.total_audio_s = total_audio_s
        self.every_s = every_s
        self.clock = clock
        self.started = clock()
        self.cpu_started = _cpu_s()
        self.last_logged = self.started
        self.succeeded = 0
        self.failed = 0
        self.audio_done_s = 0.0
        self.lines = 0
        self.stage_s: dict[str, float] = defaultdict(float)  # stage -> seconds spent, over finished items
        self.stage_audio_s: dict[str, float] = defaultdict(float)  # stage -> audio seconds it went through

    def start(self) -> None:
        """Start the clock (rates and ETA) when the work starts, not while the models load."""
        self.started = self.last_logged = self.clock()
        self.cpu_started = _cpu_s()

    def event(self, event: Event) -> None:
        if event.stage.startswith("synthesize:") and event.completed:
            self.lines += 1
        if self.clock() - self.last_logged >= self.every_s:
            self.report()

    def finished(self, item: Item) -> None:
        """Account one item that reached ``done`` or ``failed`` in this run."""
        duration_s = item.duration_s or 0.0
        if item.state == "done":
            self.succeeded += 1
            for name, seconds in item.stage_s.items():
                stage = name.split(":")[0]
                self.stage_s[stage] += seconds
                self.stage_audio_s[stage] += duration_s
        else:
            self.failed += 1
        self.audio_done_s += duration_s
        self.report()

    def snapshot(self) -> dict[str, Any]:
        """The numbers behind the log line (stored in the run manifest)."""
        elapsed_s = self.clock() - self.started
        rate = self.audio_done_s / elapsed_s if elapsed_s > 0 else 0.0
        remaining_s = max(0.0, self.total_audio_s - self.audio_done_s)
        return {
            "items_done": self.succeeded + self.failed,
            "items_total": self.total_items,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "audio_done_h": round(self.audio_done_s / 3600, 4),
            "audio_total_h": round(self.total_audio_s / 3600, 4),
            "elapsed_s": round(elapsed_s, 1),
            "driver_cpu_s": round(_cpu_s() - self.cpu_started, 1),
            "eta_s": round(remaining_s / rate, 1) if rate > 0 else None,
            "real_time_x": round(rate, 2),
            "lines_synthesized": self.lines,
            "lines_per_s": round(self.lines / elapsed_s, 2) if elapsed_s > 0 else 0.0,
            "stage_x_real_time": {
                stage: round(self.stage_audio_s[stage] / self.stage_s[stage], 2)
                for stage in sorted(self.stage_s, key=lambda s: STAGE_ORDER.index(s) if s in STAGE_ORDER else 99)
                if self.stage_s[stage] > 0
            },
        }

    def line(self) -> str:
        s = self.snapshot()
        eta = _hms(s["eta_s"]) if s["eta_s"] is not None else "?"
        stages = ", ".join(f"{name} {x:g}x" for name, x in s["stage_x_real_time"].items()) or "-"
        return (
            f"items {s['items_done']}/{s['items_total']} ({s['failed']} failed) | "
            f"audio {s['audio_done_h']:.3f}/{s['audio_total_h']:.3f} h | {s['real_time_x']:g}x real time | "
            f"ETA {eta} | {s['lines_synthesized']} lines ({s['lines_per_s']:g}/s) | per stage: {stages}"
        )

    def report(self) -> None:
        self.last_logged = self.clock()
        log.info("progress: %s", self.line())
