"""`python -m bench.startup`: the offline CLI cold and warm, with each run's start-up timeline.

Inputs: the 30 s example conversation (pyannote.audio's sample.wav, what `make demo` dubs) and a 60 s
four-speaker espeak-ng conversation (``four``, built here). Each is dubbed into pt-br by `dubgraph dub`, one process
per run as a user runs it:
- cold: no Ray running; the run starts an embedded Ray and its model actors (the first run after a boot also
  fills the OS file cache: ``--runs`` repeats each run and the table shows the last);
- `dubgraph up`: a Ray head with warm model actors (timed once);
- warm: `dubgraph dub --address auto` against that head (its actors reused);
- then `dubgraph down`;
- the HTTP app, the other warm path (unless ``--no-serve``): `serve run` of serve_config.yaml (on a free port, jobs
  in a temporary directory) timed until ``/readyz`` answers 200, then two jobs on the 30 s conversation one after
  the other (the first right after start-up, the second with everything the app keeps across jobs), each timed
  from its POST until its status is done.
Ray's files go to a private temporary directory (``RAY_TMPDIR``), so a head or cluster of someone else on the
machine is neither used nor disturbed. Per run: wall seconds of the whole command, and from its manifest's
start-up timeline (seconds from the command's process start): Ray connected, the last model actor ready, the
first stage's first progress, the CPU seconds of the driver and of the model actors (their own process CPU when
ready; warm actors count none for this run). Wall times depend on the machine's load: run on a quiet machine.
``--record`` appends the table to bench/RESULTS.md; ``--timelines`` prints every run's `-v` timeline.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.scenarios import SENTENCES, machine, pyannote_sample
from tests.fixtures.make_dialogue import VOICES, build_dialogue

RESULTS = Path(__file__).with_name("RESULTS.md")
ROOT = Path(__file__).resolve().parent.parent
SERVE_TIMEOUT_S = 900.0
JOB_POLL_S = 0.05  # a job's status is asked this often: its wall time is known to 50 ms
FOUR_VOICES = {**VOICES, "dana": ("en-us+f4", 55, 160)}
RAY_ENV = ("RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")


def four_speakers(directory: Path) -> Path:
    """~60 s: the bench script's first 17 sentences, four espeak-ng voices taking turns."""
    speakers = list(FOUR_VOICES)
    script = tuple((speakers[i % 4], text) for i, text in enumerate(SENTENCES[:17]))
    return build_dialogue(directory / "four.wav", script, FOUR_VOICES).path


class Cli:
    """`dubgraph` commands in a private Ray temp dir, timed."""

    def __init__(self, ray_tmp: Path):
        self.env = {k: v for k, v in os.environ.items() if k not in RAY_ENV} | {"RAY_TMPDIR": str(ray_tmp)}

    def __call__(self, *args: str | Path) -> tuple[float, subprocess.CompletedProcess]:
        t0 = time.perf_counter()
        run = subprocess.run([sys.executable, "-m", "graph.cli", *map(str, args)], cwd=ROOT, env=self.env,
                             capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if run.returncode != 0:
            raise SystemExit(f"`dubgraph {' '.join(map(str, args))}` failed:\n{run.stderr[-3000:]}")
        return wall, run


def dub(cli: Cli, input_path: Path, out: Path, *extra: str) -> dict:
    wall, run = cli("-v", "dub", input_path, "--to", "pt-br", "--out", out, "--formats", "wav", *extra)
    manifest = json.loads((out / "manifest.json").read_text())
    startup = manifest["startup"]
    stages = ", ".join(f"{stage} {seconds:.1f}" for stage, seconds in manifest["stage_s"].items())
    timeline = f"{run.stderr[run.stderr.find('start-up timeline'):].rstrip()}\n  stage seconds: {stages}"
    return {"wall_s": wall, "startup": startup, "timeline": timeline}


def row(name: str, how: str, result: dict) -> str:
    s = result["startup"]
    ray = next((e["end_s"] for e in s["events"] if e["event"] == "ray"), None)
    ready = max((a["ready_s"] for a in s["actors"]), default=None)
    first = min((w["first_s"] for w in s["work"].values()), default=None)
    actors_cpu = sum(a.get("cpu_s", 0.0) for a in s["actors"] if not a["warm"])
    warm = sum(a["warm"] for a in s["actors"])
    cell = (lambda v: "-" if v is None else f"{v:.1f}")
    return (f"| {name} | {how} | {result['wall_s']:.1f} | {cell(ray)} | {cell(ready)} | {cell(first)} | "
            f"{s['driver_cpu_s']:.1f} | {actors_cpu:.1f} | {warm}/{len(s['actors'])} |")


def serve(cli: Cli, work: Path, input_path: Path) -> tuple[list[str], list[tuple[str, str, str]]]:
    """Rows for `serve run` ready and two HTTP jobs (see the module docstring), and each job's stage seconds."""
    import httpx
    import yaml

    config = yaml.safe_load((ROOT / "serve_config.yaml").read_text())
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config["http_options"]["port"] = port
    config["applications"][0]["args"] |= {"job_dir": str(work / "jobs"), "input_roots": [str(input_path.parent)]}
    path = work / "serve.yaml"
    path.write_text(yaml.safe_dump(config))
    url = f"http://127.0.0.1:{port}"
    t0 = time.perf_counter()
    with open(work / "serve.log", "wb") as log:
        process = subprocess.Popen([str(Path(sys.executable).parent / "serve"), "run", str(path)], cwd=ROOT,
                                   env=cli.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        ready_s = _until(lambda: httpx.get(f"{url}/readyz", timeout=10).status_code == 200, process, work) - t0
        rows = [f"| conversation | `serve run` ready (HTTP app) | {ready_s:.1f} | | | | | | |"]
        timelines = []
        for job in ("first", "second"):
            t1 = time.perf_counter()
            posted = httpx.post(f"{url}/v1/dubs", json={"path": str(input_path), "targets": "pt-br"}, timeout=60)
            posted.raise_for_status()
            status_url = f"{url}/v1/dubs/{posted.json()['id']}"
            _until(lambda: httpx.get(status_url, timeout=10).json()["status"] in ("done", "failed"), process, work,
                   JOB_POLL_S)
            wall = time.perf_counter() - t1
            status = httpx.get(status_url, timeout=10).json()
            if status["status"] != "done":
                raise SystemExit(f"the HTTP job failed: {status}")
            rows.append(f"| conversation | warm HTTP job ({job}) | {wall:.1f} | | | | | | |")
            stage_s = httpx.get(url + status["links"]["manifest"], timeout=10).json()["stage_s"]
            timelines.append(("conversation", f"warm HTTP job ({job})",
                              "stage seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in stage_s.items())))
        return rows, timelines
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)  # `serve run` shuts Serve and its Ray down on Ctrl-C
        try:
            process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def _until(check, process: subprocess.Popen, work: Path, every_s: float = 0.25) -> float:
    """Poll ``check`` every ``every_s`` until it is true; when, in perf_counter seconds."""
    import httpx

    deadline = time.perf_counter() + SERVE_TIMEOUT_S
    while time.perf_counter() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"`serve run` exited: see {work / 'serve.log'}")
        try:
            if check():
                return time.perf_counter()
        except httpx.HTTPError:
            pass
        time.sleep(every_s)
    raise SystemExit(f"`serve run` not ready or the job not done after {SERVE_TIMEOUT_S:.0f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.startup", description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", default="conversation,four", help="conversation (30 s), four (60 s), or both")
    parser.add_argument("--runs", type=int, default=1, help="runs of each kind; the table shows the last")
    parser.add_argument("--record", action="store_true", help="append the table to bench/RESULTS.md")
    parser.add_argument("--timelines", action="store_true", help="print each run's start-up timeline")
    parser.add_argument("--no-serve", action="store_true", help="leave the HTTP app's rows out")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="dgb", dir="/tmp"))  # short: Ray's socket paths have a length limit
    cli = Cli(work / "r")
    inputs = {"conversation": pyannote_sample, "four": lambda: four_speakers(work)}
    chosen = [name.strip() for name in args.inputs.split(",") if name.strip()]
    info = machine()
    rows = ["| input | run | wall s | Ray connected s | last actor ready s | first work s | driver CPU s | "
            "actors CPU s | warm actors |", "|---|---|---|---|---|---|---|---|---|"]
    timelines = []
    finished = False
    try:
        paths = {name: inputs[name]() for name in chosen}
        cli("down")
        for name, path in paths.items():
            for i in range(args.runs):
                cold = dub(cli, path, work / f"{name}-cold-{i}")
            rows.append(row(name, "cold", cold))
            timelines.append((name, "cold", cold["timeline"]))
        up_s, _ = cli("up")
        for name, path in paths.items():
            for i in range(args.runs):
                warm = dub(cli, path, work / f"{name}-warm-{i}", "--address", "auto")
            rows.append(row(name, "warm", warm))
            timelines.append((name, "warm", warm["timeline"]))
        cli("down")
        if not args.no_serve:
            serve_rows, serve_timelines = serve(cli, work, pyannote_sample())
            rows += serve_rows
            timelines += serve_timelines
        finished = True
    finally:
        cli("down")
        if finished:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept for a look: {work} (Ray's logs in r/ray, the head's in r/ray/dubgraph-*)", file=sys.stderr)
    table = "\n".join(rows + ["", f"`dubgraph up` (head and the offline actors, warm): {up_s:.1f} s wall."])
    print(table)
    if args.timelines:
        for name, how, timeline in timelines:
            print(f"\n{name}, {how}: {timeline}")
    if args.record:
        with RESULTS.open("a") as out:
            out.write(f"\n## Start-up, cold and warm CLI, {info['date']}\n\n- Machine: {info['cpu']}, {info['cores']} "
                      f"cores, {info['ram']} RAM; load average {info['load']} at the start. Commit: {info['commit']}. "
                      f"Command: `python -m bench.startup --runs {args.runs}`.\n\n{table}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
