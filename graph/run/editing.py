"""Editing the lines of a dub in its output directory and rendering it again: the CLI's and Python's way.

A dub made by ``dub_file`` (``dubgraph dub``) keeps its line state and checkpoint in ``OUT_DIR/.dubgraph/``
(graph/run/pools.py ``WORK_DIR``). ``edit_lines`` applies edits (the HTTP PATCH bodies, each with its line's
``id``) all or none; ``render_dir`` starts only the model actors the stale lines need, on an embedded or
existing Ray cluster, and regenerates them (graph/run/rendering.py).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from graph.edits import Edit, LineState, StateFile
from graph.errors import BadInput
from graph.options import DubOptions, from_dict
from graph.run.pipeline import ProgressFn, Stages
from graph.run.pools import ROLES, WORK_DIR, Replicas, check_models, start_stages, stop_stages, wait_ready
from graph.run.rendering import Rendered, needed_roles, render
from graph.run.stages import Unstarted


def state_file(out_dir: str | Path) -> StateFile:
    return StateFile(Path(out_dir) / WORK_DIR)


def lines_of(out_dir: str | Path, lang: str | None = None) -> dict[str, Any]:
    """The lines of one language (the first target by default), as ``GET /v1/dubs/{id}/lines`` lists them."""
    state = state_file(out_dir).load()
    return state.view(lang, state.job["job_id"])


def edit_lines(out_dir: str | Path, edits: Sequence[dict[str, Any]]) -> list[LineState]:
    """Apply ``edits`` (PATCH bodies, each with the ``id`` of its line and optionally ``if_match``: the line
    revision it was made from) all or none; the lines as edited. They are heard after ``render_dir``."""
    parsed = []
    for index, edit in enumerate(edits, start=1):
        if not isinstance(edit, dict) or not isinstance(edit.get("id"), str):
            raise BadInput(f"edit {index}: expected an object with the line's \"id\" and the fields to change")
        body = {k: v for k, v in edit.items() if k not in ("id", "if_match")}
        if_match = edit.get("if_match")
        if if_match is not None and (isinstance(if_match, bool) or not isinstance(if_match, int)):
            raise BadInput(f"edit {index}: if_match must be a line revision (a whole number)")
        parsed.append(Edit(edit["id"], body, if_match))
    if not parsed:
        raise BadInput("no edits given")
    return state_file(out_dir).edit(parsed)[1]


def edits_from_file(path: str | Path) -> list[dict[str, Any]]:
    """A JSON file holding a list of edits (or one edit)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise BadInput(f"cannot read the edits file {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise BadInput(f"the edits file {path} is not valid JSON: {exc}") from None
    return data if isinstance(data, list) else [data]


def render_dir(out_dir: str | Path, profile, address: str | None = None, progress: ProgressFn | None = None,
               replicas: Replicas = Replicas()) -> Rendered:
    """Regenerate what the edits of the dub in ``out_dir`` made stale and write its files again. Only the roles the
    stale lines need are started (none when nothing is voiced again); a background's separation is read from the
    checkpoint, never run again."""
    from graph.run.local_ray import init_ray

    file = state_file(out_dir)
    options = from_dict(DubOptions, file.load().job["options"])
    if options.profile != profile.name:
        raise BadInput(f"{out_dir} was dubbed with the {options.profile} profile; render it with that profile")
    roles = needed_roles(file.directory)
    if not roles:
        stages = Stages(*(Unstarted(role) for role in ROLES), separator=Unstarted("separator"))
        return asyncio.run(render(file.directory, out_dir, stages, progress))
    replicas = replace(replicas, separator=0)
    if not address:
        check_models(profile, roles, replicas)
    init_ray(address)
    stages = start_stages(profile, replicas, strict=not address, roles=roles)
    stages.separator = Unstarted("separator")
    try:
        wait_ready(stages)
        return asyncio.run(render(file.directory, out_dir, stages, progress))
    finally:
        stop_stages(stages)
