"""Benchmarks: dubgraph against the serialized pipeline it replaces (``python -m bench.run``, see RESULTS.md)."""
