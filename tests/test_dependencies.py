"""Pinned, reproducible dependencies: constraints.txt pins every dependency
pyproject.toml names (at a version its specifier allows), the venv runs those
versions, and run.json records them."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from paths import ROOT

from lab import cli
from lab.versions import installed_versions


def pins() -> dict[str, str]:
    out = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            out[canonicalize_name(name)] = version.split(";")[0].strip()
    return out


def declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = project["dependencies"] + [r for extra in project["optional-dependencies"].values()
                                      for r in extra]
    return [Requirement(r) for r in reqs]


def test_every_declared_dependency_is_pinned_within_its_specifier():
    locked = pins()
    for req in declared():
        if req.marker and not req.marker.evaluate():
            continue
        name = canonicalize_name(req.name)
        assert name in locked, f"{req.name} is in pyproject.toml but not in constraints.txt; " \
                               "run scripts/lock"
        assert req.specifier.contains(locked[name], prereleases=True), \
            f"constraints.txt pins {req.name}=={locked[name]}, outside {req}; run scripts/lock"


def test_the_venv_runs_the_pinned_versions():
    locked = pins()
    wrong = {}
    for dist in metadata.distributions():
        name = canonicalize_name(dist.metadata["Name"])
        if name in locked and dist.version != locked[name]:
            wrong[name] = (dist.version, locked[name])
    assert wrong == {}, "installed vs pinned; rerun scripts/test (it reinstalls)"


def test_run_json_versions_name_what_ran():
    versions = installed_versions()
    assert versions["locust"] == metadata.version("locust")
    assert re.fullmatch(r"\d+\.\d+\.\d+", versions["python"])


def test_version_and_help(capsys):
    assert cli.main(["--version"]) == 0
    assert re.match(r"run-lab \(iolab\) \S+", capsys.readouterr().out)
    assert cli.main(["help"]) == 0
    text = capsys.readouterr().out
    assert "{validate,doctor,clean,report,capacity,compare}" in text and "143" in text
    assert cli.main(["help", "compare"]) == 0
    assert "run_a" in capsys.readouterr().out


def test_the_console_script_is_installed():
    exe = Path(sys.executable).with_name("run-lab")
    assert exe.exists(), "pip install gives a run-lab command ([project.scripts])"
    out = subprocess.run([str(exe), "--version"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.startswith("run-lab (iolab)")
