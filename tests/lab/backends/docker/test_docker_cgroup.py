"""A custom server's container measured from its cgroup (lab/backends/docker/container_io.py)."""

from __future__ import annotations

from types import SimpleNamespace

from lab.backends.docker.container_io import CgroupEvents, cgroup_stats
from lab.backends.docker.handles import DockerServerHandle
from lab.scenario.types import ServerSpec

RAW = {
    "cpu_stats": {"cpu_usage": {"total_usage": 3_500_000_000, "usage_in_usermode": 2_000_000_000,
                                "usage_in_kernelmode": 1_500_000_000}},
    "memory_stats": {"usage": 50_000_000, "stats": {"inactive_file": 8_000_000}},
    "pids_stats": {"current": 4012},
}


class FakeContainer:
    name = "iolab-relay"

    def __init__(self, samples):
        self.samples = list(samples)
        self.attrs = {"State": {"Pid": 0}}  # no local pid: the namespace cannot be read
        self.client = SimpleNamespace(api=SimpleNamespace(base_url="tcp://10.0.0.1:2375"))

    def stats(self, stream: bool, one_shot: bool):
        assert not stream and one_shot
        if not self.samples:
            raise RuntimeError("gone")
        return self.samples.pop(0)


class FakeFollower:
    final = None

    def drain(self):
        return []

    def join(self, timeout=None):
        pass


def test_cgroup_stats_are_the_trees_cpu_memory_and_tasks():
    fields = cgroup_stats(RAW, 17)
    assert (fields["cpu_user_s"], fields["cpu_sys_s"]) == (2.0, 1.5)
    assert fields["rss_bytes"] == 42_000_000  # usage less the inactive file cache
    assert fields["threads"] == 4012 and fields["connections"] == 17
    assert fields["processes"] is None and fields["fds"] is None
    v1 = {**RAW, "memory_stats": {"usage": 10, "stats": {"total_inactive_file": 4}}}
    assert cgroup_stats(v1, None)["rss_bytes"] == 6


def test_events_are_marked_and_stop_with_the_container():
    events = []
    sampler = CgroupEvents(FakeContainer([RAW, {"memory_stats": {}}]), events.append,
                           lambda: 3, interval=0)
    sampler.run()  # the second sample is a stopped container's: the loop ends
    assert [(e["event"], e["source"], e["connections"]) for e in events] == [
        ("stats", "docker", 3)]


def test_a_custom_server_handle_queues_its_cgroup_events():
    spec = ServerSpec(name="relay", command=("./relay",), port=9100)
    container = FakeContainer([RAW] * 1000)
    handle = DockerServerHandle(spec, container, FakeFollower(), "198.18.0.2", 9100, {})
    try:
        assert handle.sampler is not None
        for _ in range(100):
            events = handle.poll_events()
            if events:
                break
            handle.sampler.halt.wait(0.02)
        assert events[0]["source"] == "docker"
        assert events[0]["connections"] is None  # a remote daemon: its namespace is not here
    finally:
        handle.sampler.stop()
    built_in = DockerServerHandle(ServerSpec(name="epoll", model="epoll"), container,
                                  FakeFollower(), "198.18.0.2", 9000, {})
    assert built_in.sampler is None and built_in.poll_events() == []
