"""Warm model actors: named, detached actors that `dubgraph up` leaves running for later runs to reuse.

A warm actor is reused only when it is the same model with the same settings, so each is named by a key over
everything that shapes it: the role, the profile, the whole ``ModelSpec`` (actor class, model source, loader,
options) and the value of its location override (``env_var``) in this process, the constructor's extra arguments (a synthesizer's batch size, batch wait and decode preset), the actor
options (lines it serves at once, GPU fraction), the wrapper class (``BatchingSynthesizer``), and the version of
dubgraph plus a hash of the source of the modules that define the classes (an edited actor module is a new key).
Names are ``dubgraph:<role>:<key>:<replica>`` in the ``dubgraph`` namespace; a run takes replicas 0, 1, ... while
they exist, starts whatever more it asks for itself, and stops only what it started.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import inspect
import json
import os
import sys
from importlib import metadata
from typing import Any

NAMESPACE = "dubgraph"
PREFIX = "dubgraph:"


@functools.cache
def _source_hash(module: str) -> str:
    try:
        path = inspect.getsourcefile(sys.modules[module])
        return hashlib.sha256(open(path, "rb").read()).hexdigest()[:16] if path else ""
    except (KeyError, TypeError, OSError):
        return ""


def _version() -> str:
    try:
        return metadata.version("dubgraph")
    except metadata.PackageNotFoundError:
        return "unknown"


def actor_key(role: str, profile: str, spec, classes: tuple[type, ...], args: tuple, options: dict[str, Any]) -> str:
    """The key naming a warm actor: same key, same model and settings (see the module docstring)."""
    shape = {
        "role": role,
        "profile": profile,
        "spec": dataclasses.asdict(spec),
        "location": os.environ.get(spec.env_var) if spec.env_var else None,
        "classes": [f"{c.__module__}:{c.__qualname__}@{_source_hash(c.__module__)}" for c in classes],
        "args": args,
        "options": {k: v for k, v in sorted(options.items())},
        "version": _version(),
    }
    return hashlib.sha256(json.dumps(shape, sort_keys=True, default=repr).encode()).hexdigest()[:16]


def actor_name(role: str, key: str, replica: int) -> str:
    return f"{PREFIX}{role}:{key}:{replica}"


def find(role: str, key: str) -> list[Any]:
    """The warm actors of this role and key: replicas 0, 1, ... as long as they exist (and are not dead)."""
    import ray

    found = []
    while True:
        try:
            found.append(ray.get_actor(actor_name(role, key, len(found)), namespace=NAMESPACE))
        except ValueError:  # no actor by that name
            return found


def names() -> list[str]:
    """Every warm actor's name on the connected cluster."""
    import ray

    return sorted(entry["name"] for entry in ray.util.list_named_actors(all_namespaces=True)
                  if entry["namespace"] == NAMESPACE and entry["name"].startswith(PREFIX))


def stop_all() -> list[str]:
    """Kill every warm actor on the connected cluster; their names."""
    import ray

    stopped = names()
    for name in stopped:
        try:
            ray.kill(ray.get_actor(name, namespace=NAMESPACE), no_restart=True)
        except ValueError:  # gone meanwhile
            pass
    return stopped
