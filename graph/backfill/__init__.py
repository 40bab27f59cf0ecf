"""Bulk backfills (a way in): ``python -m graph.backfill`` / ``ray job submit``, the run manifest, progress."""
