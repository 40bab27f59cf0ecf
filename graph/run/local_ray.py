"""Connecting to Ray: an existing cluster by address, or an embedded local one with token auth on.

Ray 2.60 enables token authentication for new clusters; an embedded cluster gets a fresh random token kept in
this process's environment (inherited by the Ray processes it starts), so nothing on the machine can attach
to it without that token. ``--address auto`` means the head `dubgraph up` started (``graph.run.head``: its
address and token file) when it runs, else whatever Ray's own "auto" finds. Pyannote's usage telemetry is
switched off in every worker.

Settings for a small machine (``RAY_SETTINGS``, Ray's documented ``RAY_<setting>`` environment overrides, set for
the Ray processes an embedded run or `dubgraph up` starts): no workers prestarted when the first driver connects
(Ray starts one idle worker per CPU then, and actors never use them: measured, they stay idle while every actor
gets a process of its own; on 2 cores that is two interpreters importing Ray while the model actors load), and no
usage-stats reporting and no metrics collection (nothing here reads Ray's metrics, and a start under load went
through with it off where it timed out with it on). The dashboard UI is off (``include_dashboard=False``).

A limit of Ray 2.60 that no setting changes: its raylet waits a fixed 15 s for the dashboard agent (a Python
process importing every dashboard module) to write its port files, and gives up the whole start when it is late,
which happens when the machine is very busy. An embedded start that fails so says what to do instead.
"""

from __future__ import annotations

import logging
import os
import secrets

from graph.errors import DubError

log = logging.getLogger(__name__)

WORKER_ENV = {"PYANNOTE_METRICS_ENABLED": "false", "HF_HUB_DISABLE_TELEMETRY": "1", "TOKENIZERS_PARALLELISM": "false"}
RAY_SETTINGS = {"RAY_prestart_worker_first_driver": "0", "RAY_USAGE_STATS_ENABLED": "0",
                "RAY_enable_metrics_collection": "0"}
STARTUP_TIMEOUT = "timed out during startup"  # what Ray 2.60 raises when its raylet gave up waiting for its agents
GAVE_UP = "Ray could not start here"  # how an embedded start that timed out so is reported


def init_ray(address: str | None = None, num_cpus: int | None = None, **kwargs) -> None:
    """Start an embedded Ray (address None) or join ``address`` ("auto": the `dubgraph up` head, else a local
    `ray start --head`)."""
    import ray

    if ray.is_initialized():
        return
    os.environ.update(WORKER_ENV)
    runtime_env = {"env_vars": dict(WORKER_ENV)}
    if address:
        ray.init(address=_resolve(address), runtime_env=runtime_env, **kwargs)
        return
    if not os.environ.get("RAY_AUTH_TOKEN") and not os.environ.get("RAY_AUTH_TOKEN_PATH"):
        _use_token(RAY_AUTH_TOKEN=secrets.token_hex(32))
    for name, value in RAY_SETTINGS.items():
        os.environ.setdefault(name, value)
    kwargs.setdefault("include_dashboard", False)
    kwargs.setdefault("logging_level", logging.WARNING)
    kwargs.setdefault("log_to_driver", True)
    try:
        ray.init(address="local", num_cpus=num_cpus, runtime_env=runtime_env, **kwargs)  # never a stray `ray start`
    except Exception as exc:  # Ray raises a bare Exception for this
        if STARTUP_TIMEOUT not in str(exc):
            raise
        raise DubError(f"{GAVE_UP}: its dashboard agent did not start within Ray's limit, which "
                       "happens when the machine is very busy. Try again, or start Ray once with `dubgraph up` "
                       "(it retries) and dub with --address auto") from None
    log.info("started an embedded Ray (token auth on) with %s CPUs", ray.cluster_resources().get("CPU"))


def _resolve(address: str) -> str:
    """``auto`` -> the `dubgraph up` head's address, its token file used unless a token is already set."""
    if address != "auto":
        return address
    from graph.run.head import running

    head = running()
    if head is None:
        return address
    if not os.environ.get("RAY_AUTH_TOKEN") and not os.environ.get("RAY_AUTH_TOKEN_PATH"):
        _use_token(RAY_AUTH_TOKEN_PATH=head.token_path)
    return head.address


def _use_token(**token: str) -> None:
    """Token auth on with this token (value or file); Ray read its auth settings when imported, so re-read them."""
    from ray._raylet import AuthenticationTokenLoader, Config

    os.environ["RAY_AUTH_MODE"] = "token"
    os.environ.update(token)
    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()
