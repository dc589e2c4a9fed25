"""The run network's subnet avoids the host's own routed subnets."""

from __future__ import annotations

import ipaddress

from lab.backends.docker.network import candidate_subnets, route_subnets

ROUTES = """\
Iface	Destination	Gateway 	Flags	RefCnt	Use	Metric	Mask		MTU	Window	IRTT
eth0	00000000	010200C0	0003	0	0	0	00000000	0	0	0
veth1	00FA12C6	00000000	0001	0	0	0	00FFFFFF	0	0	0
docker0	000011AC	00000000	0001	0	0	0	0000FFFF	0	0	0
"""


def test_routes_are_read_from_the_kernel_table(tmp_path):
    path = tmp_path / "route"
    path.write_text(ROUTES)
    assert route_subnets(str(path)) == [ipaddress.ip_network("198.18.250.0/24"),
                                        ipaddress.ip_network("172.17.0.0/16")]
    assert route_subnets(str(tmp_path / "missing")) == []


def test_a_subnet_on_a_hosts_link_is_never_a_candidate(tmp_path):
    link = ipaddress.ip_network("198.18.250.0/24")
    run_id = next(r for r in (f"run{i}" for i in range(5000))
                  if candidate_subnets(r, [])[0] == link)  # this run would have started there
    assert link not in candidate_subnets(run_id, [link])
    assert candidate_subnets(run_id, [link])[0] == ipaddress.ip_network("198.18.251.0/24")
