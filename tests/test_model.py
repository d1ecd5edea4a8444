"""Range expansion, defaults and rollout batches: pure units on the model."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from provision import spec
from provision.model import ExecutionNode, Mode, Network, Role, Rollout
from provision.plan import make_plan
from provision.rules import expand_range

ROOT = Path(__file__).resolve().parent.parent


def test_expand_range_keeps_width() -> None:
    assert expand_range("ws[001:003]") == ["ws001", "ws002", "ws003"]
    assert expand_range("[8:10]x") == ["8x", "9x", "10x"]
    assert expand_range("ws1") is None


def test_branch_office_model() -> None:
    net = spec.load_network(ROOT / "inventories" / "branch-office.yml")
    assert net.mode is Mode.DOMAIN and net.domain is not None
    assert net.domain.dcs == ("dc1", "dc2")
    assert net.domain.dns_domain == "ad.branch.example.com"
    ws = [h for h in net.hosts if h.role is Role.WORKSTATION]
    assert [h.name for h in ws[:2]] == ["ws01", "ws02"] and ws[-1].name == "ws40"
    assert ws[0].address == "10.20.1.10" and ws[-1].address == "10.20.1.49"
    assert ws[0].range_name == "ws[01:40]"
    fs1 = net.host("fs1")
    assert [s.name for s in fs1.shares] == ["projects", "finance", "public"]  # network-wide share merged
    assert fs1.client == "winbind"
    public = fs1.shares[-1]
    assert public.read_only and public.write_list == ("@engineering",) and public.group == "staff"
    assert net.policies.firewall.allow_from == ("10.20.0.0/16",)  # defaults to the subnets


def test_campus_explicit_address_range() -> None:
    net = spec.load_network(ROOT / "inventories" / "campus.yml")
    lab = [h for h in net.hosts if h.name.startswith("lab")]
    assert len(lab) == 1200 and lab[0].address == "10.40.10.1" and lab[-1].address == "10.40.14.176"
    assert net.host("lib0001").client == "winbind"


def test_rollout_batches_dcs_one_at_a_time() -> None:
    net = spec.load_network(ROOT / "inventories" / "branch-office.yml")
    batches = make_plan(net).batches
    assert [b.hosts for b in batches[:2]] == [("dc1",), ("dc2",)]
    ws_batches = [b for b in batches if b.roles == (Role.WORKSTATION,)]
    assert len(ws_batches) == 4 and all(len(b.hosts) == 10 for b in ws_batches)
    # The servers' stage (side by side, one play) comes before the workstations.
    stages = [b.roles for b in batches]
    servers = (Role.FILE_SERVER, Role.MAIL_SERVER, Role.DATABASE_SERVER)
    assert stages.index(servers) < stages.index((Role.WORKSTATION,))
    assert make_plan(net).to_dict()["rollout"]["steps"][2]["role"] == "file_server+mail_server+database_server"


def test_model_is_frozen() -> None:
    net = spec.load_network(ROOT / "inventories" / "lab-workgroup.yml")
    with pytest.raises(AttributeError):
        net.hosts[0].name = "x"  # type: ignore[misc]


def test_valid_spec_has_no_line_work(tmp_path: Path) -> None:
    """Plaintext secrets are rejected with a fix, not accepted."""
    p = tmp_path / "s.yml"
    p.write_text(
        "network: {name: x, mode: workgroup, subnets: [10.0.0.0/24]}\n"
        "users: [{name: al, password: hunter2}]\n"
        "hosts: [{name: a, address: 10.0.0.5, role: peer}]\n"
    )
    r = spec.check(p)
    assert [(e.path, e.line) for e in r.errors] == [("users[0].password", 2)]
    assert "{env: VARIABLE}" in r.errors[0].message


def test_operator_connection_overrides_the_spec() -> None:
    from pathlib import Path

    from provision import spec

    net = spec.load_network(Path(__file__).resolve().parent.parent / "inventories" / "lab-workgroup.yml")
    assert net.with_connection() == net
    mine = net.with_connection(known_hosts_file="/ci/known_hosts")
    assert mine.ssh.known_hosts_file == "/ci/known_hosts"
    assert mine.ssh.identity_file == net.ssh.identity_file
    assert net.with_connection(identity_file="/ci/key").ssh.identity_file == "/ci/key"


def _plan_steps(net: Network) -> list[tuple[str, str]]:
    """(role label, hosts) of each rollout step, as plan prints them."""
    return [(b.role, ", ".join(b.hosts)) for b in make_plan(net).batches]


def test_rollout_stages_roll_roles_out_side_by_side() -> None:
    """A list in rollout.order is one stage: one play, batches that mix its roles."""
    net = spec.load_network(ROOT / "tests" / "data" / "valid" / "rollout-stages.yml")
    assert net.rollout.order == ((Role.DOMAIN_CONTROLLER,), (Role.FILE_SERVER, Role.WORKSTATION), (Role.MAIL_SERVER,))
    assert _plan_steps(net) == [
        ("domain_controller", "dc1"),
        ("file_server+workstation", "fs1, ws01, ws02"),
        ("file_server+workstation", "ws03, ws04"),
        ("mail_server", "mx1"),
    ]


def test_a_stage_is_labelled_by_the_roles_it_has_hosts_for(tmp_path: Path) -> None:
    net = spec.load_network(ROOT / "inventories" / "lab-domain.yml")
    assert _plan_steps(net) == [
        ("domain_controller", "dc1"),
        ("domain_controller", "dc2"),
        ("file_server+mail_server+database_server", "fs1, mx1, db1"),
        ("workstation", "ws1, ws2"),
    ]
    # Without a database server, its role is not in the stage's label.
    data = yaml.safe_load((ROOT / "inventories" / "lab-domain.yml").read_text())
    data["hosts"] = [h for h in data["hosts"] if h["name"] != "db1"]
    (tmp_path / "spec.yml").write_text(yaml.safe_dump(data))
    assert ("file_server+mail_server", "fs1, mx1") in _plan_steps(spec.load_network(tmp_path / "spec.yml"))


def test_execution_nodes_in_the_model() -> None:
    net = spec.load_network(ROOT / "inventories" / "campus-nodes.yml")
    assert net.rollout.execution_nodes == (ExecutionNode("exec1", "10.50.0.201"), ExecutionNode("exec2", "10.50.0.202"))
    assert len([h for h in net.hosts if h.role is Role.WORKSTATION]) == 200
    assert not {n.name for n in net.rollout.execution_nodes} & {h.name for h in net.hosts}


def test_execution_nodes_default_to_none() -> None:
    assert Rollout().execution_nodes == ()
    net = spec.load_network(ROOT / "inventories" / "branch-office.yml")
    assert net.rollout.execution_nodes == ()
    text = _NODES_BASE + "rollout: {execution_nodes: []}\n"
    result = spec.check_text(text, "x")
    assert result.network is not None and result.network.rollout.execution_nodes == ()


_NODES_BASE = (
    "network: {name: office, mode: workgroup, subnets: [192.168.10.0/24]}\n"
    "hosts:\n  - {name: pc1, address: 192.168.10.11, role: peer}\n"
    "  - {name: 'pc[2:9]', address: 192.168.10.12+, role: peer}\n"
)


@pytest.mark.parametrize(
    ("policies", "address"),
    [
        ("", "192.168.10.50"),  # inside the subnets, the firewall's default sources
        ("policies: {firewall: {allow_from: []}}\n", "192.168.10.50"),  # empty: the subnets too
        ("policies: {firewall: {allow_from: [192.168.10.0/24, 10.9.0.0/16]}}\n", "10.9.3.5"),
        ("policies: {firewall: {enabled: false}}\n", "172.16.0.5"),  # no firewall: no sources to be inside of
    ],
)
def test_execution_node_addresses_the_firewall_admits(policies: str, address: str) -> None:
    text = _NODES_BASE + policies + f"rollout: {{execution_nodes: [{{name: exec1, address: {address}}}]}}\n"
    result = spec.check_text(text, "x")
    assert result.errors == []
    assert result.network is not None
    assert result.network.rollout.execution_nodes == (ExecutionNode("exec1", address),)


@pytest.mark.parametrize(
    ("policies", "address", "message"),
    [
        ("", "192.168.20.5", "the hosts' firewall would refuse SSH from this execution node"),
        ("policies: {firewall: {allow_from: [10.9.0.0/16]}}\n", "192.168.10.50", "(10.9.0.0/16: policies.firewall"),
        ("policies: {firewall: {enabled: false}}\n", "192.168.10.0", "network or broadcast address of 192.168.10.0/24"),
        ("policies: {firewall: {allow_from: [10.9.0.0/16]}}\n", "10.9.255.255", "broadcast address of 10.9.0.0/16"),
        ("", "192.168.10.13", "the address of host 'pc3' (hosts[1], range 'pc[2:9]')"),
    ],
)
def test_execution_node_addresses_refused(policies: str, address: str, message: str) -> None:
    text = _NODES_BASE + policies + f"rollout: {{execution_nodes: [{{name: exec1, address: {address}}}]}}\n"
    result = spec.check_text(text, "x")
    assert result.network is None
    line = text.count("\n")  # the last line holds the node
    assert [(p.path, p.line) for p in result.errors] == [("rollout.execution_nodes[0].address", line)], result.errors
    assert message in result.errors[0].message


@pytest.mark.parametrize(
    ("name", "message"),
    [("pc7", "is the name of a host (hosts[1], range 'pc[2:9]')"), ("wpad", "WPAD"), ("all", "Ansible inventory")],
)
def test_execution_node_names_refused(name: str, message: str) -> None:
    text = _NODES_BASE + f"rollout: {{execution_nodes: [{{name: {name}, address: 192.168.10.50}}]}}\n"
    result = spec.check_text(text, "x")
    assert [p.path for p in result.errors] == ["rollout.execution_nodes[0].name"]
    assert message in result.errors[0].message
