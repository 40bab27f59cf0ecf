"""Killing a process tree the way a crash or an OOM kill of the machine would: SIGKILL to everything in its session."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path


def session_pids(sid: int) -> list[int]:
    """Processes of session ``sid``: a command started with ``start_new_session``, its embedded Ray and Ray's
    workers (each in its own process group)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != "Z":  # fields after "(comm)": state ppid pgrp session ...; zombies
            pids.append(int(stat.parent.name))  # are dead already (PID 1 of a container may never reap them)
    return pids


def kill_session(proc, timeout_s: float = 30.0) -> None:
    """SIGKILL ``proc`` (started with ``start_new_session``) and every process of its session at once, as a crash
    or an OOM kill of the machine would, until none is left."""
    deadline = time.monotonic() + timeout_s
    while (left := session_pids(proc.pid)) or proc.poll() is None:
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if time.monotonic() > deadline:
            raise TimeoutError(f"processes {left} of session {proc.pid} survived SIGKILL")
        time.sleep(0.05)  # a forking process may have started one more
