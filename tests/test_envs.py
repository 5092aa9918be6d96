"""Conda environments pin what the pip lock pins (no conda registry is
reachable here, so the envs themselves are never built by the tests)."""

import os
import re
from pathlib import Path

import pytest
import yaml

from neuralcode.jobenv import export_source_dir

REPO = Path(__file__).resolve().parents[1]
ENVS = sorted((REPO / "envs").glob("*.yaml"))
# Direct pins that only the runner or the tests need, not the jobs.
NOT_IN_JOBS = {
    "snakemake",
    "snakemake-executor-plugin-slurm",
    "pytest",
    "snakefmt",
    "ruff",
}


def _pins(lines, sep):
    pins = {}
    for line in lines:
        line = line.split("#")[0].strip()
        if sep in line:
            name, version = line.split(sep, 1)
            pins[name.strip().lower().replace("_", "-")] = version.strip()
    return pins


LOCK = _pins((REPO / "requirements.txt").read_text().splitlines(), "==")
DIRECT = _pins((REPO / "requirements.in").read_text().splitlines(), "==")


def env_pins(path):
    """{name: version} over conda (`name=version`) and pip (`name==version`)
    dependencies, and the list of unpinned entries."""
    spec = yaml.safe_load(path.read_text())
    pins, unpinned = {}, []
    for dep in spec["dependencies"]:
        if isinstance(dep, dict):
            for req in dep.get("pip", []):
                match = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([\w.+]+)", req)
                if match is None:
                    unpinned.append(req)
                else:
                    pins[match[1].lower()] = match[2]
        elif dep != "pip":
            match = re.fullmatch(r"([A-Za-z0-9_.\-]+)=([\w.+]+)", dep)
            if match is None:
                unpinned.append(dep)
            else:
                pins[match[1].lower()] = match[2]
    return pins, unpinned


def test_there_are_envs():
    assert ENVS


@pytest.mark.parametrize("path", ENVS, ids=lambda p: p.name)
def test_channels_conda_forge_first_without_defaults(path):
    channels = yaml.safe_load(path.read_text())["channels"]
    assert channels[0] == "conda-forge"
    assert "nodefaults" in channels and "defaults" not in channels


@pytest.mark.parametrize("path", ENVS, ids=lambda p: p.name)
def test_env_pins_equal_the_lock(path):
    pins, unpinned = env_pins(path)
    assert unpinned == [], f"{path.name}: unpinned {unpinned}"
    python = pins.pop("python")
    assert python == "3.11", "the lock was made on Python 3.11"
    for name, version in pins.items():
        assert LOCK.get(name) == version, (
            f"{path.name}: {name}={version}, lock {LOCK.get(name)}"
        )


@pytest.mark.parametrize("path", ENVS, ids=lambda p: p.name)
def test_env_holds_every_direct_dependency_of_the_jobs(path):
    pins, _ = env_pins(path)
    missing = set(DIRECT) - NOT_IN_JOBS - set(pins)
    assert missing == set(), f"{path.name} lacks {sorted(missing)}"


@pytest.mark.parametrize(
    "rule_file", sorted((REPO / "rules").glob("*.smk")), ids=lambda p: p.name
)
def test_every_conda_directive_names_an_existing_env(rule_file):
    common = (REPO / "rules/common.smk").read_text()
    env = re.search(r'^ENV = "(.+)"', common, re.M)[1]
    assert (REPO / "rules" / env).resolve() in [p.resolve() for p in ENVS]
    text = rule_file.read_text()
    for directive in re.findall(r"conda:\n\s+(\S+)", text):
        assert directive == "ENV", f"{rule_file.name}: conda: {directive}"


def test_source_dir_is_exported_once_and_first(monkeypatch, tmp_path):
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    export_source_dir(tmp_path)
    export_source_dir(tmp_path)
    assert os.environ["PYTHONPATH"].split(os.pathsep) == [str(tmp_path), "/elsewhere"]
    monkeypatch.delenv("PYTHONPATH")
    export_source_dir(tmp_path)
    assert os.environ["PYTHONPATH"] == str(tmp_path)
