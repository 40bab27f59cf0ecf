import subprocess
import sys
from pathlib import Path

import pytest

from actors.models import FULL, OFFLINE, ModelSpec, check, get_profile, resolve
from graph.errors import BadInput, ModelNotFound

ROOT = Path(__file__).resolve().parents[2]
SPEC = ModelSpec("translator", "test model", "actors.translator:Translator", "hub", "acme/test-model",
                 "DUBGRAPH_TEST_MODEL", "run `hf download acme/test-model`")


@pytest.fixture
def hf_cache(tmp_path, monkeypatch):
    from huggingface_hub import constants

    snapshot = tmp_path / "hub" / "models--acme--test-model" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (tmp_path / "hub" / "models--acme--test-model" / "refs").mkdir()
    (tmp_path / "hub" / "models--acme--test-model" / "refs" / "main").write_text("abc123")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    return snapshot


def test_resolution_order_explicit_then_env_then_cache(tmp_path, hf_cache, monkeypatch):
    explicit, env_dir = tmp_path / "explicit", tmp_path / "env"
    explicit.mkdir(), env_dir.mkdir()
    monkeypatch.setenv("DUBGRAPH_TEST_MODEL", str(env_dir))
    assert resolve(SPEC, "p", local_path=str(explicit)) .how == "explicit path"
    found = resolve(SPEC, "p")
    assert (found.location, found.how) == (str(env_dir), "$DUBGRAPH_TEST_MODEL")
    monkeypatch.delenv("DUBGRAPH_TEST_MODEL")
    found = resolve(SPEC, "p")
    assert (Path(found.location), found.how) == (hf_cache, "hf cache")


def test_missing_model_names_model_profile_places_and_fix(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty"))
    monkeypatch.setenv("DUBGRAPH_TEST_MODEL", str(tmp_path / "nope"))
    with pytest.raises(ModelNotFound) as err:
        resolve(SPEC, "myprofile", local_path=str(tmp_path / "missing"))
    message = str(err.value)
    for part in ("'test model'", "'myprofile'", "explicit path", "$DUBGRAPH_TEST_MODEL=", "Hugging Face cache",
                 "hf download acme/test-model"):
        assert part in message


def test_download_only_when_allowed_and_failure_explained(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFound) as err:
        resolve(SPEC, "p", allow_download=False)
    assert "download failed" not in str(err.value)
    with pytest.raises(ModelNotFound, match="download failed"):
        resolve(SPEC, "p", allow_download=True)


def test_every_full_model_missing_here_says_how_to_get_it(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty"))
    results = check(FULL)
    assert [spec.role for spec, _ in results] == ["asr", "diarizer", "translator", "synthesizer", "separator"]
    for spec, found in results:
        assert isinstance(found, ModelNotFound)
        assert f"hf download {spec.source}" in str(found) and spec.env_var in str(found)
    assert "hf auth login" in str(results[1][1])  # pyannote's model is gated


def test_offline_profile_is_complete_here_and_package_and_binary_kinds_resolve():
    results = check(OFFLINE)
    assert all(not isinstance(found, Exception) for _, found in results), results
    assert {found.how for _, found in results} == {"package", "PATH"}
    missing_pkg = ModelSpec("asr", "x", "a:b", "package", "no_such_package_xyz", None, "pip install it")
    with pytest.raises(ModelNotFound, match="python package no_such_package_xyz"):
        resolve(missing_pkg, "offline")
    missing_bin = ModelSpec("synthesizer", "x", "a:b", "binary", "no-such-binary-xyz", None, "apt-get install it")
    with pytest.raises(ModelNotFound, match="apt-get install it"):
        resolve(missing_bin, "offline")


def test_unknown_profile_lists_known_ones():
    with pytest.raises(BadInput, match="choose one of: full, offline"):
        get_profile("fast")


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "graph.cli", *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_models_command_exit_codes_and_no_traceback(tmp_path):
    offline = run_cli("models", "--profile", "offline")
    assert offline.returncode == 0, offline.stderr
    assert offline.stdout.count("  ok ") == 5
    full = subprocess.run([sys.executable, "-m", "graph.cli", "models", "--profile", "full"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "HF_HUB_CACHE": str(tmp_path), "HF_HUB_OFFLINE": "1"})
    assert full.returncode == 1
    assert full.stdout.count("MISSING") == 5 and "Traceback" not in full.stdout + full.stderr
    bad = run_cli("models", "--profile", "nope")
    assert bad.returncode == 2 and "choose one of" in bad.stderr and "Traceback" not in bad.stderr
