"""The cluster files parse, agree with the README's set-up, and keep the dashboard private."""
import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text()


def readme_setup() -> str:
    block = README.split("## Run on a cluster", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    return block.strip()


def test_launcher_yaml_parses_and_matches_readme_setup():
    cfg = yaml.safe_load((REPO / "cluster" / "aws-gpu.yaml").read_text())
    assert cfg["setup_commands"] == [f"cd ~/elm-study && {readme_setup()}"]
    head = " ".join(cfg["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head and "RAY_AUTH_MODE=token" in head
    assert "RAY_AUTH_MODE=disabled" not in (REPO / "cluster" / "aws-gpu.yaml").read_text()
    assert {".venv", "data", "results"} <= set(cfg["rsync_exclude"])


def test_kuberay_manifest_parses_and_matches_readme_setup():
    cfg = yaml.safe_load((REPO / "cluster" / "kuberay.yaml").read_text())
    assert cfg["kind"] == "RayCluster"
    assert cfg["spec"]["headGroupSpec"]["rayStartParams"]["dashboard-host"] == "127.0.0.1"
    pods = [cfg["spec"]["headGroupSpec"]["template"]] + [
        g["template"] for g in cfg["spec"]["workerGroupSpecs"]]
    for pod in pods:
        c = pod["spec"]["containers"][0]
        assert c["lifecycle"]["postStart"]["exec"]["command"][-1] == \
            f"cd ~/elm-study && {readme_setup()}"
        assert {"name": "RAY_AUTH_MODE", "value": "token"} in c["env"]


def test_runtime_env_excludes_heavy_folders():
    env = yaml.safe_load((REPO / "cluster" / "runtime_env.yaml").read_text())
    assert env["working_dir"] == "."
    assert {".venv", "data", "results", ".git"} <= set(env["excludes"])
    assert re.search(r"--runtime-env cluster/runtime_env.yaml", README)
