"""Connecting to Ray: an existing cluster by address, or an embedded local one with token auth on.

Ray 2.60 enables token authentication for new clusters; an embedded cluster gets a fresh random token kept in
this process's environment (inherited by the Ray processes it starts), so nothing on the machine can attach
to it without that token. Pyannote's usage telemetry is switched off in every worker.
"""

from __future__ import annotations

import logging
import os
import secrets

log = logging.getLogger(__name__)

WORKER_ENV = {"PYANNOTE_METRICS_ENABLED": "false", "HF_HUB_DISABLE_TELEMETRY": "1", "TOKENIZERS_PARALLELISM": "false"}


def init_ray(address: str | None = None, num_cpus: int | None = None, **kwargs) -> None:
    """Start an embedded Ray (address None) or join ``address`` ("auto" = the local `ray start` head)."""
    import ray

    if ray.is_initialized():
        return
    os.environ.update(WORKER_ENV)
    runtime_env = {"env_vars": dict(WORKER_ENV)}
    if address:
        ray.init(address=address, runtime_env=runtime_env, **kwargs)
        return
    if not os.environ.get("RAY_AUTH_TOKEN") and not os.environ.get("RAY_AUTH_TOKEN_PATH"):
        os.environ["RAY_AUTH_MODE"] = "token"
        os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)
        _reload_auth_config()
    kwargs.setdefault("include_dashboard", False)
    kwargs.setdefault("logging_level", logging.WARNING)
    kwargs.setdefault("log_to_driver", True)
    ray.init(address="local", num_cpus=num_cpus, runtime_env=runtime_env, **kwargs)  # never a stray `ray start`
    log.info("started an embedded Ray (token auth on) with %s CPUs", ray.cluster_resources().get("CPU"))


def _reload_auth_config() -> None:
    """Ray reads RAY_AUTH_MODE/RAY_AUTH_TOKEN when it is imported; re-read them after they were set here."""
    from ray._raylet import AuthenticationTokenLoader, Config

    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()
