"""What the benchmark runs on: its inputs (espeak-ng conversations, pyannote's sample), its models, its meters.

Models on CPU: the offline profile's real ASR (faster-whisper tiny.en) and diarizer (Silero VAD + Resemblyzer),
the tiny random Marian (en -> pt-br/es/fr) and the tiny random ChatterBox with forced lengths (bench.forced);
the same specs serve the graph's actors and the baseline's in-process instances.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import platform
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from actors.models import OFFLINE, ModelSpec, Profile
from tests.fixtures import tiny_chatterbox, tiny_marian
from tests.fixtures.make_dialogue import VOICES, build_dialogue

TARGETS = ("pt-br", "es", "fr")  # what the tiny Marian serves
SPEAKERS = tuple(VOICES)  # alex (en-us+m3), beth (en-us+f2), colin (en-gb-x-rp+m7)

SENTENCES = (
    "Good morning, did you finish reading the report last night?",
    "I did, and the numbers for March look much better.",
    "That is great news for the whole team.",
    "We still need to check the costs for the new office.",
    "Can you send me the spreadsheet before lunch today?",
    "Sure, I will email it to you in ten minutes.",
    "The projector in room four is broken again.",
    "I asked the technician to repair it on Monday.",
    "Our team finished testing the mobile app yesterday.",
    "When will it be ready for our customers?",
    "We plan to release it at the end of next week.",
    "Please remember to book the train tickets early.",
    "The client wants a shorter video for the launch.",
    "Let us move the review meeting to Thursday morning.",
    "I found two mistakes in the budget table.",
    "Thank you, I will fix them before the deadline.",
    "The new designer starts working with us in May.",
    "Could you show her how the build system works?",
    "Of course, we can start with the audio tools.",
    "Great, then we are done for today, see you tomorrow.",
)


@dataclass(frozen=True)
class Scenario:
    name: str
    speakers: int
    lines: int  # lines in the script (what ASR hears may split or join a few)
    targets: tuple[str, ...]
    input: Callable[[], Path] | None = None  # where the given input is (found when used); None: espeak-ng SENTENCES

    def script(self) -> tuple[tuple[str, str], ...]:
        if self.lines > len(SENTENCES) or self.speakers > len(SPEAKERS):
            raise ValueError(f"{self.name}: at most {len(SENTENCES)} lines and {len(SPEAKERS)} speakers")
        return tuple((SPEAKERS[i % self.speakers], SENTENCES[i]) for i in range(self.lines))


def pyannote_sample() -> Path:
    return Path(importlib.util.find_spec("pyannote.audio").origin).parent / "sample" / "sample.wav"


CPU_SCENARIOS = (
    Scenario("1x5x1", 1, 5, TARGETS[:1]),
    Scenario("2x10x1", 2, 10, TARGETS[:1]),
    Scenario("3x20x1", 3, 20, TARGETS[:1]),
    Scenario("3x20x3", 3, 20, TARGETS),
    Scenario("sample.wav", 2, 0, TARGETS[:1], pyannote_sample),
)


def build_input(scenario: Scenario, directory: Path) -> Path:
    """The scenario's input WAV (espeak-ng conversation written into ``directory``, or the given file)."""
    if scenario.input is not None:
        return scenario.input()
    return build_dialogue(directory / f"{scenario.name}.wav", scenario.script()).path


def synthesizer_spec(directory: Path, loader: str, name: str) -> ModelSpec:
    return ModelSpec(
        role="synthesizer", name=name, actor="bench.forced:ForcedSynthesizer", kind="path", source=str(directory),
        env_var=None, fix="built by bench (bench/scenarios.py)", loader=loader,
    )


def models_dir() -> Path:
    """Where the tiny models are kept between runs, keyed by their builders' source (a changed fixture rebuilds)."""
    digest = hashlib.sha256(b"".join(Path(m.__file__).read_bytes() for m in (tiny_chatterbox, tiny_marian)))
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "dubgraph-bench" / digest.hexdigest()[:12]


def cpu_profile(directory: Path) -> Profile:
    """Tiny ChatterBox + tiny Marian (built into ``directory`` unless there); the offline ASR and diarizer."""
    tts, marian = directory / "tiny_chatterbox", directory / "tiny_marian"
    if not (directory / "complete").exists():
        tiny_chatterbox.build(tts)
        tiny_marian.build(marian)
        (directory / "complete").touch()
    return Profile(
        name="bench-cpu",
        description="offline ASR + diarizer, tiny random Marian and ChatterBox (forced lengths)",
        models=(
            OFFLINE.model("asr"),
            OFFLINE.model("diarizer"),
            tiny_marian.spec_for(marian),
            synthesizer_spec(tts, "tests.fixtures.tiny_chatterbox:load", "tiny random ChatterBox (forced lengths)"),
        ),
        sources=("en",),
        targets=TARGETS,
    )


class PeakRss:
    """Peaks of the summed memory of a set of processes, sampled in a thread while the block runs.

    Read from Linux's /proc (psutil is not among the locked dependencies). RSS (what was asked for) counts pages
    shared between processes (torch's libraries, copy-on-write) once per process; PSS (``smaps_rollup``) splits
    them among their sharers, so its sum is the real footprint.
    """

    def __init__(self, pids: Callable[[], Iterable[int]], interval_s: float = 0.25):
        self.pids = pids
        self.interval_s = interval_s
        self.peak_rss_bytes = 0
        self.peak_pss_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> None:
        rss = pss = 0
        for pid in self.pids():
            try:
                rss += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
                pss += _pss(pid)
            except (OSError, IndexError, ValueError):  # the process ended meanwhile
                pass
        self.peak_rss_bytes = max(self.peak_rss_bytes, rss)
        self.peak_pss_bytes = max(self.peak_pss_bytes, pss)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def __enter__(self) -> "PeakRss":
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    @property
    def peak_mb(self) -> float:
        return self.peak_rss_bytes / 2**20

    @property
    def peak_pss_mb(self) -> float:
        return self.peak_pss_bytes / 2**20


PAGE = os.sysconf("SC_PAGE_SIZE")


def _pss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) * 1024
    return 0


def tree(root: int, exclude: Iterable[int] = ()) -> list[int]:
    """``root`` and its descendants (from /proc), minus the subtrees of the pids in ``exclude``."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()  # the name may hold spaces and parentheses
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    skipped, found, todo = set(exclude), [], [root]
    while todo:
        pid = todo.pop()
        if pid not in skipped:
            found.append(pid)
            todo += children.get(pid, [])
    return found


def machine() -> dict[str, str]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "ram": f"{PAGE * os.sysconf('SC_PHYS_PAGES') / 2**30:.1f} GiB",
        "load": load,
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "commit": _commit(),
    }


def _commit() -> str:
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                              check=True).stdout.strip()
        status = ["git", "--no-optional-locks", "status", "--porcelain"]
        dirty = subprocess.run(status, cwd=root, capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" + uncommitted changes" if dirty.strip() else "")
