"""Clients that are not fast loopback ones (issue 19), without a server: the
options' bounds, the groups spec, the size and pace distributions, the group
meters and their merge."""

from __future__ import annotations

import argparse
import random
import statistics

import pytest

from loadgen.client import TcpClient
from loadgen.groups import Tee, add_groups_argument, group_options, groups_in_argv, parse_groups
from loadgen.meter import Meter, merge
from loadgen.options import MAX_MESSAGE_SIZE, LoadOptions, add_arguments
from loadgen.schedule import Schedule, pace_gaps
from loadgen.users import ChurnUser, EchoUser, IdleUser, group_classes

pytestmark = pytest.mark.locust  # imports Locust (gevent patches the stdlib); loads nothing


def parse(*args: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(exit_on_error=False)
    add_arguments(parser)
    add_groups_argument(parser)
    return parser.parse_args(list(args))


def test_client_options_reach_the_load_options():
    opts = LoadOptions.from_parsed(parse(
        "--send-chunk", "1", "--send-gap", "0.5", "--recv-buffer", "4096",
        "--read-chunk", "100", "--read-gap", "0.002", "--message-size", "1048576",
        "--message-size-median", "512", "--message-size-max", "65536",
        "--pace-dist", "exponential"))
    assert (opts.send_chunk, opts.send_gap_s, opts.recv_buffer) == (1, 0.5, 4096)
    assert (opts.read_chunk, opts.read_gap_s, opts.pace_dist) == (100, 0.002, "exponential")
    assert opts.message_size == MAX_MESSAGE_SIZE and opts.sizes_vary
    assert opts.largest_message == 65536
    defaults = LoadOptions.from_parsed(parse())
    assert defaults == LoadOptions() and not defaults.sizes_vary
    assert defaults.largest_message == defaults.message_size


@pytest.mark.parametrize("args", [
    ("--message-size", "1048577"), ("--message-size", "0"), ("--recv-buffer", "1023"),
    ("--send-gap", "-1"), ("--read-gap", "-0.1"), ("--send-chunk", "-1"),
    ("--pace-dist", "poisson"), ("--message-size-max", "2000000"),
    ("--groups", '[{"name": "a"}, {"name": "a"}]'),
])
def test_bad_client_options_are_refused(args):
    with pytest.raises(argparse.ArgumentError):
        parse(*args)


@pytest.mark.parametrize(("spec", "names"), [
    ('[{"name": "a", "weight": 0}]', "weight"),
    ('[{"name": "a", "weight": 1.5}]', "weight"),
    ('[{"name": "a"}, {"name": "a"}]', "used twice"),
    ('[{"name": "a", "user": "fast"}]', "user"),
    ('[{"name": "a", "send_chunk": 0}]', "send_chunk"),
    ('[{"name": "a", "read_chunk": 0}]', "read_chunk"),
    ('[{"name": "a", "send_gap": -1}]', "send_gap"),
    ('[{"name": "a", "recv_buffer": 512}]', "recv_buffer"),
    ('[{"name": "a", "message_size": 1048577}]', "message_size"),
    ('[{"name": "a", "sned_gap": 1}]', "unknown key"),
    ('[{"name": "a b"}]', "name"),
    ('{"name": "a"}', "list"),
    ("[", "JSON"),
])
def test_bad_groups_name_the_key(spec, names):
    with pytest.raises(ValueError, match=names):
        parse_groups(spec)


def test_groups_override_the_base_options_and_become_weighted_classes():
    groups = parse_groups('[{"name": "fast", "weight": 2, "user": "churn"},'
                          ' {"name": "slow", "weight": 1, "send_chunk": 1, "send_gap": 0.5,'
                          '  "pace": 0.25, "message_size": 128},'
                          ' {"name": "quiet", "user": "idle"}]')
    base = LoadOptions(pace_s=1.0)
    slow = group_options(base, groups[1])
    assert (slow.send_chunk, slow.send_gap_s, slow.pace_s, slow.message_size) == (1, 0.5, 0.25, 128)
    assert group_options(base, groups[0]) == base
    classes = group_classes(groups)
    assert list(classes) == ["Group_fast", "Group_slow", "Group_quiet"]
    fast, slow_cls, quiet = classes.values()
    assert issubclass(fast, ChurnUser) and issubclass(slow_cls, EchoUser)
    assert issubclass(quiet, IdleUser)
    assert (fast.weight, slow_cls.weight, quiet.weight) == (2, 1, 1)
    assert slow_cls.group["name"] == "slow" and EchoUser.group is None


def test_groups_are_read_from_the_command_line_before_locust_parses_it():
    spec = '[{"name": "x", "weight": 3}]'
    assert groups_in_argv(["locust", "-f", "f.py", "--groups", spec])[0]["weight"] == 3
    assert groups_in_argv(["locust", f"--groups={spec}"])[0]["name"] == "x"
    assert groups_in_argv(["locust"]) == ()
    assert groups_in_argv(["locust", "--groups", "[{"]) == ()  # the parser refuses it later


def test_log_normal_sizes_stay_under_max_with_the_asked_median():
    opts = LoadOptions(message_size_median=512, message_size_max=65536)
    client = TcpClient(("127.0.0.1", 1), opts, Meter(), lambda **_: None,
                       rng=random.Random(7))
    sizes = [client.next_size() for _ in range(20000)]
    assert max(sizes) <= 65536 and min(sizes) >= 1
    assert 480 <= statistics.median(sizes) <= 545
    assert max(sizes) > 8 * 512  # a distribution, not the median every time
    assert len(client._buf) == 65536


def test_fixed_sizes_draw_nothing():
    client = TcpClient(("127.0.0.1", 1), LoadOptions(message_size=64), Meter(),
                       lambda **_: None)
    assert {client.next_size() for _ in range(100)} == {64}


def test_exponential_pace_has_the_mean_of_the_pace():
    gap = pace_gaps(0.2, "exponential", random.Random(3))
    gaps = [gap() for _ in range(40000)]
    assert statistics.fmean(gaps) == pytest.approx(0.2, rel=0.03)
    assert statistics.pstdev(gaps) == pytest.approx(0.2, rel=0.05)  # exponential: sd = mean
    assert {pace_gaps(0.2, "fixed", random.Random(3))() for _ in range(10)} == {0.2}
    schedule = Schedule(0.2, False, 0.0, gap)
    schedule.advance(10.0)
    assert schedule.due > 10.0


def test_a_tee_records_into_the_total_and_the_group():
    total = Meter()
    group = total.group("slow")
    tee = Tee(total, group)
    tee.connect_started()
    tee.phases.connect_ok(0.001)
    tee.opened()
    tee.echo_ok(0.002)
    tee.failed("timeout")
    Tee(total, total.group("fast")).echo_ok(0.004)
    assert total.connected == group.connected == 1
    assert total.histogram.get_total_count() == 2 and group.histogram.get_total_count() == 1
    assert total.failures == group.failures == {"timeout": 1}


def test_a_tee_passes_keywords_so_a_group_closes_its_connections():
    """``TcpClient.close`` calls ``meter.closed(served=...)``: a group's
    churn user closes after every echo, and a keyword the tee dropped raised
    TypeError there (lost its failures, and ``connected`` only ever grew)."""
    total = Meter()
    group = total.group("fast")
    tee = Tee(total, group)
    tee.opened()
    tee.served()
    tee.closed(served=True)
    assert total.connected == group.connected == 0
    assert total.serving == group.serving == 0


def test_group_records_merge_exactly_across_processes():
    shares = []
    for latencies in ((0.001, 0.002), (0.003, 0.010, 0.020)):
        meter = Meter()
        meter.group("fast").users = len(latencies)
        for lat in latencies:
            Tee(meter, meter.group("fast")).echo_ok(lat)
        Tee(meter, meter.group("slow")).connect_failed("ECONNREFUSED")
        shares.append(meter.snapshot(users=len(latencies) + 1))
    record = merge(shares)
    fast, slow = record["groups"]["fast"], record["groups"]["slow"]
    assert fast["echo_count"] == 5 == record["echo_count"]
    assert fast["users"] == 5 and fast["max_ms"] == record["max_ms"] == pytest.approx(20, rel=1e-3)
    assert fast["p50_ms"] == pytest.approx(3.0, rel=1e-3)
    assert slow["connect_failures"] == {"ECONNREFUSED": 2} == record["connect_failures"]
    assert slow["echo_count"] == 0 and slow["p99_ms"] is None
    assert "worker_shares" not in fast and "loadgen_cpu_max" not in fast
    assert "groups" not in merge([Meter().snapshot(users=0)])


def test_group_shares_travel_inside_the_process_share():
    from loadgen.meter import Snapshot

    meter = Meter()
    Tee(meter, meter.group("slow")).echo_ok(0.5)
    snap = Snapshot.from_message(meter.snapshot(users=1).to_message())
    assert set(snap.groups) == {"slow"}
    assert snap.groups["slow"].histogram.get_total_count() == 1
    assert snap.groups["slow"].window_s == snap.window_s  # the process's window: rates add up
    assert meter.group("slow").histogram.get_total_count() == 0  # the next step starts clean
