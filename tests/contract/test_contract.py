"""The contract package is the one definition of the shared vocabulary: the
servers' registry, the load generator's failure kinds and the lab's checks
must agree with it, and nothing else may define its facts again."""

from __future__ import annotations

import argparse
import ast
import errno
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest
from paths import ROOT

import servers
from contract import defaults, limits, models, network
from lab.scenario.types import LoadSpec, ServerSpec
from loadgen.options import LoadOptions, add_arguments
from servers.cli import build_parser
from servers.listener import ACCEPT_CAPACITY_ERRNOS


def test_every_model_module_exists():
    """The registry ``servers.load`` imports is each record's module."""
    assert [m.name for m in models.TABLE] == list(models.MODELS)
    for m in models.TABLE:
        assert importlib.util.find_spec(m.module) is not None, f"{m.name}: {m.module} is missing"
    assert servers.load.__module__ == "servers" and "BY_NAME[name].module" in \
        Path(servers.__file__).read_text()


def test_model_records_are_consistent():
    groups = (models.EVENT_DRIVEN, models.MULTICORE, models.PROCESS_PER_CONNECTION,
              models.THREAD_PER_CONNECTION, models.WORKERS_MODELS, models.ON_FD_LIMIT_MODELS)
    for group in groups:
        assert group and group <= set(models.MODELS)
    assert models.PROCESS_PER_CONNECTION == {"forking"}
    assert models.THREAD_PER_CONNECTION == {"threads"}
    assert models.ON_FD_LIMIT_MODELS == {"select"} and models.WORKERS_MODELS == {"threadpool"}
    assert all(m.task_per_connection in (None, "process", "thread") for m in models.TABLE)
    # each model its own colour, and none a custom server's
    colours = [m.colour for m in models.TABLE]
    assert len(set(colours)) == len(colours)
    assert all(re.fullmatch(r"#[0-9a-f]{6}", c) for c in colours)
    assert models.model_facts(None) is models.model_facts("my-server") is models.CUSTOM
    assert models.model_facts("uvloop").fd_overhead == 15


def test_every_limit_kind_has_a_mechanism_and_a_resource():
    for kind in limits.LIMIT_KINDS:
        sentence = limits.explain(kind)
        assert sentence.endswith(".") and len(sentence) > 40, kind
        assert limits.LIMITS[kind].resource, kind
    assert "not a known limit kind" in limits.explain("nonsense")
    # one lookup for the sentence: no dict views of the same table beside it
    assert not hasattr(limits, "MECHANISM") and not hasattr(limits, "RESOURCE")


def test_the_kind_names_are_the_on_disk_strings():
    """Results files, events and Locust messages carry these exact strings."""
    assert (limits.FD_SETSIZE_LIMIT, limits.BACKLOG, limits.PID_MAX, limits.THREADS,
            limits.CRASH, limits.OOM, limits.MISMATCH, limits.SERIALIZED,
            limits.WORKER_LOST) == ("FD_SETSIZE", "backlog", "pid_max", "threads", "crash",
                                    "oom", "mismatch", "serialized", "worker_lost")
    assert limits.LIMIT_KINDS == (
        "FD_SETSIZE", "EMFILE", "ENFILE", "ENOBUFS", "ENOMEM", "EADDRNOTAVAIL", "ECONNREFUSED",
        "backlog", "pid_max", "threads", "crash", "oom", "mismatch", "serialized", "worker_lost")
    assert limits.FAILURE_KINDS == ("ECONNREFUSED", "ECONNRESET", "timeout", "mismatch",
                                    "EMFILE", "ENFILE", "EADDRNOTAVAIL", "other")
    assert limits.FD_SETSIZE == 1024


def test_what_servers_and_loadgen_emit_is_in_the_vocabulary():
    assert set(ACCEPT_CAPACITY_ERRNOS.values()) <= set(limits.LIMIT_KINDS)
    assert ACCEPT_CAPACITY_ERRNOS[errno.ENOBUFS] == "ENOBUFS"
    errno_kinds = {k for k in limits.FAILURE_KINDS if k.startswith("E")}
    assert errno_kinds - {limits.ECONNRESET} <= set(limits.LIMIT_KINDS)
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
    """The kinds the models pass to ``Stats.refuse`` by name are the vocabulary's
    constants (a variable ``kind`` comes from ``ACCEPT_CAPACITY_ERRNOS``)."""
    used = set()
    for path in (ROOT / "servers").glob("*.py"):
        tree = ast.parse(path.read_text())
        from_limits = {a.asname or a.name: a.name for node in ast.walk(tree)
                       if isinstance(node, ast.ImportFrom) and node.module == "contract.limits"
                       for a in node.names}
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "refuse" and node.args):
                arg = node.args[0]
                assert isinstance(arg, ast.Name), f"{path.name}:{node.lineno}"
                if arg.id != "kind":
                    assert arg.id in from_limits, f"{path.name}:{node.lineno}: {arg.id}"
                    used.add(getattr(limits, from_limits[arg.id]))
    assert used and used <= set(limits.LIMIT_KINDS)
    assert {"FD_SETSIZE", "threads", "pid_max", "crash"} <= used


# -- limit kinds are names, not strings --------------------------------------------------------

# A limit kind's word that names something else on these lines: (file, the
# string, text on its line) -> why it is not a limit kind there.
NOT_A_LIMIT = {
    ("lab/host/limits.py", "pid_max", '"pid_max": "kernel/pid_max"'):
        "the host fact kernel.pid_max (a HostFacts field), read from /proc/sys",
    ("lab/host/doctor.py", "pid_max", "facts.get('pid_max')"):
        "the host fact kernel.pid_max, printed by run-lab doctor",
    ("lab/host/proctree.py", "threads", 'THREADS = "threads"'):
        "the stats field with a custom server's thread count (lab/host/proctree.py)",
}


def _names_something_else(node: ast.Constant, parents: dict) -> bool:
    """True where the AST shows the word is not used as a limit kind: a model
    name given to a ``model`` attribute, a scenario key declared with
    ``Field(...)``, or a field carried under its own name (``{"mismatch":
    self.mismatch}``, ``mismatch=data.get("mismatch")``: a message field)."""
    parent = parents.get(node)
    if isinstance(parent, ast.Assign) and node.value in models.MODELS:
        return all(getattr(t, "id", getattr(t, "attr", None)) == "model" for t in parent.targets)
    if isinstance(parent, ast.Call) and parent.args and parent.args[0] is node:
        func = parent.func
        name = getattr(func, "id", getattr(func, "attr", None))
        if name == "Field":
            return True
        if name == "get" and isinstance(parents.get(parent), ast.keyword):
            return parents[parent].arg == node.value
    if isinstance(parent, ast.Dict) and node in parent.keys:
        value = parent.values[parent.keys.index(node)]
        return isinstance(value, ast.Attribute) and value.attr == node.value
    return False


def bare_limit_kinds(rel: str, source: str) -> list[str]:
    """``file:line: 'kind'`` for each string constant in ``source`` that spells a
    limit or failure kind and is not a docstring, nor a use the AST shows to
    name something else, nor on an allowed line (``NOT_A_LIMIT``)."""
    kinds = set(limits.LIMIT_KINDS) | set(limits.FAILURE_KINDS)
    tree = ast.parse(source, rel)
    lines = source.splitlines()
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef,
                                       ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Constant) and isinstance(node.value, str)
                and node.value in kinds) or id(node) in docstrings:
            continue
        if _names_something_else(node, parents):
            continue
        line = lines[node.lineno - 1]
        if any(f == rel and s == node.value and text in line for f, s, text in NOT_A_LIMIT):
            continue
        found.append(f"{rel}:{node.lineno}: {node.value!r}")
    return sorted(found)


def test_no_bare_limit_kind_outside_contract():
    """lab/, servers/ and loadgen/ name a limit kind by its constant in
    contract/limits.py (``EMFILE``, ``CRASH``, ``FD_SETSIZE_LIMIT``, ...)."""
    found = []
    for top in ("lab", "servers", "loadgen"):
        for path in sorted((ROOT / top).rglob("*.py")):
            rel = str(path.relative_to(ROOT))
            found += bare_limit_kinds(rel, path.read_text())
    assert found == [], ("limit kinds spelled as strings; use contract.limits' constants:\n"
                         + "\n".join(found))


def test_the_bare_limit_check_is_precise():
    """It flags a kind used as a kind, and not a docstring, a comment, a model
    name, a scenario key, a message field or an allowed line."""
    source = '''"""EMFILE in a docstring."""
class Server:
    model = "threads"  # a model name
    def f(self, stats, data):
        """crash: a docstring."""
        stats.refuse("threads", 3)
        Field("backlog", int)
        msg = {"mismatch": self.mismatch, "oom": 1}
        Snapshot(mismatch=data.get("mismatch"), other=data.get("timeout"))
        return "crash"
'''
    assert bare_limit_kinds("servers/x.py", source) == [
        "servers/x.py:10: 'crash'", "servers/x.py:6: 'threads'", "servers/x.py:8: 'oom'",
        "servers/x.py:9: 'timeout'"]
    allowed = "facts = {}\nprint(facts.get('pid_max'))\nkind = 'pid_max'\n"
    assert bare_limit_kinds("lab/host/doctor.py", allowed) == ["lab/host/doctor.py:3: 'pid_max'"]


def test_no_contract_name_is_imported_under_another_name():
    """A contract name reads the same everywhere: no ``import X as Y`` from
    contract/, and no module-level ``Y = X`` alias of a contract name."""
    found = []
    for top in ("lab", "servers", "loadgen"):
        for path in sorted((ROOT / top).rglob("*.py")):
            tree = ast.parse(path.read_text())
            imported = set()
            for node in tree.body:
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("contract"):
                    for a in node.names:
                        imported.add(a.asname or a.name)
                        if a.asname and a.asname != a.name:
                            found.append(f"{path.relative_to(ROOT)}:{node.lineno}: "
                                         f"{a.name} as {a.asname}")
            for node in tree.body:
                if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Name)
                        and node.value.id in imported):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}: "
                                 f"{ast.unparse(node)}")
    assert found == []


def test_the_defaults_are_what_the_servers_and_the_load_parse():
    """A server or a Locust run started by hand gets the scenario's defaults."""
    server = build_parser().parse_args(["epoll"])
    spec = ServerSpec(name="epoll", model="epoll")
    assert (server.backlog, server.on_fd_limit, server.work_us, server.processes) == (
        spec.limits.backlog, spec.on_fd_limit, spec.work_us, spec.processes) == (
        1024, "refuse", 0, 1)
    assert server.workers == defaults.THREADPOOL_WORKERS == 32
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    ns = parser.parse_args([])
    load = LoadSpec()
    assert (ns.message_size, ns.pace, ns.connect_timeout, ns.io_timeout, ns.step_spawn_rate,
            ns.schedule, ns.active_users, ns.worker_timeout) == (
        load.message_size, load.pace_s, load.connect_timeout_s, load.io_timeout_s,
        load.spawn_rate, load.schedule, load.active_users, load.worker_timeout_s) == (
        64, 1.0, 5.0, 5.0, 500.0, "closed", 0, 11.0)
    assert LoadOptions.from_parsed(ns) == LoadOptions()
