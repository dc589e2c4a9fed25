"""The CLI in-process: exit codes, messages, subcommands (no servers started)."""

from __future__ import annotations

from paths import ROOT

from lab import cli
from lab.host.doctor import doctor_text, load_ceiling, server_ceilings
from lab.host.workers import PER_WORKER_COMFORT
from lab.scenario.loader import load_scenario, parse_scenario

DOCKER_AVAILABLE = "lab.backends.docker.hosts.docker_available"
FACTS = {"nofile_soft": 1024, "nofile_hard": 20000, "file_max": 100000, "nr_open": 1048576,
         "file_nr": "600 0 100000", "pid_max": 4000, "threads_max": 9000, "somaxconn": 4096,
         "ip_local_port_range": "32768 60999", "nproc": None, "mem_total": 2**34,
         "mem_available": 2**33, "cpus": 2}


def test_validate_ok_and_bad(capsys):
    assert cli.main(["validate", str(ROOT / "lab.yaml")]) == 0
    assert "lab.yaml: ok (lab: 3 servers" in capsys.readouterr().out
    bad = ROOT / "tests/data/scenarios/invalid/misspelled_model.yaml"
    assert cli.main(["validate", str(ROOT / "lab.yaml"), str(bad)]) == 2
    assert "servers[2].model: 'epol' is not a model; did you mean 'epoll'?" in \
        capsys.readouterr().err


def test_run_with_invalid_scenario_exits_2_and_creates_nothing(tmp_path, capsys):
    bad = ROOT / "tests/data/scenarios/invalid/external_target.yaml"
    assert cli.main([str(bad), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("run-lab: ") and "hosts[0].address" in err
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_bad_arguments_exit_2(capsys):
    assert cli.main([str(ROOT / "lab.yaml"), "--backend", "kubernetes"]) == 2
    assert "--backend" in capsys.readouterr().err
    assert cli.main([str(ROOT / "lab.yaml"), "--models", "epol", "--backend", "local"]) == 2
    assert "did you mean 'epoll'" in capsys.readouterr().err
    assert cli.main([]) == 2


def test_help_exits_0(capsys):
    assert cli.main(["--help"]) == 0
    assert "validate, doctor, clean" in capsys.readouterr().out


def test_traceback_only_on_request(monkeypatch, capsys):
    def boom(argv):
        raise RuntimeError("kaput")
    monkeypatch.setitem(cli.COMMANDS, "doctor", boom)
    assert cli.main(["doctor"]) == 1
    err = capsys.readouterr().err
    assert "internal error: RuntimeError: kaput" in err and "Traceback" not in err
    assert cli.main(["doctor", "--traceback"]) == 1
    assert "Traceback" in capsys.readouterr().err


def test_keyboard_interrupt_is_130(monkeypatch, capsys):
    def interrupted(argv):
        raise KeyboardInterrupt
    monkeypatch.setitem(cli.COMMANDS, "clean", interrupted)
    assert cli.main(["clean"]) == 130


def test_doctor_in_process(monkeypatch, capsys):
    monkeypatch.setattr(DOCKER_AVAILABLE, lambda *a: (False, "no daemon"))
    assert cli.main(["doctor", str(ROOT / "lab.yaml"), "--backend", "local"]) == 0
    out = capsys.readouterr().out
    for word in ("open files (nofile)", "fs.file-max", "port range", "somaxconn", "pid_max",
                 "memory", "Docker                 not reachable: no daemon", "select",
                 "FD_SETSIZE", "epoll"):
        assert word in out


def test_doctor_ceilings_name_the_binding_limit():
    scenario = load_scenario(ROOT / "lab.yaml")
    text = doctor_text(scenario, (True, "Docker 20"), ("local",), facts=FACTS)
    select_line = next(line for line in text.splitlines() if line.strip().startswith("select"))
    # 1024 less the 5 descriptors select holds itself: what the golden run measured
    assert "~1019" in select_line and "FD_SETSIZE" in select_line and "stops before" in select_line
    epoll_line = next(line for line in text.splitlines() if line.strip().startswith("epoll"))
    assert "~19994" in epoll_line and "reaches the top step" in epoll_line
    threads = parse_scenario("servers: [threads]\nload: {steps: [10]}\n", "t.yaml").servers[0]
    assert min(server_ceilings(threads, FACTS), key=lambda c: c.connections).limit == "threads"
    load_line = next(line for line in text.splitlines() if "of them paced" in line)
    assert f"at most {PER_WORKER_COMFORT} of them paced" in load_line  # the lab's plan
    small_ports = {**FACTS, "ip_local_port_range": "60000 60999"}
    assert load_ceiling(scenario, small_ports, "docker").limit == "EADDRNOTAVAIL"


def test_report_subcommand_is_delegated(monkeypatch):
    seen = []
    monkeypatch.setitem(cli.COMMANDS, "report", cli._delegate("json", "loads"))
    assert cli.main(["report", "x"]) == 1  # json.loads(list) -> TypeError -> internal error
    monkeypatch.setitem(cli.COMMANDS, "report", lambda argv: seen.append(argv) or 0)
    assert cli.main(["report", "some/run"]) == 0 and seen == [["some/run"]]
    assert cli.main(["compare"]) == 2  # wired to lab.analysis.compare, which wants two runs


def test_clean_without_docker_removes_stale_local_temp_dirs(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(DOCKER_AVAILABLE, lambda *a: (False, "no daemon"))
    monkeypatch.setattr("tempfile.gettempdir", lambda: str(tmp_path))
    stale = tmp_path / "iolab-local-abc"
    stale.mkdir()
    (stale / "x.steps.jsonl").write_text("{}\n")
    assert cli.main(["clean"]) == 0
    assert not stale.exists()
    assert "local: no Docker daemon; nothing to clean there" in capsys.readouterr().out


def test_auto_backend_falls_back_to_local_with_a_notice(monkeypatch):
    import io

    from lab.backends.local import LocalBackend
    from lab.run.live import LiveView

    monkeypatch.setattr(DOCKER_AVAILABLE, lambda *a: (False, "no daemon here"))
    stream = io.StringIO()
    scenario = load_scenario(ROOT / "lab.yaml")
    backend = cli.choose_backend(scenario, "auto", LiveView(stream, tty=False))
    try:
        assert isinstance(backend, LocalBackend)
    finally:
        backend.cleanup()
    assert stream.getvalue() == "iolab: using the local backend: no daemon here\n"
