"""The contract package is the one definition of the shared vocabulary: the
servers' registry, the load generator's failure kinds and the lab's checks
must agree with it, and nothing else may define its facts again."""

from __future__ import annotations

import errno
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

import servers
from contract import limits, models, network
from contract.fds import SERVER_FD_OVERHEAD
from loadgen import failures
from servers.listener import ACCEPT_CAPACITY_ERRNOS

ROOT = Path(__file__).resolve().parents[2]


def test_servers_registry_is_the_contract_list():
    assert tuple(servers.MODELS) == models.MODELS
    for name, module in servers.MODELS.items():
        assert importlib.util.find_spec(module) is not None, f"{name}: {module} is missing"


def test_model_groups_name_only_models():
    groups = (models.EVENT_DRIVEN, models.MULTICORE, models.PROCESS_PER_CONNECTION,
              models.THREAD_PER_CONNECTION, models.WORKERS_MODELS, models.ON_FD_LIMIT_MODELS)
    for group in groups:
        assert group <= set(models.MODELS)
    assert set(SERVER_FD_OVERHEAD) == set(models.MODELS)


def test_every_limit_kind_has_a_mechanism_and_a_resource():
    for kind in limits.LIMIT_KINDS:
        sentence = limits.explain(kind)
        assert sentence.endswith(".") and len(sentence) > 40, kind
        assert limits.resource(kind), kind
    assert "not a known limit kind" in limits.explain("nonsense")


def test_what_servers_and_loadgen_emit_is_in_the_vocabulary():
    assert set(ACCEPT_CAPACITY_ERRNOS.values()) <= set(limits.LIMIT_KINDS)
    assert ACCEPT_CAPACITY_ERRNOS[errno.ENOBUFS] == "ENOBUFS"
    errno_kinds = {k for k in failures.KINDS if k.startswith("E")}
    assert errno_kinds - {"ECONNRESET"} <= set(limits.LIMIT_KINDS)
    assert set(limits.LOAD_SIDE_LIMITS) <= set(limits.LIMIT_KINDS)


@pytest.mark.parametrize("host, safe", [
    ("127.0.0.1", True), ("127.9.8.7", True), ("::1", True), ("[::1]", True),
    ("localhost", True), ("198.18.0.5", True), ("198.19.255.254", True),
    ("198.20.0.1", False), ("10.0.0.1", False), ("192.168.1.1", False), ("8.8.8.8", False),
    ("example.com", False), ("", False), ("::2", False),
])
def test_safe_target(host, safe):
    assert network.is_safe_target(host) is safe


def test_namespaced_sysctls():
    assert network.is_namespaced_sysctl("net.core.somaxconn")
    assert not network.is_namespaced_sysctl("fs.file-max")


def test_contract_imports_only_the_standard_library():
    code = ("import sys; before = set(sys.modules); "
            "import contract.models, contract.limits, contract.network, contract.fds, "
            "contract.env; new = set(sys.modules) - before; "
            "print(sorted(m for m in new if m.split('.')[0] not in sys.stdlib_module_names "
            "and m.split('.')[0] != 'contract'))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


def _sources():
    for top in ("servers", "loadgen", "lab", "benchmarks", "scripts"):
        yield from (p for p in (ROOT / top).rglob("*.py") if "__pycache__" not in p.parts)


def test_shared_facts_are_defined_once():
    """FD_SETSIZE, the model list and the lab network are spelled only in contract/."""
    patterns = {
        "FD_SETSIZE": re.compile(r"FD_SETSIZE\s*=\s*1024"),
        "the lab network": re.compile(r"ip_network\(\s*[\"']198\.18"),
        "the model list": re.compile(r"[\"']epoll-et[\"']\s*,\s*[\"']selectors[\"']"),
        "the ephemeral ports": re.compile(r"\b28_?232\b(?!,)"),
    }
    found = [(what, path.relative_to(ROOT)) for path in _sources()
             for what, rx in patterns.items() if rx.search(path.read_text())]
    assert found == []


def test_design_citations_name_the_repositorys_own_document():
    """Docstrings cite docs/design.md, which exists; nothing cites a design doc outside."""
    assert (ROOT / "docs" / "design.md").is_file()
    bad = []
    for path in [*_sources(), *(ROOT / "contract").rglob("*.py"), *(ROOT / "tests").rglob("*.py"),
                 ROOT / "README.md", *(ROOT / "docs").glob("*.md")]:
        text = path.read_text()
        if any(outside in text for outside in ("DESIGN" ".md", "../shared" "/")):
            bad.append(path.relative_to(ROOT))
    assert bad == []


def test_every_limit_a_server_refuses_with_is_a_kind():
    """The kinds the models pass to ``Stats.refuse`` are the vocabulary's."""
    used = {m.group(1) for path in (ROOT / "servers").glob("*.py")
            for m in re.finditer(r"refuse\(\s*\"([^\"]+)\"", path.read_text())}
    assert used and used <= set(limits.LIMIT_KINDS)
