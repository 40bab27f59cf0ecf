"""Shared helpers of the backfill tests: one settings object, run in-process, read what a run left on disk."""

from __future__ import annotations

import json
from pathlib import Path

from graph.backfill.job import BackfillConfig, Summary, run_backfill
from graph.options import DubOptions

ROOT = Path(__file__).resolve().parents[2]
# what `python -m graph.backfill --to pt-br --formats wav,srt` builds, so CLI and in-process runs share a settings key
OPTIONS = DubOptions(targets=("pt-br",), profile="offline", formats=("wav", "srt"))


def backfill(inputs, out: Path, stages, options: DubOptions = OPTIONS) -> Summary:
    """A backfill in this process over the package's ``offline_stages`` pools."""
    config = BackfillConfig(tuple(str(p) for p in inputs), out, options, concurrency=3, progress_every_s=5)
    return run_backfill(config, stages)


def run_manifest(out: Path) -> dict:
    return json.loads((out / "backfill.json").read_text())


def by_name(out: Path) -> dict[str, dict]:
    """Items of the run manifest by input file name."""
    return {Path(item["input"]).name: item for item in run_manifest(out)["items"].values()}


def output_mtimes(out: Path) -> dict[str, int]:
    """Every dubbed file (not the run manifest or checkpoints) -> mtime in ns."""
    return {
        str(p.relative_to(out)): p.stat().st_mtime_ns
        for p in out.glob("*/*")
        if p.is_file() and not p.name.startswith(".") and not p.parent.name.startswith(".")
    }


def checkpoint_mtimes(out: Path) -> dict[str, int]:
    return {str(p.relative_to(out)): p.stat().st_mtime_ns for p in out.glob(".checkpoints/*/*.npz")}
