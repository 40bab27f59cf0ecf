"""Progress bars on stderr for the CLI: one bar per stage event stream, with rate and ETA."""

from __future__ import annotations

import logging
import sys

from graph.run.pipeline import Event

log = logging.getLogger(__name__)


class ProgressBars:
    """Renders pipeline ``Event``s as tqdm bars (count, rate, ETA) on stderr."""

    def __init__(self, stream=sys.stderr):
        self.stream = stream
        self.bars = {}

    def __enter__(self) -> "ProgressBars":
        return self

    def __exit__(self, *exc) -> None:
        for bar in self.bars.values():
            bar.close()

    def update(self, event: Event) -> None:
        from tqdm import tqdm

        bar = self.bars.get(event.stage)
        if bar is None:
            bar = tqdm(total=event.total, desc=f"{event.stage:<18}", unit="line" if ":" in event.stage else "step",
                       file=self.stream, leave=True, dynamic_ncols=True)
            self.bars[event.stage] = bar
        bar.total = event.total
        bar.n = event.completed
        bar.refresh()
