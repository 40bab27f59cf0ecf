"""The `dubgraph` command line (a way in): ``graph.cli.main`` parses and runs, ``progress`` draws the bars."""

from graph.cli.main import main, run

__all__ = ["main", "run"]
