"""provision grow: a domain spec written from a workgroup spec (issue 20, first part).

Real runs on the lab workgroup and on small workgroups written here: the grown spec is
loaded back with provision.spec and must be a valid domain; every bad input is refused with
a message that says what and where, and nothing is written."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from provision import grow, spec
from provision.cli import cli
from provision.errors import EXIT_ENVIRONMENT, EXIT_INVALID_SPEC, SpecError
from provision.model import Mode, Role

ROOT = Path(__file__).resolve().parent.parent
WORKGROUP = ROOT / "inventories" / "lab-workgroup.yml"
DOMAIN = ROOT / "inventories" / "lab-domain.yml"
GROWN = ROOT / "inventories" / "lab-grown.yml"
DC1, DC2 = grow.NewHost("dc1", "10.231.0.21"), grow.NewHost("dc2", "10.231.0.22")
FS1 = grow.NewHost("fs1", "10.231.0.25")
REALM = "AD.LABWG.TEST"
DC_ARGS = ["--realm", REALM, "--dc", "dc1=10.231.0.21", "--dc", "dc2=10.231.0.22"]


def options(**kw: Any) -> grow.Options:
    return grow.Options(**({"realm": REALM, "dcs": (DC1, DC2)} | kw))


def source() -> dict[str, Any]:
    data = yaml.safe_load(WORKGROUP.read_text())
    assert isinstance(data, dict)
    return data


def write_spec(path: Path, data: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def grown_and_written(tmp_path: Path, opts: grow.Options, src: Path = WORKGROUP) -> tuple[grow.Grown, Path]:
    out = tmp_path / "domain.yml"
    grown = grow.grow(src, out, opts)
    grow.write(grown)
    return grown, out


def lines(grown: grow.Grown) -> list[str]:
    return [c.line() for c in grown.choices]


def refused(tmp_path: Path, opts: grow.Options, src: Path = WORKGROUP) -> list[tuple[str, str]]:
    """The problems of a grow that must fail; nothing may be written."""
    out = tmp_path / "domain.yml"
    with pytest.raises(SpecError) as exc:
        grow.grow(src, out, opts)
    assert not out.exists()
    assert "not written" in exc.value.source
    assert exc.value.exit_code == EXIT_INVALID_SPEC
    return [(p.path, p.message) for p in exc.value.problems]


def hosts_by_name(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {h["name"]: h for h in doc["hosts"]}


# --------------------------------------------------------------------------- the lab workgroup


def test_peers_that_serve_become_file_servers_in_place(tmp_path: Path) -> None:
    grown, out = grown_and_written(tmp_path, options())
    network = spec.load_network(out)  # what provision validate reads
    assert network.mode is Mode.DOMAIN
    assert [(h.name, h.role) for h in network.hosts] == [
        ("dc1", Role.DOMAIN_CONTROLLER),
        ("dc2", Role.DOMAIN_CONTROLLER),
        ("peer1", Role.FILE_SERVER),
        ("peer2", Role.FILE_SERVER),
        ("peer3", Role.FILE_SERVER),
    ]
    addresses = ["10.231.0.21", "10.231.0.22", "10.231.0.11", "10.231.0.12", "10.231.0.13"]
    assert [h.address for h in network.hosts] == addresses
    shares = {h.name: [(s.name, s.path) for s in h.shares] for h in network.hosts}
    assert shares == {
        "dc1": [],
        "dc2": [],
        "peer1": [("projects", "/srv/projects"), ("handbook", "/srv/handbook")],
        "peer2": [("finance", "/srv/finance")],
        "peer3": [("scratch", "/srv/scratch")],
    }
    assert [p.name for p in network.host("peer2").printers] == ["office-pdf"]
    assert network.host("peer3").homes and not network.host("peer1").homes
    assert network.domain is not None
    assert (network.domain.realm, network.domain.netbios, network.domain.dcs) == (REALM, "LABWG", ("dc1", "dc2"))

    doc, data = grown.document, source()
    assert doc["domain"] == {"realm": REALM, "netbios": "LABWG", "admin_password": {"env": "DOMAIN_ADMIN_PASSWORD"}}
    assert doc["network"] == {"name": "labwg", "mode": "domain", "subnets": ["10.231.0.0/24"]}
    assert doc["users"] == data["users"] and doc["groups"] == data["groups"]  # references as written
    refs = [{"env": "LAB_ALICE_PW"}, {"env": "LAB_BOB_PW"}, {"env": "LAB_CAROL_PW"}]
    assert [u["password"] for u in doc["users"]] == refs
    assert doc["ssh"] == data["ssh"] and doc["policies"] == data["policies"] and doc["version"] == 1
    peers = {h["name"]: h for h in data["hosts"]}
    for name, h in hosts_by_name(doc).items():
        if name.startswith("peer"):
            assert h == peers[name] | {"role": "file_server"}  # everything else as written

    assert lines(grown)[:4] == [
        "network labwg: workgroup LABWG -> domain AD.LABWG.TEST, NetBIOS name LABWG "
        "(the workgroup's name, so users keep seeing it)",
        "domain.admin_password: {env: DOMAIN_ADMIN_PASSWORD} (the domain's Administrator password, a reference)",
        "dc1 -> new domain controller 10.231.0.21 (provisions the domain)",
        "dc2 -> new domain controller 10.231.0.22 (joins dc1)",
    ]
    assert "peer1 -> file_server peer1 (10.231.0.11): shares projects, handbook stay where they are" in lines(grown)
    assert "peer2 -> file_server peer2 (10.231.0.12): share finance and printer office-pdf stay where they are" in (
        lines(grown)
    )
    assert "peer3 -> file_server peer3 (10.231.0.13): share scratch and home shares stay where they are" in lines(grown)
    assert "users alice, bob, carol -> directory users (passwords carried over by the migration)" in lines(grown)
    assert not any(c.warning for c in grown.choices)  # two DCs: nothing to warn about
    assert grown.warnings == ()  # peer2's printer is served by peer2, now a domain file server


def test_the_written_file(tmp_path: Path) -> None:
    grown, out = grown_and_written(tmp_path, options())
    text = out.read_text()
    assert text == grown.text
    head = text.splitlines()[:4]
    assert head[0].startswith("# yaml-language-server: $schema=") and head[0].endswith("network.schema.json")
    assert head[1].startswith(f"# Written by provision grow from {WORKGROUP}")
    assert all(line.startswith("#") for line in head)
    assert stat.S_IMODE(out.stat().st_mode) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["domain.yml"]  # no temporary file left behind
    assert spec.read_yaml(text, str(out)) == grown.document
    assert "workgroup" not in grown.document["network"]


def test_one_file_server_takes_every_share(tmp_path: Path) -> None:
    grown, out = grown_and_written(tmp_path, options(file_server=FS1, client="winbind"))
    network = spec.load_network(out)
    assert [(h.name, h.role, h.client) for h in network.hosts] == [
        ("dc1", Role.DOMAIN_CONTROLLER, "sssd"),
        ("dc2", Role.DOMAIN_CONTROLLER, "sssd"),
        ("fs1", Role.FILE_SERVER, "winbind"),
        ("peer1", Role.WORKSTATION, "winbind"),
        ("peer2", Role.WORKSTATION, "winbind"),
        ("peer3", Role.WORKSTATION, "winbind"),
    ]
    fs1 = network.host("fs1")
    assert [(s.name, s.path) for s in fs1.shares] == [
        ("projects", "/srv/projects"),
        ("handbook", "/srv/handbook"),
        ("finance", "/srv/finance"),
        ("scratch", "/srv/scratch"),
    ]
    assert [p.name for p in fs1.printers] == ["office-pdf"] and fs1.homes
    for name in ("peer1", "peer2", "peer3"):
        h = network.host(name)
        assert (h.shares, h.printers, h.homes) == ((), (), False)
    peers = hosts_by_name(grown.document)
    assert peers["peer1"] == {"name": "peer1", "address": "10.231.0.11", "role": "workstation", "client": "winbind"}
    handbook = next(s for s in peers["fs1"]["shares"] if s["name"] == "handbook")
    assert handbook == source()["hosts"][0]["shares"][1]  # moved as written
    assert (
        "fs1 -> new file server 10.231.0.25: serves shares projects, handbook, finance, scratch, "
        "printer office-pdf and home shares"
    ) in lines(grown)
    assert "peer2 -> workstation (winbind): its share finance and printer office-pdf move to fs1 " \
        "(the same paths; the migration copies the files)" in lines(grown)


def test_a_peer_that_serves_nothing_becomes_a_workstation(tmp_path: Path) -> None:
    data = source()
    data["hosts"].append({"name": "peer4", "address": "10.231.0.14", "role": "peer"})
    src = write_spec(tmp_path / "wg" / "office.yml", data)
    for client in ("sssd", "winbind"):
        grown, out = grown_and_written(tmp_path / client, options(client=client), src)
        assert spec.load_network(out).host("peer4").role is Role.WORKSTATION
        assert hosts_by_name(grown.document)["peer4"]["client"] == client
        assert f"peer4 -> workstation ({client})" in lines(grown)
        assert spec.load_network(out).host("peer1").role is Role.FILE_SERVER


def test_one_dc_is_a_warning(tmp_path: Path) -> None:
    grown, out = grown_and_written(tmp_path, options(dcs=(DC1,)))
    assert [h.name for h in spec.load_network(out).hosts if h.role is Role.DOMAIN_CONTROLLER] == ["dc1"]
    warnings = [c.text for c in grown.choices if c.warning]
    assert warnings == ["only one --dc: two domain controllers are recommended (one can be lost)"]
    assert "warning: only one --dc: two domain controllers are recommended (one can be lost)" in lines(grown)


def test_netbios_and_admin_password_file(tmp_path: Path) -> None:
    opts = options(realm="ad.labwg.test", netbios="OFFICE", admin_password={"file": "secrets/admin"})
    grown, out = grown_and_written(tmp_path, opts)
    domain = {"realm": REALM, "netbios": "OFFICE", "admin_password": {"file": "secrets/admin"}}
    assert grown.document["domain"] == domain
    network = spec.load_network(out)
    assert network.domain is not None and network.domain.admin_password.file == "secrets/admin"
    assert "NetBIOS name OFFICE (--netbios)" in lines(grown)[0]


def test_the_example_is_the_lab_workgroup_grown(tmp_path: Path) -> None:
    """inventories/lab-grown.yml is what grow writes today (regenerate it when this fails)."""
    grown = grow.grow(WORKGROUP, GROWN.parent / "not-written.yml", options())
    text = GROWN.read_text()
    assert spec.read_yaml(text, str(GROWN)) == grown.document
    assert text.splitlines()[0] == "# yaml-language-server: $schema=../schemas/network.schema.json"
    assert "Written by provision grow from inventories/lab-workgroup.yml" in text.splitlines()[1]
    assert not (GROWN.parent / "not-written.yml").exists()


# --------------------------------------------------------------------------- policies and the rest


def _policy_workgroup(tmp_path: Path) -> Path:
    data = source()
    data["hosts"].append({"name": "peer4", "address": "10.231.0.14", "role": "peer"})
    data["policies"] = {
        "smb": {"signing": "auto"},
        "access": [{"groups": ["staff"], "roles": ["peer"]}, {"users": ["carol"], "roles": ["all"], "allow": False}],
        "sudo": [{"users": ["alice"], "roles": ["peer"], "nopasswd": True}],
    }
    data["rollout"] = {"order": ["peer"], "batch": 2}
    return write_spec(tmp_path / "office.yml", data)


def test_policies_follow_the_peers(tmp_path: Path) -> None:
    grown, out = grown_and_written(tmp_path, options(), _policy_workgroup(tmp_path))
    pol = grown.document["policies"]
    assert pol["access"] == [
        {"groups": ["staff"], "roles": ["file_server", "workstation"]},
        {"users": ["carol"], "roles": ["file_server", "workstation"], "allow": False},
        {"groups": ["domain-admins"], "roles": ["all"]},
    ]
    assert pol["sudo"] == [
        {"users": ["alice"], "roles": ["file_server", "workstation"], "nopasswd": True}
    ]
    assert pol["smb"] == {"signing": "mandatory"}
    assert grown.document["rollout"] == {"batch": 2}
    text = lines(grown)
    assert "policies.access[0]: roles peer -> file_server, workstation (the roles the peers became)" in text
    mapped = "policies.access[1]: roles all -> file_server, workstation (the workgroup's 'all'"
    assert any(t.startswith(mapped) for t in text)
    assert "policies.sudo[0]: roles peer -> file_server, workstation (the roles the peers became)" in text
    assert any(t.startswith("policies.access[2]: added {groups: [domain-admins], roles: [all]}") for t in text)
    assert "policies.smb.signing: auto -> mandatory (a domain always requires SMB signing)" in text
    assert any(t.startswith("rollout.order (peer) -> the domain's default order") for t in text)
    network = spec.load_network(out)
    assert network.rollout.order[0] == (Role.DOMAIN_CONTROLLER,)
    assert network.policies.access is not None and network.policies.access[0].roles == ("file_server", "workstation")


def test_without_access_policy_the_domain_default_is_said(tmp_path: Path) -> None:
    grown, _ = grown_and_written(tmp_path, options())
    assert any(
        t.startswith("policies.access absent: the domain's default applies") and "(peer1, peer2, peer3)" in t
        for t in lines(grown)
    )


def test_relative_files_keep_pointing_at_the_same_files(tmp_path: Path) -> None:
    data = source()
    data["users"][0]["password"] = {"file": "secrets/alice"}
    data["ssh"]["identity_file"] = "keys/id"
    src = write_spec(tmp_path / "wg" / "office.yml", data)
    grown = grow.grow(src, tmp_path / "out" / "domain.yml", options())
    assert grown.document["users"][0]["password"] == {"file": "../wg/secrets/alice"}
    assert grown.document["ssh"]["identity_file"] == "../wg/keys/id"
    assert grown.document["ssh"]["known_hosts_file"] == data["ssh"]["known_hosts_file"]  # absolute: as written
    assert "users[0].password.file: secrets/alice -> ../wg/secrets/alice (relative to the new spec's folder, the " \
        "same file)" in lines(grown)
    same = grow.grow(src, tmp_path / "wg" / "domain.yml", options())  # the same folder: untouched
    assert same.document["users"][0]["password"] == {"file": "secrets/alice"}
    assert same.document["ssh"]["identity_file"] == "keys/id"


def test_network_wide_shares_stay_or_move(tmp_path: Path) -> None:
    data = source()
    data["hosts"].append({"name": "peer4", "address": "10.231.0.14", "role": "peer"})
    data["shares"] = [{"name": "common", "path": "/srv/common", "hosts": ["peer4"]}]
    src = write_spec(tmp_path / "office.yml", data)
    grown, out = grown_and_written(tmp_path / "a", options(), src)
    assert spec.load_network(out).host("peer4").role is Role.FILE_SERVER
    assert grown.document["shares"] == data["shares"]
    grown, out = grown_and_written(tmp_path / "b", options(file_server=FS1), src)
    assert grown.document["shares"] == [{"name": "common", "path": "/srv/common", "hosts": ["fs1"]}]
    assert "common" in [s.name for s in spec.load_network(out).host("fs1").shares]
    assert "network-wide share common (peer4) -> served by fs1" in lines(grown)


# --------------------------------------------------------------------------- refused


def test_a_domain_spec_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "domain.yml"
    with pytest.raises(grow.GrowError, match=r"is a domain spec .* grow starts from a workgroup spec") as exc:
        grow.grow(DOMAIN, out, options())
    assert exc.value.exit_code == EXIT_INVALID_SPEC and not out.exists()


def test_an_invalid_workgroup_is_refused_with_its_own_problems(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text(WORKGROUP.read_text().replace("address: 10.231.0.12", "address: 10.231.0.300"))
    with pytest.raises(SpecError) as exc:
        grow.grow(bad, tmp_path / "domain.yml", options())
    assert exc.value.source == str(bad)
    assert [p.path for p in exc.value.problems] == ["hosts[1].address"]
    assert not (tmp_path / "domain.yml").exists()


def test_a_dc_at_a_peers_address(tmp_path: Path) -> None:
    problems = refused(tmp_path, options(dcs=(grow.NewHost("dc1", "10.231.0.12"), DC2)))
    assert len(problems) == 1
    path, message = problems[0]
    assert path == "hosts[3].address"
    assert "address 10.231.0.12 overlaps" in message
    assert "hosts[3] is peer 'peer2' (hosts[1] of lab-workgroup.yml)" in message
    assert "hosts[0] is the new domain controller --dc dc1=10.231.0.12" in message


def test_a_dc_named_like_a_peer(tmp_path: Path) -> None:
    problems = refused(tmp_path, options(dcs=(grow.NewHost("peer1", "10.231.0.21"),)))
    assert any("duplicate host name 'peer1'" in m for _, m in problems), problems


def test_a_dc_outside_the_subnets(tmp_path: Path) -> None:
    problems = refused(tmp_path, options(dcs=(DC1, grow.NewHost("dc2", "10.9.9.9"))))
    assert problems == [
        (
            "hosts[1].address",
            "10.9.9.9 is outside the network's subnets (10.231.0.0/24) "
            "(hosts[1] is the new domain controller --dc dc2=10.9.9.9)",
        )
    ]


@pytest.mark.parametrize(
    ("name", "said"),
    [("d{{x}}1", "Jinja template delimiter"), ("dc\x1b[2J", "control or layout character U+001B")],
    ids=["jinja", "control"],
)
def test_a_hostile_dc_name(tmp_path: Path, name: str, said: str) -> None:
    problems = refused(tmp_path, options(dcs=(grow.NewHost(name, "10.231.0.21"),)))
    assert any(p == "hosts[0].name" and said in m for p, m in problems), problems
    assert all("\x1b" not in p + m for p, m in problems)  # escaped in every message


def test_a_hostile_realm(tmp_path: Path) -> None:
    problems = refused(tmp_path, options(realm="AD.{{lookup('pipe','id')}}.TEST"))
    assert {p for p, _ in problems} == {"domain.realm"}
    assert any("Jinja template delimiter" in m and "(domain.realm is --realm)" in m for _, m in problems)


def test_a_range_as_dc(tmp_path: Path) -> None:
    problems = refused(tmp_path, options(dcs=(grow.NewHost("dc[1:2]", "10.231.0.21+"),)))
    assert ("--dc", "--dc dc[1:2]=10.231.0.21+: names one host, not a range") in problems


@pytest.mark.parametrize("text", ["dc1", "dc1=", "=10.0.0.1", "dc1=10.0.0.1=x", "dc1==10.0.0.1", ""])
def test_new_host_syntax(text: str) -> None:
    with pytest.raises(ValueError, match="is not NAME=ADDRESS"):
        grow.parse_new_host(text)


def test_new_host_syntax_good() -> None:
    assert grow.parse_new_host("dc1=10.0.0.2") == grow.NewHost("dc1", "10.0.0.2")


def test_share_name_clash_on_the_file_server(tmp_path: Path) -> None:
    data = source()
    data["hosts"][1]["shares"].append({"name": "Projects", "path": "/srv/projects2"})
    problems = refused(tmp_path, options(file_server=FS1), write_spec(tmp_path / "wg.yml", data))
    assert len(problems) == 1, problems
    path, message = problems[0]
    assert path == "hosts[2].shares[3].name"
    assert "share 'Projects' of peer 'peer2' (hosts[1].shares[1] of wg.yml)" in message
    assert "share 'projects' of peer 'peer1' (hosts[0].shares[0] of wg.yml)" in message
    assert "would both be [projects] on fs1" in message and "rename one in the workgroup spec first" in message


def test_share_path_clash_on_the_file_server(tmp_path: Path) -> None:
    data = source()
    data["hosts"][1]["shares"][0]["path"] = "/srv/projects/finance"  # inside peer1's projects
    problems = refused(tmp_path, options(file_server=FS1), write_spec(tmp_path / "wg.yml", data))
    assert [p for p, _ in problems] == ["hosts[2].shares[2].path"]
    assert "one folder inside the other on fs1" in problems[0][1]
    assert "the files of two peers would mix" in problems[0][1]


def test_a_printer_on_a_peers_usb_port_cannot_move(tmp_path: Path) -> None:
    data = source()
    data["hosts"][1]["printers"][0]["uri"] = "usb://HP/LaserJet"
    src = write_spec(tmp_path / "wg.yml", data)
    problems = refused(tmp_path, options(file_server=FS1), src)
    assert [p for p, _ in problems] == ["hosts[2].printers[0].uri"]
    assert "attached to the peer (usb:)" in problems[0][1]
    grown_and_written(tmp_path / "in-place", options(), src)  # in place it stays on its peer: fine


def test_a_share_name_a_domain_reserves(tmp_path: Path) -> None:
    data = source()
    data["hosts"][0]["shares"][0]["name"] = "netlogon"
    problems = refused(tmp_path, options(), write_spec(tmp_path / "wg.yml", data))
    assert len(problems) == 1
    path, message = problems[0]
    assert path == "hosts[2].shares[0].name"
    assert "reserved in a domain" in message
    assert "share 'netlogon' of peer 'peer1'" in message and "rename it in the workgroup spec first" in message


def test_the_workgroup_spec_itself_is_never_the_output(tmp_path: Path) -> None:
    src = tmp_path / "office.yml"
    src.write_text(WORKGROUP.read_text())
    (tmp_path / "link.yml").symlink_to(src)
    (tmp_path / "hard.yml").hardlink_to(src)
    for out in (src, tmp_path / "sub" / ".." / "office.yml", tmp_path / "link.yml", tmp_path / "hard.yml"):
        with pytest.raises(grow.GrowError, match="is the workgroup spec itself"):
            grow.grow(src, out, options(), force=True)
    assert src.read_text() == WORKGROUP.read_text()


def test_an_existing_output_is_kept(tmp_path: Path) -> None:
    out = tmp_path / "domain.yml"
    out.write_text("mine\n")
    with pytest.raises(grow.OutputExists, match="exists; use --force"):
        grow.grow(WORKGROUP, out, options())
    grown = grow.grow(WORKGROUP, out, options(), force=True)
    with pytest.raises(grow.OutputExists):
        grow.write(grown)
    assert out.read_text() == "mine\n"
    grow.write(grown, force=True)
    assert out.read_text() == grown.text and stat.S_IMODE(out.stat().st_mode) == 0o644


# --------------------------------------------------------------------------- the command line


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


def test_cli_grows_and_prints_every_choice(tmp_path: Path) -> None:
    out = tmp_path / "domain.yml"
    code, stdout, stderr = run("grow", str(WORKGROUP), "--to", "domain", *DC_ARGS, "-o", str(out))
    assert code == 0, stderr
    printed = stdout.splitlines()
    assert printed[2] == "dc1 -> new domain controller 10.231.0.21 (provisions the domain)"
    assert "peer1 -> file_server peer1 (10.231.0.11): shares projects, handbook stay where they are" in printed
    assert printed[-2] == f"wrote {out}: domain AD.LABWG.TEST, 5 hosts (2 domain_controller, 3 file_server)"
    assert printed[-1] == (f"next: provision plan {out} --from-workgroup {WORKGROUP}, then migrate with "
                           f"provision apply {out} --from-workgroup {WORKGROUP}")
    assert run("validate", str(out))[0] == 0


def test_cli_file_server_winbind_one_dc(tmp_path: Path) -> None:
    out = tmp_path / "domain.yml"
    code, stdout, _ = run(
        "grow", str(WORKGROUP), "--to", "domain", "--realm", REALM, "--dc", "dc1=10.231.0.21",
        "--file-server", "fs1=10.231.0.25", "--client", "winbind", "-o", str(out),
    )  # fmt: skip
    assert code == 0
    assert "warning: only one --dc: two domain controllers are recommended (one can be lost)" in stdout.splitlines()
    assert "peer1 -> workstation (winbind): its shares projects, handbook move to fs1" in stdout
    assert spec.load_network(out).host("fs1").role is Role.FILE_SERVER


def test_cli_json(tmp_path: Path) -> None:
    out = tmp_path / "domain.yml"
    code, stdout, stderr = run("grow", str(WORKGROUP), "--to", "domain", *DC_ARGS, "-o", str(out), "--format", "json")
    assert code == 0
    doc = json.loads(stdout)
    assert doc["kind"] == "grow" and doc["realm"] == REALM
    assert doc["hosts"] == {"dc1": "domain_controller", "dc2": "domain_controller", "peer1": "file_server",
                            "peer2": "file_server", "peer3": "file_server"}  # fmt: skip
    first_dc = "dc1 -> new domain controller 10.231.0.21 (provisions the domain)"
    assert doc["choices"][2] == {"text": first_dc, "warning": False}
    assert "dc1 -> new domain controller" in stderr  # people's lines stay off stdout


def test_cli_admin_password_options(tmp_path: Path) -> None:
    out = tmp_path / "a.yml"
    args = ["grow", str(WORKGROUP), "--to", "domain", *DC_ARGS]
    code, _, _ = run(*args, "-o", str(out), "--admin-password-env", "LAB_ADMIN_PW")
    assert code == 0 and yaml.safe_load(out.read_text())["domain"]["admin_password"] == {"env": "LAB_ADMIN_PW"}
    code, _, stderr = run(
        "grow", str(WORKGROUP), "--to", "domain", *DC_ARGS, "-o", str(tmp_path / "b.yml"),
        "--admin-password-env", "X_PW", "--admin-password-file", "pw",
    )  # fmt: skip
    assert code == 2 and "not both" in stderr and not (tmp_path / "b.yml").exists()
    code, _, stderr = run(*args, "-o", str(tmp_path / "c.yml"), "--admin-password-env", "PATH")
    assert code == EXIT_INVALID_SPEC and "domain.admin_password.env" in stderr and not (tmp_path / "c.yml").exists()


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--dc", "dc1:10.231.0.21"], "Invalid value for '--dc': 'dc1:10.231.0.21' is not NAME=ADDRESS"),
        (["--dc", "dc1=10.231.0.21", "--file-server", "fs1=a=b"], "Invalid value for '--file-server': 'fs1=a=b'"),
        (["--dc", "dc1=10.231.0.21", "--to", "forest"], "'forest' is not 'domain'"),
        ([], "Missing option '--dc'"),
        (["--dc", "dc1=10.231.0.21", "--client", "ldap"], "Invalid value for '--client'"),
    ],
    ids=["dc-syntax", "fs-syntax", "to", "no-dc", "client"],
)
def test_cli_usage_errors(tmp_path: Path, args: list[str], said: str) -> None:
    out = tmp_path / "domain.yml"
    base = ["grow", str(WORKGROUP), "--realm", REALM, "-o", str(out)]
    if "--to" not in args:
        base += ["--to", "domain"]
    code, _, stderr = run(*base, *args)
    assert code == 2 and said in stderr, stderr
    assert not out.exists()


def test_cli_bad_grow_exit_2_with_every_problem(tmp_path: Path) -> None:
    out = tmp_path / "domain.yml"
    code, stdout, stderr = run(
        "grow", str(WORKGROUP), "--to", "domain", "--realm", "AD.{{X}}.TEST", "--dc", "dc1=10.231.0.11",
        "--dc", "dc2=10.1.1.1", "-o", str(out),
    )  # fmt: skip
    assert code == EXIT_INVALID_SPEC and stdout == ""
    where = f"{out} (grown from {WORKGROUP}; not written)"
    err = stderr.splitlines()
    assert f"{where}: invalid: 4 error(s)" == err[-1], stderr
    assert any(line.startswith(f"{where}: domain.realm: ") and "Jinja" in line for line in err)
    assert any(line.startswith(f"{where}: hosts[1].address: 10.1.1.1 is outside") for line in err)
    assert any(line.startswith(f"{where}: hosts[2].address: address 10.231.0.11 overlaps") for line in err)
    assert not out.exists()


def test_cli_domain_spec_and_existing_output(tmp_path: Path) -> None:
    out = tmp_path / "domain.yml"
    code, _, stderr = run("grow", str(DOMAIN), "--to", "domain", *DC_ARGS, "-o", str(out))
    assert code == EXIT_INVALID_SPEC and "is a domain spec" in stderr and not out.exists()
    out.write_text("mine\n")
    code, stdout, stderr = run("grow", str(WORKGROUP), "--to", "domain", *DC_ARGS, "-o", str(out))
    assert code == EXIT_ENVIRONMENT and "exists; use --force to overwrite" in stderr and stdout == ""
    assert out.read_text() == "mine\n"
    code, _, _ = run("grow", str(WORKGROUP), "--to", "domain", *DC_ARGS, "-o", str(out), "--force")
    assert code == 0 and spec.load_network(out).mode is Mode.DOMAIN
