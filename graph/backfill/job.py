"""Bulk backfills: dub every file of an archive over shared actor pools, resumably.

    python -m graph.backfill --input DIR|LISTFILE|GLOB --to pt-br,es --out DIR [--profile full]
    ray job submit --working-dir . -- python -m graph.backfill ...      (on a running cluster)

One actor pool per model role (``graph.run.pools.start_stages``) is shared by up to ``--concurrency`` items dubbed
at once by ``graph.run.pipeline.dub`` in one event loop, so every pool has work while each item moves through its
own stages. Each item checkpoints its finished units under ``OUT/.checkpoints/<content hash>/``, so a killed
run redoes only unfinished lines, and a changed setting recomputes only the stages whose keys it changes.
``OUT/backfill.json`` (see ``graph.backfill.manifest``) records every item's state, reason and outputs. An input's
sidecar files (its transcript, translations and line edits: ``graph.backfill.manifest.Sidecars``) go with it;
each item keeps its line state in ``OUT/<item>/.dubgraph/``, so ``dubgraph edit`` and ``dubgraph render`` work on
it afterwards (unless its checkpoints were pruned).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import fcntl
import logging
import os
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from graph.backfill.manifest import Item, RunManifest, Sidecars, find_inputs, scan
from graph.backfill.progress import Progress
from graph.errors import BadInput, DubError
from graph.languages import parse_targets
from graph.media.library import default_dir
from graph.media.outputs import check_writable, remove_outputs
from graph.media.settings import read_mapping
from graph.options import DECODE_PRESETS, DubOptions, add_media_flags, from_dict, media_options, to_dict
from graph.run.checkpoint import Checkpoint
from graph.run.pipeline import Stages
from graph.run.pools import Replicas

if TYPE_CHECKING:
    from actors.models import Profile

log = logging.getLogger(__name__)

CHECKPOINTS = ".checkpoints"
LOCK_NAME = ".backfill.lock"
LOG_NAME = "backfill.log"
MAX_CONSECUTIVE_CRASHES = 5  # unexpected (non-DubError) failures in a row: the cluster is broken, stop


@dataclass(frozen=True)
class BackfillConfig:
    inputs: tuple[str, ...]  # DIRs, LISTFILEs, GLOBs or files
    out_dir: Path
    options: DubOptions
    address: str | None = None  # Ray cluster; None = embedded (or the job's cluster under `ray job submit`)
    replicas: Replicas = Replicas()
    concurrency: int = 4  # items dubbed at the same time
    limit: int | None = None  # dub at most this many items of the plan (a trial run)
    prune_checkpoints: bool = False  # delete an item's checkpoints once it is done (disk; no cheap re-settings)
    progress_every_s: float = 30.0
    library: Path | None = None  # the voice library (options.voices); None: graph.media.library.default_dir()


@dataclass(frozen=True)
class Summary:
    succeeded: int
    failed: int
    skipped: int  # already done under the same settings (or duplicates of another input)
    total: int
    audio_done_h: float
    elapsed_s: float
    manifest: str
    failures: dict[str, str] = field(default_factory=dict)  # input -> reason
    aborted: bool = False

    @property
    def exit_code(self) -> int:
        return 3 if self.aborted else 1 if self.failed else 0

    def text(self) -> str:
        lines = [
            f"backfill: {self.succeeded} succeeded, {self.failed} failed, {self.skipped} skipped "
            f"({self.total} inputs, {self.audio_done_h:.3f} h of audio dubbed in {self.elapsed_s:.0f} s)"
            + (" - ABORTED: the cluster kept failing, see the log" if self.aborted else ""),
            f"manifest: {self.manifest}",
        ]
        lines += [f"  failed: {path}: {reason}" for path, reason in self.failures.items()]
        return "\n".join(lines)


def run_backfill(config: BackfillConfig, stages: Stages | None = None) -> Summary:
    """Dub every input not already done under these settings; never raises for one item's failure.

    ``stages``: pools already started for this profile (kept running afterwards); None starts and stops them.
    """
    from actors.models import get_profile

    started = time.monotonic()
    profile = get_profile(config.options.profile)
    parse_targets(config.options.targets, profile.targets)
    out_dir = check_writable(config.out_dir)
    settings = {"options": to_dict(config.options), "models": {s.role: s.name for s in profile.models}}
    with _exclusive(out_dir):
        manifest = RunManifest.open(out_dir, settings)
        paths = find_inputs(list(config.inputs), exclude=out_dir)
        if not paths:
            raise BadInput(f"no input files found in {', '.join(config.inputs)}")
        items = scan(paths, manifest.previous, config.options.targets)
        manifest.items = {item.key: item for item in items}
        unreadable = [i for i in items if i.state == "failed"]
        already = {i.key for i in items if i.is_done(manifest.settings_key, out_dir)}
        todo = [i for i in items if i.state != "failed" and i.key not in already][: config.limit]
        skipped = len(already) + sum(len(i.duplicates) for i in items)
        todo_audio_s = sum(i.duration_s or 0.0 for i in todo)
        progress = Progress(len(todo) + len(unreadable), todo_audio_s, config.progress_every_s)
        log.info("backfill of %d inputs into %s: %d to dub (%.3f h), %d unreadable, %d skipped (settings %s)",
                 len(paths), out_dir, len(todo), progress.total_audio_s / 3600, len(unreadable), skipped,
                 manifest.settings_key)
        for item in unreadable:
            log.warning("[%s] %s failed: %s", item.key[:12], item.input, item.error)
            progress.finished(item)
        manifest.progress = progress.snapshot()
        manifest.save()
        aborted = bool(todo) and _dub_all(todo, config, profile, manifest, progress, stages)
        done_now = [i for i in todo if i.state == "done"]
        failed = [i for i in items if i.state == "failed"]
        summary = Summary(
            succeeded=len(done_now),
            failed=len(failed),
            skipped=skipped,
            total=len(paths),
            audio_done_h=round(sum(i.duration_s or 0.0 for i in done_now) / 3600, 4),
            elapsed_s=round(time.monotonic() - started, 1),
            manifest=str(manifest.path),
            failures={i.input: i.error for i in failed},
            aborted=aborted,
        )
        manifest.progress = progress.snapshot()
        manifest.summary = dataclasses.asdict(summary) | {"exit_code": summary.exit_code}
        manifest.save()
    log.info("finished: %s", summary.text().splitlines()[0])
    return summary


def _dub_all(todo: list[Item], config: BackfillConfig, profile: Profile, manifest: RunManifest,
             progress: Progress, stages: Stages | None) -> bool:
    """Dub ``todo`` with ``concurrency`` items in flight over the pools; True when it had to stop early."""
    from graph.run.local_ray import init_ray
    from graph.run.pools import check_batching, check_models, needed, start_stages, stop_stages, wait_ready

    if stages is None:
        check_batching(profile, config.replicas)
        replicas = needed(config.replicas, config.options)
        if not config.address:
            check_models(profile, replicas=replicas)
        init_ray(config.address)
        own = start_stages(profile, replicas, strict=not config.address)
        try:
            return _dub_all(todo, config, profile, manifest, progress, own)
        finally:
            stop_stages(own)
    wait_ready(stages)
    progress.start()
    return asyncio.run(_dub_items(todo, config, profile, stages, manifest, progress))


async def _dub_items(todo: list[Item], config: BackfillConfig, profile: Profile, stages: Stages,
                     manifest: RunManifest, progress: Progress) -> bool:
    """Workers take items in order; an item's failure is recorded and the worker moves on."""
    queue = iter(todo)
    crashes = 0

    async def worker() -> None:
        nonlocal crashes
        for item in queue:
            if crashes >= MAX_CONSECUTIVE_CRASHES:
                return
            crashed = await _dub_item(item, config, profile, stages, manifest, progress)
            crashes = crashes + 1 if crashed else 0

    async def ticker() -> None:
        while True:
            await asyncio.sleep(config.progress_every_s)
            progress.report()

    tick = asyncio.create_task(ticker())
    try:
        await asyncio.gather(*(worker() for _ in range(max(1, config.concurrency))))
    finally:
        tick.cancel()
    if crashes >= MAX_CONSECUTIVE_CRASHES:
        log.error("%d items in a row failed unexpectedly: stopping; fix the cluster and rerun to resume", crashes)
        return True
    return False


async def _dub_item(item: Item, config: BackfillConfig, profile: Profile, stages: Stages, manifest: RunManifest,
                    progress: Progress) -> bool:
    """Dub one item and record the outcome; True when it failed with an unexpected (non-DubError) exception."""
    from graph.run.editing import edit_lines, edits_from_file
    from graph.run.pipeline import dub
    from graph.run.pools import WORK_DIR, make_job
    from graph.run.rendering import render

    options = config.options
    name = f"{Path(item.input).stem}-{item.key[:8]}"
    out_dir = config.out_dir / name
    store = Checkpoint(config.out_dir / CHECKPOINTS / item.key)
    item.state, item.settings, item.error, item.out_dir = "running", manifest.settings_key, "", name
    item.attempts += 1
    item.started_at, item.finished_at = time.time(), None
    manifest.save()
    log.info("[%s] dubbing %s (%.1f s)", item.key[:12], item.input, item.duration_s or 0.0)
    crashed = False
    try:
        sidecars = Sidecars.of(Path(item.input), options.targets)
        job = await asyncio.to_thread(make_job, item.input, out_dir, options, profile, item.key[:12],
                                      sidecars.transcript, {k: str(v) for k, v in sidecars.translations.items()},
                                      out_dir / WORK_DIR, library=config.library or default_dir())
        result = await dub(job, stages, progress.event, store)
        if sidecars.edits is not None:
            await asyncio.to_thread(edit_lines, out_dir, await asyncio.to_thread(edits_from_file, sidecars.edits))
            await render(out_dir / WORK_DIR, out_dir, stages, progress.event)
    except Exception as exc:  # one item's failure, whatever it is, is recorded and the run goes on
        crashed = not isinstance(exc, DubError)
        item.state, item.error = "failed", f"{type(exc).__name__}: {exc}" if crashed else str(exc)
        item.outputs, item.manifest = {}, ""
        remove_outputs(out_dir, options.targets, options.formats)
        log.log(logging.ERROR if crashed else logging.WARNING, "[%s] %s failed: %s", item.key[:12], item.input,
                item.error, exc_info=crashed)
    else:
        item.state, item.duration_s, item.stage_s = "done", result.duration_s, result.stage_s
        item.outputs = {lang: {fmt: f"{name}/{file}" for fmt, file in out.files.items()}
                        for lang, out in result.outputs.items()}
        if result.videos:  # the video carrying every language
            item.outputs["dubbed"] = {fmt: f"{name}/{file}" for fmt, file in result.videos.items()}
        item.manifest, item.reused_units = f"{name}/{Path(result.manifest).name}", store.hits
        if config.prune_checkpoints and store.root is not None:
            shutil.rmtree(store.root, ignore_errors=True)
        log.info("[%s] done %s in %.1f s (%d checkpointed units reused)", item.key[:12], item.input,
                 time.time() - item.started_at, store.hits)
    item.finished_at = time.time()
    progress.finished(item)
    manifest.progress = progress.snapshot()
    manifest.save()
    return crashed


@contextlib.contextmanager
def _exclusive(out_dir: Path) -> Iterator[None]:
    """Refuse a second backfill into the same directory while one runs (the OS drops the lock if it dies)."""
    with open(out_dir / LOCK_NAME, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BadInput(f"another backfill is running into {out_dir}; wait for it or choose another --out") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m graph.backfill",
        description="Dub many recordings on a Ray cluster; rerun the same command to resume.",
    )
    p.add_argument("--input", action="append", required=True,
                   help="a directory (searched recursively), a list file (.txt/.lst, one path a line), a glob "
                        "or a file; repeat for more")
    p.add_argument("--to", required=True, help="target languages, comma-separated (e.g. pt-br,es)")
    p.add_argument("--out", required=True, help="output directory: one folder per input, backfill.json, backfill.log")
    p.add_argument("--profile", default="offline", help="model profile: offline (default) or full")
    p.add_argument("--options", help="JSON or YAML file of DubOptions fields (asr, diarize, tts, timing, ...)")
    p.add_argument("--speakers", type=int, help="exact number of speakers in every input")
    p.add_argument("--source-language", help="language spoken in the inputs (default: detected per input)")
    p.add_argument("--formats", help="outputs to write (default: wav,flac,srt,vtt,video; as `dubgraph dub --formats`)")
    p.add_argument("--seed", type=int, help="synthesis seed")
    add_media_flags(p)
    p.add_argument("--glossary", help="JSON or YAML glossary: terms (language -> {source: target}), keep (list), "
                                      "pronounce (language -> {word: respelling})")
    p.add_argument("--match-voices", action="store_true",
                   help="give each speaker the closest voice of the voice library, when close enough, so a person "
                        "keeps one voice across the whole backfill")
    p.add_argument("--match-threshold", type=float, help="cosine similarity a match needs (default: the embedding "
                                                         "model's own)")
    p.add_argument("--voices", help="voice library directory (default: $DUBGRAPH_VOICES, else "
                                    "~/.local/share/dubgraph/voices)")
    p.add_argument("--address", help="Ray cluster address ('auto' = the `dubgraph up` head with its warm actors, else "
                                     "a local `ray start --head`); default: the job's cluster under `ray job submit`, "
                                     "else an embedded one")
    p.add_argument("--concurrency", type=int, default=4, help="items dubbed at the same time (default 4)")
    for role, default in (("asr", 1), ("diarizer", 1), ("translator", 1), ("synth", 1)):
        p.add_argument(f"--{role}-replicas", type=int, default=default, help=f"{role} actors (default {default})")
    p.add_argument("--synth-threads", type=int, default=Replicas.synth_threads, help="concurrent calls per synthesizer")
    p.add_argument("--synth-batch", type=int, default=Replicas.synth_batch,
                   help="lines each synthesizer decodes together (full profile; default: 64 on a GPU, 1 = one by one "
                        "on a CPU)")
    p.add_argument("--decode", choices=DECODE_PRESETS, default="auto",
                   help="synthesizer decode: fast (bf16, static cache, CUDA graph), exact (fp32, chatterbox's loop), "
                        "auto = fast on a GPU (default)")
    p.add_argument("--synth-gpu", type=float, default=Replicas.synth_gpu,
                   help="GPU fraction per synthesizer actor (0.25 = 4 per GPU; ignored without GPUs)")
    p.add_argument("--limit", type=int, help="dub at most N items (a trial run)")
    p.add_argument("--prune-checkpoints", action="store_true",
                   help="delete an item's checkpoints once it is done (saves disk; a settings change then redoes it whole)")
    p.add_argument("--progress-every", type=float, default=30.0, help="seconds between progress lines (default 30)")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return p


def _options(args) -> DubOptions:
    """DubOptions from ``--options`` with the flags given on the command line on top."""
    from actors.models import get_profile

    data: dict = read_mapping(args.options, "--options") if args.options else {}
    profile = get_profile(args.profile)
    data["profile"] = profile.name
    data["targets"] = list(parse_targets(args.to, profile.targets))
    nested = {"diarize": {"num_speakers": args.speakers}, "asr": {"language": args.source_language},
              "tts": {"seed": args.seed}}
    for section, values in nested.items():
        given = {k: v for k, v in values.items() if v is not None}
        if given:
            data[section] = {**(data.get(section) or {}), **given}
    if args.formats:
        data["formats"] = [f.strip() for f in args.formats.split(",") if f.strip()]
    data.update(media_options(args, data))
    if args.glossary:
        data["glossary"] = read_mapping(args.glossary, "--glossary")
    if args.match_voices or args.match_threshold is not None:
        voices = dict(data.get("voices") or {})
        voices["match"] = voices.get("match", False) or args.match_voices
        if args.match_threshold is not None:
            voices["match_threshold"] = args.match_threshold
        data["voices"] = voices
    return from_dict(DubOptions, data)


def _configure_logging(out_dir: Path, verbose: bool) -> None:
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    with contextlib.suppress(OSError):
        out_dir.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(out_dir / LOG_NAME))
    for handler in handlers:
        handler.setFormatter(fmt)
    root = logging.getLogger()
    root.setLevel(logging.WARNING)
    for handler in handlers:
        root.addHandler(handler)
    for name in ("graph", "actors"):
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.INFO)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    out_dir = Path(args.out)
    _configure_logging(out_dir, args.verbose)
    try:
        config = BackfillConfig(
            inputs=tuple(args.input),
            out_dir=out_dir,
            options=_options(args),
            address=args.address or os.environ.get("RAY_ADDRESS"),
            replicas=Replicas(asr=args.asr_replicas, diarizer=args.diarizer_replicas,
                              translator=args.translator_replicas, synthesizer=args.synth_replicas,
                              synth_threads=args.synth_threads, synth_batch=args.synth_batch, synth_decode=args.decode,
                              synth_gpu=args.synth_gpu),
            concurrency=args.concurrency,
            limit=args.limit,
            prune_checkpoints=args.prune_checkpoints,
            progress_every_s=args.progress_every,
            library=Path(args.voices) if args.voices else None,
        )
        summary = run_backfill(config)
    except DubError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: rerun the same command to resume", file=sys.stderr)
        return 130
    print(summary.text())
    return summary.exit_code

