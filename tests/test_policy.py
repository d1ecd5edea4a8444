"""policies.access and policies.sudo: evaluation, checks, `policy test` and `plan` (pure, unmocked)."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from provision import policy, spec
from provision.cli import cli

ROOT = Path(__file__).resolve().parent.parent
POLICIES = ROOT / "tests" / "data" / "valid" / "policies-workgroup.yml"


def _network(tmp_path: Path, policies: dict[str, Any] | None, base: Path = POLICIES) -> Any:
    data = yaml.safe_load(base.read_text())
    data.pop("policies", None)
    if policies is not None:
        data["policies"] = policies
    path = tmp_path / "spec.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return spec.load_network(path), path


def test_first_matching_access_rule_decides() -> None:
    net = spec.load_network(POLICIES)
    pc03, pc04, srv1 = net.host("pc03"), net.host("pc04"), net.host("srv1")
    refused = policy.access(net, "bob", pc03)
    assert not refused.allowed and refused.rule == 0
    allowed = policy.access(net, "bob", pc04)
    assert allowed.allowed and allowed.rule == 1 and "group staff" in allowed.reason
    assert not policy.access(net, "bob", srv1).allowed
    assert policy.access(net, "alice", srv1).rule == 2
    # alice is in staff too: rule 1 lets her in on a PC before the admins rule.
    assert policy.access(net, "alice", pc04).rule == 1


def test_sudo_rules_add_up_and_range_hosts_expand() -> None:
    net = spec.load_network(POLICIES)
    grants = policy.sudo(net, "alice", net.host("pc07"))
    assert [i for i, _ in grants] == [0]
    bob = policy.sudo(net, "bob", net.host("pc07"))
    assert [(i, r.commands, r.nopasswd) for i, r in bob] == [(1, ("/usr/bin/systemctl restart smbd",), True)]
    assert policy.sudo(net, "bob", net.host("srv1")) == []
    assert policy.administrators(net, net.host("srv1")) == ["alice"]


def test_defaults_open_workstations_and_keep_servers_to_domain_admins(tmp_path: Path) -> None:
    net, _ = _network(tmp_path, {"password": {"min_length": 10}}, base=ROOT / "inventories" / "lab-domain.yml")
    assert net.policies.access is None and net.policies.sudo is None
    assert policy.access(net, "bob", net.host("ws1")).allowed
    refused = policy.access(net, "bob", net.host("dc1"))
    assert not refused.allowed and "Domain Admins" in refused.reason
    assert policy.sudo(net, "alice", net.host("ws1")) == []
    workgroup = spec.load_network(ROOT / "inventories" / "lab-workgroup.yml")
    assert all(policy.access(workgroup, u.name, h).allowed for u in workgroup.users for h in workgroup.hosts)


def _problems(tmp_path: Path, policies: dict[str, Any]) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    _, path = _network(tmp_path, None)
    data = yaml.safe_load(path.read_text())
    data["policies"] = policies
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    result = spec.check(path)
    return [(p.path, p.message) for p in result.errors], [(p.path, p.message) for p in result.warnings]


def test_a_rule_that_can_never_match_is_a_warning(tmp_path: Path) -> None:
    errors, warnings = _problems(
        tmp_path,
        {
            "access": [
                {"groups": ["staff"], "hosts": ["pc[01:10]"]},
                {"users": ["bob"], "hosts": ["pc[01:03]"], "allow": False},
                {"groups": ["admins"], "roles": ["all"]},
            ],
            "sudo": [{"groups": ["admins"], "roles": ["all"]}],
        },
    )
    assert errors == []
    assert ("policies.access[1]", policy.NEVER_MATCHES) in warnings
    # The admins rule still decides alice on srv1: no warning for it.
    assert not any(path == "policies.access[2]" for path, _ in warnings)


def test_everyone_is_never_shadowed_by_the_spec_users(tmp_path: Path) -> None:
    # Domain users outside the spec still meet the everyone rule.
    errors, warnings = _problems(
        tmp_path,
        {
            "access": [
                {"groups": ["staff", "admins"], "hosts": ["pc[01:10]"]},
                {"everyone": True, "hosts": ["pc[01:10]"], "allow": False},
                {"groups": ["admins"], "roles": ["all"]},
            ],
            "sudo": [{"groups": ["admins"], "roles": ["all"]}],
        },
    )
    assert errors == [] and not any(path.startswith("policies.access") for path, _ in warnings), warnings


def test_a_policy_without_any_administrator_is_refused(tmp_path: Path) -> None:
    errors, _ = _problems(
        tmp_path,
        {"access": [{"groups": ["admins"], "roles": ["all"], "allow": False}, {"everyone": True, "roles": ["all"]}],
         "sudo": [{"groups": ["admins"], "roles": ["all"]}]},
    )
    assert [p for p, m in errors if "no administrator" in m] == ["policies"]
    # Hosts left without one are named in a warning instead.
    errors, warnings = _problems(
        tmp_path,
        {"access": [{"groups": ["staff"], "roles": ["all"]}],
         "sudo": [{"groups": ["admins"], "hosts": ["pc[01:09]"]}]},
    )
    assert errors == []
    assert ("policies", "no user of the spec may both log in and sudo ALL on srv1, pc10") in warnings


def test_policy_test_cli_answers_with_the_rule(tmp_path: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(cli, ["policy", "test", str(POLICIES), "bob", "pc04"])
    assert ok.exit_code == 0, ok.output
    assert "login allowed" in ok.output and "policies.access[1]" in ok.output
    assert "/usr/bin/systemctl restart smbd, no password by policies.sudo[1]" in ok.output
    refused = runner.invoke(cli, ["policy", "test", str(POLICIES), "bob", "pc03", "--format", "json"])
    assert refused.exit_code == 1
    answer = json.loads(refused.output)
    assert answer["login"] == {"allowed": False, "rule": 0, "reason": answer["login"]["reason"]}
    assert answer["sudo"] == []
    for args in (["mallory", "pc01"], ["bob", "pc99"]):
        bad = runner.invoke(cli, ["policy", "test", str(POLICIES), *args])
        assert bad.exit_code == 2 and "not a" in bad.output and "Traceback" not in bad.output


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_plan_shows_the_effective_policy(fmt: str) -> None:
    result = CliRunner().invoke(cli, ["plan", str(POLICIES), "--format", fmt])
    assert result.exit_code == 0, result.output
    if fmt == "json":
        effective = json.loads(result.output)["policy"]["effective"]
        pc03 = next(e for e in effective if "pc03" in e["hosts"])
        assert pc03["login"] == ["alice"] and pc03["sudo"] == ["alice (ALL)"]
        others = next(e for e in effective if "pc01" in e["hosts"])
        assert others["login"] == ["alice", "bob"]
        assert others["sudo"] == ["alice (ALL)", "bob (/usr/bin/systemctl restart smbd, no password)"]
        srv1 = next(e for e in effective if "srv1" in e["hosts"])
        assert srv1["login"] == ["alice"]
    else:
        assert "Login and sudo (access: spec policy, sudo: spec policy" in result.output
        assert "peer (srv1, pc03)  login: alice" in result.output


DOMAIN = ROOT / "tests" / "data" / "valid" / "policies-domain.yml"


def test_a_domain_policy_is_answered_and_kept_for_the_directory() -> None:
    net = spec.load_network(DOMAIN)
    kept = policy.directory(net)
    logins = {item["host"]: item for item in kept["logins"]}
    # The DCs have a login group too (domain local: their own winbind sees nested groups only so).
    assert sorted(logins) == ["dc1", "dc2", "fs1", "ws1", "ws2"]
    # Groups whose members may all log in are nested; nobody is listed one by one here.
    assert logins["fs1"] == {"host": "fs1", "users": [], "groups": ["admins"], "admins": True}
    assert logins["dc1"] == {"host": "dc1", "users": [], "groups": ["admins"], "admins": True}
    assert logins["ws1"]["groups"] == ["admins", "staff"] and logins["ws1"]["users"] == []
    (rule,) = kept["sudo"]
    assert rule["groups"] == ["admins"] and rule["commands"] == ["ALL"]
    assert "ws1.ad.lab.test" in rule["hosts"] and "fs1" in rule["hosts"] and "dc1" not in rule["hosts"]
    runner = CliRunner()
    asked = runner.invoke(cli, ["policy", "test", str(DOMAIN), "bob", "fs1", "--format", "json"])
    assert asked.exit_code == 1, asked.output
    assert json.loads(asked.output)["login"]["allowed"] is False
    on_dc = json.loads(runner.invoke(cli, ["policy", "test", str(DOMAIN), "alice", "dc1", "--format", "json"]).output)
    assert on_dc["login"]["allowed"] is True and on_dc["login"]["rule"] == 1, on_dc
    bob_on_dc = json.loads(runner.invoke(cli, ["policy", "test", str(DOMAIN), "bob", "dc1", "--format", "json"]).output)
    assert bob_on_dc["login"]["allowed"] is False, bob_on_dc
    planned = json.loads(runner.invoke(cli, ["plan", str(DOMAIN), "--format", "json"]).output)
    by_role = {row["role"]: row for row in planned["policy"]["effective"]}
    assert by_role["file_server"]["login"] == ["Domain Admins", "alice"]
    assert by_role["workstation"]["sudo"] == ["alice (ALL)"]


def test_a_domain_without_policy_keeps_servers_to_domain_admins(tmp_path: Path) -> None:
    net, _ = _network(tmp_path, {"password": {"min_length": 10}}, base=ROOT / "inventories" / "lab-domain.yml")
    logins = {item["host"]: item for item in policy.directory(net)["logins"]}
    assert logins["fs1"] == {"host": "fs1", "users": [], "groups": [], "admins": True}
    assert logins["dc2"] == {"host": "dc2", "users": [], "groups": [], "admins": True}
    # Every user of the spec on workstations: every group nested, the users in none one by one.
    ws2 = logins["ws2"]
    in_groups = {u.name for u in net.users if set(u.groups) & set(ws2["groups"])}
    assert in_groups | set(ws2["users"]) == {u.name for u in net.users} and ws2["admins"]
    assert policy.directory(net)["sudo"] == []


def test_a_group_with_a_refused_member_is_not_nested(tmp_path: Path) -> None:
    """First match wins: bob refused on workstations keeps staff (his group) out of their login
    groups; its other members are listed one by one unless a nested group covers them."""
    net, _ = _network(
        tmp_path,
        {
            "access": [
                {"users": ["bob"], "roles": ["workstation"], "allow": False},
                {"groups": ["staff"], "roles": ["workstation"]},
                {"groups": ["engineering", "domain-admins"], "hosts": ["ws2", "fs1"]},
            ],
            "sudo": [{"groups": ["domain-admins"], "roles": ["all"]}],
        },
        base=ROOT / "inventories" / "lab-domain.yml",
    )
    logins = {item["host"]: item for item in policy.directory(net)["logins"]}
    assert logins["ws1"] == {"host": "ws1", "users": ["alice"], "groups": [], "admins": False}
    # alice, in engineering too, comes through it on ws2.
    assert logins["ws2"] == {"host": "ws2", "users": [], "groups": ["engineering"], "admins": True}
    assert logins["fs1"]["groups"] == ["engineering"] and logins["dc1"]["admins"] is False


def test_a_domain_policy_letting_spec_users_on_domain_controllers_is_warned(tmp_path: Path) -> None:
    _, path = _network(
        tmp_path,
        {
            "access": [
                {"groups": ["admins"], "roles": ["domain_controller"]},
                {"groups": ["admins"], "roles": ["all"]},
            ],
            "sudo": [{"groups": ["admins"], "roles": ["all"]}],
        },
        base=DOMAIN,
    )
    found = CliRunner().invoke(cli, ["validate", str(path)])
    assert found.exit_code == 0, found.output
    assert "policies.access[0]" in found.output
    assert "lets users of the spec log in on domain controllers (dc1, dc2)" in found.output
    # Domain Admins alone on the DCs is the default and says nothing.
    _, quiet = _network(
        tmp_path,
        {
            "access": [{"groups": ["domain-admins"], "roles": ["all"]}],
            "sudo": [{"groups": ["domain-admins"], "roles": ["all"]}],
        },
        base=DOMAIN,
    )
    calm = CliRunner().invoke(cli, ["validate", str(quiet)])
    assert calm.exit_code == 0 and "domain controllers" not in calm.output, calm.output


def test_access_and_sudoers_lines_of_a_host() -> None:
    import importlib.util

    path = ROOT / "playbooks" / "filter_plugins" / "provision_policy.py"
    loaded = importlib.util.spec_from_file_location("provision_policy_filters", path)
    assert loaded is not None and loaded.loader is not None
    filters = importlib.util.module_from_spec(loaded)
    loaded.loader.exec_module(filters)
    from dataclasses import asdict

    net = spec.load_network(POLICIES)
    access = [asdict(r) for r in net.policies.access or ()]
    assert filters.access_lines(access, "pc03", "peer") == [
        "+:root:ALL", "+:ALL:cron crond", "-:bob:ALL", "+:(staff):ALL", "+:(admins):ALL", "-:ALL:ALL"
    ]
    srv1 = filters.access_lines(access, "srv1", "peer")
    assert srv1 == ["+:root:ALL", "+:ALL:cron crond", "+:(admins):ALL", "-:ALL:ALL"]
    # A controller that connects as another account keeps its way in too.
    deploy = filters.access_lines(access, "srv1", "peer", "deploy")
    assert deploy[:3] == ["+:root:ALL", "+:deploy:ALL", "+:ALL:cron crond"]
    sudo = [asdict(r) for r in net.policies.sudo or ()]
    assert filters.sudoers_lines(sudo, "pc01", "peer") == [
        "%admins ALL=(root) ALL", "bob ALL=(root) NOPASSWD: /usr/bin/systemctl restart smbd"
    ]
    assert filters.sudoers_lines(sudo, "srv1", "peer") == ["%admins ALL=(root) ALL"]
    # sudoers names Domain Admins sudo's way.
    argv = ["/usr/local/sbin/reader", "--login-group=CN=x,OU=Provision Policy,DC=lab", 'a"b\\c', "50%"]
    command = filters.systemd_command(argv)
    assert command.startswith('"/usr/local/sbin/reader" "--login-group=CN=x,OU=Provision Policy,DC=lab" ')
    assert shlex.split(command.replace("%%", "%")) == argv
    admins = [{"groups": ["domain-admins"], "roles": ["all"], "commands": ["ALL"], "nopasswd": True}]
    assert filters.sudoers_lines(admins, "ws2", "workstation") == ["%Domain\\ Admins ALL=(root) NOPASSWD: ALL"]
    # Unit names become provision_services entries with the same settings each.
    assert filters.units(["smbd.service", "nmbd.service"], masked=True, state="stopped") == [
        {"name": "smbd.service", "masked": True, "state": "stopped"},
        {"name": "nmbd.service", "masked": True, "state": "stopped"},
    ]
    assert filters.units([]) == []
