"""Settings files users write (options, glossaries): a JSON or YAML mapping, read with a message that says what is
wrong with it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from graph.errors import BadInput


def read_mapping(path: str | Path, what: str) -> dict[str, Any]:
    """The mapping in a JSON or YAML file (JSON is YAML); ``BadInput`` naming ``what`` ("--options") otherwise."""
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise BadInput(f"cannot read {what} {path}: {exc}") from None
    if not isinstance(data, dict):
        raise BadInput(f"{what} {path} must hold a mapping (JSON object or YAML mapping)")
    return data
