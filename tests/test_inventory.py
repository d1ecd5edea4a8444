"""Model -> inventory for every example spec: pure, unmocked."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from provision import policy, spec
from provision.inventory import build_inventory, write_inventory
from provision.model import Role
from provision.selection import SelectionError
from provision.selection import select as select_hosts

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "inventories").glob("*.yml"))


def _groups(inv: dict) -> dict:
    (mode_group,) = inv["all"]["children"].values()
    return mode_group["children"]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_host_lands_in_its_role_group_once(path: Path) -> None:
    net = spec.load_network(path)
    inv = build_inventory(net)
    groups = _groups(inv)
    seen = [name for g in groups.values() for name in g["hosts"]]
    assert sorted(seen) == sorted(h.name for h in net.hosts)
    for role, group in groups.items():
        extra = {"provision_policy_directory": policy.directory(net)} if role == "domain_controller" else {}
        assert group["vars"] == {"provision_role": role} | extra
        for name, hv in group["hosts"].items():
            assert net.host(name).role.value == role
            assert hv["ansible_host"] == net.host(name).address
    mode_group = next(iter(inv["all"]["children"]))
    assert mode_group == net.mode.value
    text = yaml.safe_dump(inv)
    assert "password" not in text.replace("provision_password_policy", "")  # no secrets, only references' absence


def test_ranges_repeat_nothing_but_the_address() -> None:
    net = spec.load_network(ROOT / "inventories" / "campus.yml")
    inv = build_inventory(net)
    ws = _groups(inv)["workstation"]["hosts"]
    assert len(ws) == 2400
    assert ws["lab0001"] == {"ansible_host": "10.40.10.1"}
    assert ws["lib0001"] == {"ansible_host": "10.41.1.1", "provision_client": "winbind"}
    all_vars = inv["all"]["vars"]
    assert all_vars["provision_domain_realm"] == "AD.CAMPUS.EXAMPLE.EDU"
    assert [d["name"] for d in all_vars["provision_domain_dcs"]] == ["dc1", "dc2", "dc3"]
    assert all_vars["provision_static_hosts"] == [
        {"name": "dc1", "address": "10.40.0.11"}, {"name": "dc2", "address": "10.40.0.12"},
        {"name": "dc3", "address": "10.40.0.13"},
    ]
    assert all_vars["provision_smb_signing"] == "mandatory"


def test_workgroup_vars_and_shares() -> None:
    net = spec.load_network(ROOT / "inventories" / "lab-workgroup.yml")
    inv = build_inventory(net)
    peers = _groups(inv)["peer"]["hosts"]
    assert [s["name"] for s in peers["peer1"]["provision_shares"]] == ["projects", "handbook"]
    assert peers["peer3"]["provision_homes"] is True
    assert peers["peer2"]["provision_printers"][0]["name"] == "office-pdf"
    v = inv["all"]["vars"]
    assert v["provision_workgroup"] == "LABWG"
    assert len(v["provision_static_hosts"]) == 3
    assert "StrictHostKeyChecking=yes" in v["ansible_ssh_common_args"]
    assert "UserKnownHostsFile=/var/lib/provision/lab/known_hosts" in v["ansible_ssh_common_args"]


def test_limit_builds_only_the_targets() -> None:
    net = spec.load_network(ROOT / "inventories" / "campus.yml")
    inv = build_inventory(net, select_hosts(net, ["lab0042"]))
    groups = _groups(inv)
    assert list(groups) == ["workstation"] and list(groups["workstation"]["hosts"]) == ["lab0042"]
    with pytest.raises(SelectionError, match="nope"):
        select_hosts(net, ["nope"])


def test_written_inventory_works_with_plain_ansible(tmp_path: Path) -> None:
    net = spec.load_network(ROOT / "inventories" / "branch-office.yml")
    write_inventory(net, tmp_path)
    out = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-inventory"), "-i", str(tmp_path), "--list"],
        capture_output=True, text=True, check=True,
    )
    import json

    listed = json.loads(out.stdout)
    assert len(listed["workstation"]["hosts"]) == 40
    # Every string reaches Ansible marked unsafe (ansible-inventory shows the mark).
    assert listed["_meta"]["hostvars"]["ws01"]["provision_role"] == {"__ansible_unsafe": "workstation"}
    assert listed["_meta"]["hostvars"]["ws01"]["provision_domain_netbios"] == {"__ansible_unsafe": "BRANCH"}
    assert set(listed["domain"]["children"]) == {r.value for r in Role if r is not Role.PEER}


def test_each_role_has_a_play_and_site_imports_them_in_the_default_order() -> None:
    from provision.inventory import PLAYS, rollout_playbook
    from provision.model import DEFAULT_ORDER, Rollout

    assert set(PLAYS) == set(Role)
    for role, name in PLAYS.items():
        plays = yaml.safe_load((ROOT / "playbooks" / name).read_text())
        assert len(plays) == 1 and role.value in plays[0]["hosts"], name
    # site.yml is the rollout of the default order, stage for stage.
    site = yaml.safe_load((ROOT / "playbooks" / "site.yml").read_text())
    network = spec.load_network(ROOT / "inventories" / "lab-domain.yml")
    assert network.rollout.order == DEFAULT_ORDER[:3] and Rollout().order == DEFAULT_ORDER
    import dataclasses

    every = dataclasses.replace(network, rollout=Rollout())
    steps = rollout_playbook(every, ROOT / "playbooks")
    assert [(p["ansible.builtin.import_playbook"], p.get("vars")) for p in site] == [
        (Path(s["ansible.builtin.import_playbook"]).name, s.get("vars")) for s in steps
    ]


def _list_hosts(playbook: Path, inventory: Path) -> list[tuple[str, list[str]]]:
    """(play name, hosts) of each play, as ansible-playbook --list-hosts resolves them."""
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "--list-hosts", "-i", str(inventory), str(playbook)],
        capture_output=True, text=True, check=False, cwd=ROOT / "playbooks",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    plays: list[tuple[str, list[str]]] = []
    for line in proc.stdout.splitlines():
        line = line.strip()
        if line.startswith("play #"):
            plays.append((line.split(": ", 1)[1].split("\tTAGS")[0].strip(), []))
        elif plays and line and not line.startswith(("pattern:", "hosts (")):
            plays[-1][1].append(line)
    return plays


def test_apply_follows_the_spec_rollout_order(tmp_path: Path) -> None:
    import dataclasses

    from provision.inventory import PLAYS, rollout_playbook

    network = spec.load_network(ROOT / "inventories" / "lab-domain.yml")
    order = ((Role.DOMAIN_CONTROLLER,), (Role.WORKSTATION, Role.FILE_SERVER), (Role.MAIL_SERVER,))
    custom = dataclasses.replace(network, rollout=dataclasses.replace(network.rollout, order=order))
    steps = rollout_playbook(custom, ROOT / "playbooks")
    assert [Path(s["ansible.builtin.import_playbook"]).name for s in steps] == [PLAYS[s[0]] for s in order]
    assert [s.get("vars", {}).get("provision_stage") for s in steps] == [None, "workstation:file_server", "mail_server"]
    # ansible-playbook takes the generated file as it is, and each stage's play
    # targets exactly the stage's hosts (one play for the side-by-side roles).
    pb = tmp_path / "rollout.yml"
    pb.write_text(yaml.safe_dump(steps, sort_keys=False))
    write_inventory(custom, tmp_path / "inventory")
    plays = _list_hosts(pb, tmp_path / "inventory" / "hosts.yml")
    assert [(name, sorted(hosts)) for name, hosts in plays] == [
        ("Domain controllers", ["dc1", "dc2"]),
        ("Workstations and file servers", ["fs1", "ws1", "ws2"]),
        ("Mail servers", ["mx1"]),
    ]


def test_engine_settings_are_settings_ansible_knows(tmp_path: Path) -> None:
    """A misspelt ANSIBLE_* name is silently ignored by ansible-core (ANSIBLE_INTERPRETER_PYTHON
    once left interpreter discovery running on every host, every run): each environment
    name and each key of the written ansible.cfg must be one ansible-core or its ssh
    connection plugin declares, and the file must resolve to our values."""
    import configparser

    from ansible import constants
    from ansible.config.manager import ConfigManager
    from ansible.plugins.loader import connection_loader

    from provision.inventory import ansible_settings

    connection_loader.get("ssh", class_only=True)  # loads the plugin's option definitions
    definitions = [
        *constants.config.get_configuration_definitions().values(),
        *constants.config.get_configuration_definitions("connection", "ssh").values(),
    ]
    env_names = {env["name"] for d in definitions for env in d.get("env", [])}
    ini_keys = {(entry["section"], entry["key"]) for d in definitions for entry in d.get("ini", [])}

    net = spec.load_network(ROOT / "inventories" / "lab-domain.yml")
    settings = ansible_settings(net, 5, tmp_path)
    assert sorted(set(settings) - env_names) == []

    cfg = next(p for p in write_inventory(net, tmp_path / "out") if p.name == "ansible.cfg")
    parser = configparser.ConfigParser()
    parser.read(cfg)
    used = {(section, key) for section in parser.sections() for key in parser[section]}
    assert sorted(used - ini_keys) == []
    resolved = ConfigManager(conf_file=str(cfg))
    assert resolved.get_config_value("INTERPRETER_PYTHON") == settings["ANSIBLE_PYTHON_INTERPRETER"]
    assert resolved.get_config_value("HOST_KEY_CHECKING") is True


def test_a_vagrant_machine_is_reached_elsewhere_but_keeps_its_spec_address() -> None:
    import dataclasses
    import shlex

    from provision.model import HostConnection

    net = spec.load_network(ROOT / "inventories" / "lab-domain.yml").with_connection(known_hosts_file="/v/known_hosts")
    proxy = "ssh -W %h:%p kvmhost"
    conns = {"dc1": HostConnection("127.0.0.1", 2222, "vagrant", "/v/.vagrant/machines/dc1/virtualbox/private_key"),
             "ws1": HostConnection("192.168.121.31", 22, "vagrant", "/v/ws1_key", proxy)}
    net = dataclasses.replace(net, hosts=tuple(dataclasses.replace(h, connection=conns.get(h.name)) for h in net.hosts))
    groups = _groups(build_inventory(net))
    dc1 = groups["domain_controller"]["hosts"]["dc1"]
    assert (dc1["ansible_host"], dc1["ansible_port"], dc1["ansible_user"]) == ("127.0.0.1", 2222, "vagrant")
    assert dc1["provision_address"] == "10.231.0.21" and dc1["ansible_become"] is True
    assert dc1["ansible_ssh_private_key_file"].endswith("dc1/virtualbox/private_key")
    args = shlex.split(dc1["ansible_ssh_common_args"])
    assert "UserKnownHostsFile=/v/known_hosts" in args and "StrictHostKeyChecking=yes" in args
    ws1 = groups["workstation"]["hosts"]["ws1"]
    assert f"ProxyCommand={proxy}" in shlex.split(ws1["ansible_ssh_common_args"])
    assert conns["ws1"].proxy_for_paramiko() == "ssh -W 192.168.121.31:22 kvmhost"
    # Hosts without a connection are unchanged: their spec address, the spec's ssh settings.
    dc2 = groups["domain_controller"]["hosts"]["dc2"]
    assert dc2["ansible_host"] == "10.231.0.22" and "provision_address" not in dc2 and "ansible_port" not in dc2
