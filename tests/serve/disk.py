"""A full disk for tests: a real tmpfs where the test may mount one (root, mounts allowed), else ENOSPC injected at
dubgraph's write calls (graph.files) with no free space reported, so the same code path is covered in CI."""

from __future__ import annotations

import errno
import shutil
import subprocess
from pathlib import Path

import graph.files


class MountRefused(Exception):
    pass


class Tmpfs:
    """A small tmpfs mounted at ``root`` (MountRefused where this machine does not allow it)."""

    def __init__(self, root: Path, size_mb: int = 24):
        root.mkdir(exist_ok=True)
        try:
            subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(root)],
                           check=True, capture_output=True, timeout=30)  # fmt: skip
        except (OSError, subprocess.SubprocessError) as exc:
            raise MountRefused(f"cannot mount a tmpfs at {root}: {exc}") from None
        self.root = root

    def fill(self) -> None:
        """Write a ballast file until the disk refuses: nothing is left for anyone else."""
        with open(self.root / "ballast", "wb", buffering=0) as ballast:
            block = b"\0" * 65536
            try:
                while ballast.write(block):
                    pass
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc

    def free(self) -> None:
        (self.root / "ballast").unlink()

    def close(self) -> None:
        subprocess.run(["umount", "-l", str(self.root)], check=False, capture_output=True, timeout=30)


class InjectedFullDisk:
    """ENOSPC from every write through graph.files (checkpoints, artifacts, saved uploads) while ``full``, and no
    free space as shutil.disk_usage reports it: the same path as a full disk, where no tmpfs can be mounted."""

    def __init__(self, root: Path, monkeypatch):
        root.mkdir()
        self.root = root
        self.full = False
        real_usage = shutil.disk_usage
        monkeypatch.setattr(graph.files, "open", self._open, raising=False)
        monkeypatch.setattr(shutil, "disk_usage", lambda path: real_usage(path)._replace(free=0) if self.full
                            else real_usage(path))  # fmt: skip

    def _open(self, path, mode="r", *args, **kwargs):
        handle = open(path, mode, *args, **kwargs)
        return handle if "r" in mode else _FullWhenFull(handle, self)

    def fill(self) -> None:
        self.full = True

    def free(self) -> None:
        self.full = False

    def close(self) -> None:
        pass


class _FullWhenFull:
    def __init__(self, handle, disk: InjectedFullDisk):
        self._handle = handle
        self._disk = disk

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self._handle.close()

    def write(self, data) -> int:
        if self._disk.full:
            raise OSError(errno.ENOSPC, "No space left on device (injected)")
        return self._handle.write(data)

    def __getattr__(self, name: str):
        return getattr(self._handle, name)
