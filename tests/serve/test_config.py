"""The shipped Serve configs are valid Serve schemas whose args and deployment names fit serve_app."""

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["serve_config.yaml", "serve_config.gpu.yaml"])
def test_config_matches_the_app(name):
    from ray.serve.schema import ServeDeploySchema

    from actors.chatterbox.batcher import can_batch, decode_options
    from actors.models import PROFILES, load_object
    from actors.serving import Diarizer, Separator, Synthesizer, Transcriber, Translator
    from serve_app import DubAppArgs, DubIngress, build_app

    config = ServeDeploySchema.model_validate(yaml.safe_load((ROOT / name).read_text()))
    (app,) = config.applications
    assert app.import_path == "serve_app:build_app"
    args = DubAppArgs.model_validate(app.args)
    assert args.profile in PROFILES
    build_app(args)
    names = {d.name for d in (DubIngress, Transcriber, Diarizer, Translator, Synthesizer, Separator)}
    assert {d.name for d in app.deployments} == names
    ingress = next(d for d in app.deployments if d.name == "DubIngress")
    assert ingress.num_replicas == 1 and not ingress.ray_actor_options.num_gpus  # the job runner: one, on CPU
    synth = next(d for d in app.deployments if d.name == "Synthesizer")
    user = synth.user_config or {}
    assert set(user) <= {"batch_lines", "line_wait_s", "decode"}
    decode_options(user.get("decode", "auto"), "cuda" if name.endswith(".gpu.yaml") else "cpu")
    batch = user.get("batch_lines", 1)
    assert synth.max_ongoing_requests >= batch  # a batch can fill
    assert batch == 1 or can_batch(load_object(PROFILES[args.profile].model("synthesizer").actor))


@pytest.mark.parametrize("name", ["serve_config.yaml", "serve_config.gpu.yaml"])
def test_an_exposed_address_without_a_key_fails_closed(name, monkeypatch):
    from graph.errors import DubError
    from graph.jobs.http import require_key_when_exposed
    from serve_app import DubAppArgs

    config = yaml.safe_load((ROOT / name).read_text())
    args = DubAppArgs.model_validate(config["applications"][0]["args"])
    monkeypatch.delenv(args.api_key_env, raising=False)
    host = config["http_options"]["host"]
    if host == "127.0.0.1":
        require_key_when_exposed(host, args.key(), args.allow_anonymous)  # loopback: no key needed
    else:
        with pytest.raises(DubError, match="refusing to serve without an API key"):
            require_key_when_exposed(host, args.key(), args.allow_anonymous)
        monkeypatch.setenv(args.api_key_env, "a-key")
        require_key_when_exposed(host, args.key(), args.allow_anonymous)
    for loopback in ("127.0.0.1", "127.0.0.5", "localhost", "::1", "[::1]"):
        require_key_when_exposed(loopback, None, False)
    for exposed in ("0.0.0.0", "::", "10.1.2.3", "dub.example.com", None):
        with pytest.raises(DubError, match="allow_anonymous"):
            require_key_when_exposed(exposed, None, False)
        require_key_when_exposed(exposed, None, True)
