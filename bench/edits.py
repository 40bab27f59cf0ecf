"""`python -m bench.edits`: what regenerating one edited line costs against the first pass, and what else changes.

A dialogue of ``--lines`` lines (the 2-speaker espeak script, cycled) is dubbed to pt-br once, its line state kept
(graph/edits.py); then one line in the middle gets a new target text and the job is rendered again
(graph/run/rendering.py). Both passes run in one process on the same in-process stages (models loaded before
either is timed, as in a running server), so the two wall times compare the work itself. The first pass includes
ASR, diarization, translation and voicing every line; the render voices the edited line alone.

Reported: both wall times and their ratio (goal: <= 5 %), the lines regenerated, and the samples of the new track
that differ from the last revision's outside the edited line's span, before and after (goal: 0, bit for bit).
``--profile tiny`` voices with the full profile's ChatterBox architecture at tiny random size (bench/scenarios.py)
instead of espeak-ng. Wall times depend on the machine's load: record them only from a quiet machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

NEW_TEXT = "Esta frase foi corrigida por uma pessoa."


def _profile(name: str):
    from actors.models import OFFLINE, Profile
    from bench.scenarios import cpu_profile, models_dir

    if name == "offline":
        return OFFLINE
    tiny = cpu_profile(models_dir()).model("synthesizer")
    models = tuple(OFFLINE.model(role) for role in ("asr", "diarizer", "translator")) + (tiny,)
    return Profile("edits-tiny", "offline analysis and translation, tiny ChatterBox", models,
                   sources=OFFLINE.sources, targets=OFFLINE.targets)


def run(lines: int, profile_name: str, work: Path) -> dict[str, Any]:
    from actors.models import load_object
    from graph.options import DiarizeOptions, DubOptions
    from graph.run.checkpoint import Checkpoint
    from graph.run.editing import edit_lines, lines_of
    from graph.run.pipeline import Stages, dub
    from graph.run.pools import WORK_DIR, make_job
    from graph.run.rendering import render
    from graph.run.stages import LocalStage
    from tests.fixtures.make_dialogue import TWO_SPEAKERS, build_dialogue

    script = tuple(TWO_SPEAKERS[i % len(TWO_SPEAKERS)] for i in range(lines))
    dialogue = build_dialogue(work / f"dialogue-{lines}.wav", script)
    profile = _profile(profile_name)

    def actor(role: str) -> Any:
        spec = profile.model(role)
        return load_object(spec.actor)(spec, profile.name)

    stages = Stages(LocalStage(actor("asr")), LocalStage(actor("diarizer")), LocalStage(actor("translator")),
                    LocalStage(actor("synthesizer"), parallelism=2))
    options = DubOptions(targets=("pt-br",), profile=profile.name, diarize=DiarizeOptions(num_speakers=2),
                         formats=("wav",))
    out = work / f"out-{profile_name}-{lines}"
    state = out / WORK_DIR
    job = make_job(dialogue.path, out, options, profile, state=state)
    started = time.perf_counter()
    asyncio.run(dub(job, stages, None, Checkpoint(state / "checkpoint")))
    first_s = time.perf_counter() - started

    listed = lines_of(out)["lines"]
    before_track, sr = sf.read(out / "pt-br.wav", dtype="float32")
    target = listed[len(listed) // 2]
    edit_lines(out, [{"id": target["id"], "text": NEW_TEXT}])
    started = time.perf_counter()
    rendered = asyncio.run(render(state, out, stages))
    render_s = time.perf_counter() - started

    after_track, _ = sf.read(out / "pt-br.wav", dtype="float32")
    new = next(line for line in lines_of(out)["lines"] if line["id"] == target["id"])
    lo = int(min(target["start_s"], new["start_s"]) * sr) - 1
    hi = int(max(target["end_s"], new["end_s"]) * sr) + 2
    outside = np.ones(len(after_track), bool)
    outside[max(lo, 0):hi] = False
    same_length = len(after_track) == len(before_track)
    differing = int(np.count_nonzero(after_track[outside] != before_track[outside])) if same_length else -1
    return {
        "profile": profile_name, "lines": len(listed), "duration_s": round(dialogue.duration_s, 1),
        "first_pass_s": round(first_s, 2), "render_s": round(render_s, 2),
        "ratio_pct": round(100 * render_s / first_s, 2), "regenerated": {k: list(v) for k, v in
                                                                       rendered.regenerated.items()},
        "edited_line": target["id"], "render_stage_s": rendered.stage_s,
        "samples_differing_outside_edit": differing, "samples_outside_edit": int(outside.sum()),
        "edited_span_changed": bool(not np.array_equal(after_track[~outside], before_track[~outside]))
        if same_length else True,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.edits", description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=60, help="lines in the dialogue (default 60)")
    parser.add_argument("--profile", choices=("offline", "tiny"), default="offline")
    parser.add_argument("--work", type=Path, help="where inputs and outputs go (default: a temp directory)")
    args = parser.parse_args(argv)
    os.environ.setdefault("TQDM_DISABLE", "1")
    work = args.work or Path(tempfile.mkdtemp(prefix="dubgraph-edits-"))
    work.mkdir(parents=True, exist_ok=True)
    print(json.dumps(run(args.lines, args.profile, work), indent=2))


if __name__ == "__main__":
    main()
