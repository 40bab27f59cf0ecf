"""cluster.yaml against Ray's own cluster-launcher schema, as written and as `ray up` prepares it."""

import copy

import jsonschema
import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

from .helpers import ROOT


@pytest.fixture(scope="module")
def config() -> dict:
    return yaml.safe_load((ROOT / "cluster.yaml").read_text())


def test_cluster_yaml_validates_with_rays_schema(config):
    validate_config(copy.deepcopy(config))
    validate_config(prepare_config(copy.deepcopy(config)))  # with the provider's defaults filled in, as `ray up` does


def test_the_schema_check_is_real(config):
    broken = copy.deepcopy(config)
    broken["available_node_types"]["head"]["resourcez"] = {"CPU": 1}
    with pytest.raises(jsonschema.ValidationError):
        validate_config(broken)


def test_cpu_head_gpu_workers_and_readme_install(config):
    types = config["available_node_types"]
    assert types[config["head_node_type"]]["resources"].get("GPU", 0) == 0
    gpu = {name: t for name, t in types.items() if t["resources"].get("GPU", 0) > 0}
    assert gpu and all(0 <= t["min_workers"] <= t["max_workers"] for t in gpu.values())
    assert any(t["min_workers"] >= 1 for t in gpu.values())  # a GPU is there when the backfill starts its pools
    assert sum(t.get("min_workers", 0) for t in types.values()) <= config["max_workers"]
    setup = " && ".join(config["setup_commands"])
    assert "git clone" in setup and "make setup" in setup
    assert all(".venv" in cmd for cmd in config["head_start_ray_commands"] + config["worker_start_ray_commands"])
