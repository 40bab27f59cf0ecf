"""A local Ray head that outlives one command: `dubgraph up` starts it, runs join it, `dubgraph down` stops it.

The head is Ray's own ``ray start --head --block``, run in the background in its own session, so the standard
Ray tools find it too (``--address auto``, ``ray status``, ``serve run --address auto``): its address goes where Ray
looks (``<ray temp dir>/ray_current_cluster``; the temp dir is ``$RAY_TMPDIR/ray``, else ``$TMPDIR/ray``, else
``/tmp/ray``). ``--block`` keeps Ray's processes tied to that one process: SIGTERM to it stops them all, and a
start that fails cleans up after itself, so a failed start is simply retried.

Settings for a small machine (why, in ``local_ray``): no idle workers prestarted, no dashboard UI, no usage
reporting, and every port Ray would otherwise take at a fixed default (the agent's 52365, the Ray Client server's
10001, GCS 6379) picked free, so several heads and embedded clusters coexist on one machine.
Token authentication is on: a random token in a file only the user can read (``auth_token`` beside the state),
which runs joining with ``--address auto`` read (``local_ray``); other Ray tools need ``RAY_AUTH_TOKEN_PATH``.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from graph.errors import DubError

log = logging.getLogger(__name__)

START_ATTEMPTS = 3  # a start can time out on a busy machine (Ray's agent start limit); each attempt cleans up
START_TIMEOUT_S = 300.0
STOP_TIMEOUT_S = 60.0
STATE_NAME = "dubgraph-head.json"


@dataclass(frozen=True)
class Head:
    address: str  # the GCS address, host:port
    pid: int  # the `ray start --block` process
    token_path: str
    log_path: str


def ray_temp_dir() -> Path:
    """Where Ray keeps sessions and the current cluster's address (Ray's own default)."""
    return Path(os.environ.get("RAY_TMPDIR") or os.environ.get("TMPDIR") or "/tmp") / "ray"


def _address_file() -> Path:
    """Where Ray writes the address of the cluster started last on this machine (what "auto" reads)."""
    return ray_temp_dir() / "ray_current_cluster"


def state_dir() -> Path:
    """This user's directory for the head's state and token (created 0700; refused if someone else owns it)."""
    path = ray_temp_dir() / f"dubgraph-{os.getuid()}"
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = path.stat()
    if info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise DubError(f"{path} is not a private directory of this user: remove it and run `dubgraph up` again")
    return path


def running() -> Head | None:
    """The head `dubgraph up` started, if it is still running."""
    try:
        head = Head(**json.loads((state_dir() / STATE_NAME).read_text()))
    except (OSError, ValueError, TypeError):
        return None
    if not alive(head.pid):
        return None
    try:
        if b"ray" not in Path(f"/proc/{head.pid}/cmdline").read_bytes():  # the pid is some other process now
            return None
    except OSError:  # no /proc here
        pass
    return head


def start(num_cpus: int | None = None) -> Head:
    """Start the head (or return the running one), retrying a start that fails."""
    head = running()
    if head is not None:
        return head
    from graph.run.local_ray import RAY_SETTINGS, WORKER_ENV

    directory = state_dir()
    token = directory / "auth_token"
    token.write_text(secrets.token_hex(32))
    token.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if k != "RAY_AUTH_TOKEN"}
    env.update(RAY_SETTINGS, **WORKER_ENV, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token))
    log_path = directory / "head.log"
    for attempt in range(1, START_ATTEMPTS + 1):
        head = _start_once(num_cpus, env, token, log_path)
        if head is not None:
            (directory / STATE_NAME).write_text(json.dumps(asdict(head)))
            return head
        log.warning("the Ray head did not start (attempt %d of %d; see %s)", attempt, START_ATTEMPTS, log_path)
    raise DubError(f"the Ray head did not start after {START_ATTEMPTS} attempts; its log: {log_path}")


def _start_once(num_cpus: int | None, env: dict[str, str], token: Path, log_path: Path) -> Head | None:
    gcs, grpc, listen, export, runtime_env, client, dashboard = _free_ports(7)
    address_file = _address_file()
    command = [str(Path(sys.executable).parent / "ray"), "start", "--head", "--block", f"--port={gcs}",
               f"--dashboard-agent-grpc-port={grpc}", f"--dashboard-agent-listen-port={listen}",
               f"--metrics-export-port={export}", f"--runtime-env-agent-port={runtime_env}",
               f"--ray-client-server-port={client}", f"--dashboard-port={dashboard}", "--include-dashboard=false",
               "--include-log-monitor=false", "--no-monitor", "--disable-usage-stats"]
    if num_cpus is not None:
        command.append(f"--num-cpus={num_cpus}")
    with open(log_path, "ab") as out:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
                                   start_new_session=True)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return None
        try:
            address = address_file.read_text().strip()
        except OSError:
            address = ""
        if address.endswith(f":{gcs}"):
            return Head(address, process.pid, str(token), str(log_path))
        time.sleep(0.2)
    _stop_process(process.pid)
    return None


def stop() -> Head | None:
    """Stop the head `dubgraph up` started (None when none runs); its state and token go with it."""
    head = running()
    directory = state_dir()
    if head is not None:
        _stop_process(head.pid)
        address_file = _address_file()  # what `ray stop` removes too: a plain ray.init() or `serve run` reads it
        try:  # and would wait minutes on the stopped head's address
            if address_file.read_text().strip() == head.address:
                address_file.unlink()
        except OSError:
            pass
    for name in (STATE_NAME, "auth_token"):
        (directory / name).unlink(missing_ok=True)
    return head


def alive(pid: int) -> bool:
    """The process exists and is not a zombie (one whose parent has not collected it yet is gone all the same)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _stop_process(pid: int) -> None:
    """SIGTERM (Ray's processes stop with it), then SIGKILL to its whole session if it is still there."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return
        except ChildProcessError:  # not our child (`up` started it): poll whether it is gone
            if not alive(pid):
                return
        time.sleep(0.2)
    log.warning("the Ray head (pid %d) did not stop in %.0f s: killing its process group", pid, STOP_TIMEOUT_S)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _free_ports(count: int) -> list[int]:
    """Ports free now (bound together, so distinct); Ray binds them moments later."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()
