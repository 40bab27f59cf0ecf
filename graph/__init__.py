"""dubgraph's dataflow: pure timeline logic and the orchestration that drives the model actors.

Public surface: the options, the result records, ``dub_file`` (one file, local or cluster Ray) and, for a dub's
lines, ``lines_of`` / ``edit_lines`` / ``render_dir`` (regenerate only what the edits made stale).
Actors are imported by full path (``actors.chatterbox.model``...), never as a side effect of this package.
"""

from graph.errors import DubError
from graph.options import (
    AsrOptions,
    DiarizeOptions,
    DubOptions,
    GlossaryOptions,
    TimingOptions,
    TranslateOptions,
    TtsOptions,
    VideoOptions,
    VoiceOptions,
)
from graph.run.editing import edit_lines, lines_of, render_dir
from graph.run.pipeline import DubResult
from graph.run.pools import dub_file
from graph.run.rendering import Rendered
from graph.types import LanguageOutput, PlacedLine, Utterance

__all__ = [
    "AsrOptions",
    "DiarizeOptions",
    "DubError",
    "DubOptions",
    "DubResult",
    "GlossaryOptions",
    "LanguageOutput",
    "PlacedLine",
    "Rendered",
    "TimingOptions",
    "TranslateOptions",
    "TtsOptions",
    "VideoOptions",
    "Utterance",
    "VoiceOptions",
    "dub_file",
    "edit_lines",
    "lines_of",
    "render_dir",
]
