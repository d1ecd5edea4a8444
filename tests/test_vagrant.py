"""provision.vagrant: the Vagrantfile, the subnet clash check and `vagrant ssh-config`.

The Vagrantfile is checked by Ruby itself: `ruby -c` for syntax, and an evaluation against
a small stub of Vagrant's configuration API (tests/data/vagrant/vagrant_stub.rb) that
prints what the file declares as JSON. No VM boots here: `vagrant` is a stand-in script.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from provision import vagrant
from provision.errors import ProvisionError, SpecError
from provision.model import Host, HostConnection, Mode, Network, Role
from provision.spec import load_network
from provision.vagrant import ConfiguredNetwork, Resources

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).parent / "data" / "vagrant"
STUB = DATA / "vagrant_stub.rb"
LAB_HOSTS = ["dc1", "dc2", "fs1", "mx1", "db1", "ws1", "ws2"]
RUBY = shutil.which("ruby")
needs_ruby = pytest.mark.skipif(
    RUBY is None, reason="ruby is not installed (apt-get install ruby): the Vagrantfile cannot be checked"
)


def _net(text: str) -> ipaddress.IPv4Network:
    return ipaddress.IPv4Network(text)


@pytest.fixture(scope="module")
def lab() -> Network:
    return load_network(ROOT / "inventories" / "lab-domain.yml")


@pytest.fixture(scope="module")
def campus() -> Network:
    return load_network(ROOT / "inventories" / "campus.yml")


def small(*addresses: str, subnet: str = "192.168.56.0/24", name: str = "tiny") -> Network:
    hosts = tuple(Host(f"h{i}", a, Role.PEER) for i, a in enumerate(addresses, 1))
    return Network(name=name, mode=Mode.WORKGROUP, subnets=(subnet,), hosts=hosts, workgroup="TINY")


def ruby_check(path: Path) -> None:
    assert RUBY is not None
    done = subprocess.run([RUBY, "-c", str(path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Syntax OK" in done.stdout


def evaluate(text: str, tmp_path: Path, syntax: bool = False) -> dict:
    """What the Vagrantfile declares, as recorded by the Ruby stub of Vagrant.configure.

    Loading it parses it too; ``syntax`` also runs `ruby -c` (the check a CI would run).
    """
    assert RUBY is not None
    path = tmp_path / "Vagrantfile"
    path.write_text(text)
    if syntax:
        ruby_check(path)
    done = subprocess.run([RUBY, str(STUB), str(path)], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


# --------------------------------------------------------------------------- the Vagrantfile


def test_resources_per_role():
    assert set(vagrant.RESOURCES) == set(Role)
    dc = vagrant.RESOURCES[Role.DOMAIN_CONTROLLER]
    assert dc.memory >= 2048 and dc.cpus >= 2
    for role in (Role.FILE_SERVER, Role.MAIL_SERVER, Role.DATABASE_SERVER):
        assert 1024 <= vagrant.RESOURCES[role].memory <= 2048
    for role in (Role.WORKSTATION, Role.PEER):
        assert vagrant.RESOURCES[role] == Resources(memory=1024, cpus=1)
    assert vagrant.DEFAULT_BOX == "debian/bookworm64"


@needs_ruby
def test_lab_vagrantfile_declares_every_host(lab, tmp_path):
    text = vagrant.vagrantfile(lab)
    got = evaluate(text, tmp_path, syntax=True)
    assert got["version"] == "2"
    assert got["box"] == "debian/bookworm64"
    assert got["synced_folders"] == [{"source": ".", "destination": "/vagrant", "options": {"disabled": True}}]
    assert got["ssh"] == {"insert_key": True}
    machines = {m["name"]: m for m in got["machines"]}
    assert list(machines) == LAB_HOSTS
    for host in lab.hosts:
        m = machines[host.name]
        assert m["hostname"] == host.name
        assert m["networks"] == [
            {
                "type": "private_network",
                "options": {
                    "ip": host.address,
                    "netmask": "255.255.255.0",
                    "virtualbox__adapter_ip": "10.231.0.1",
                    "libvirt__network_name": "labdom-10.231.0.0-24",
                    "libvirt__host_ip": "10.231.0.1",
                    "libvirt__dhcp_enabled": False,
                    "libvirt__forward_mode": "none",
                },
            }
        ]
        want = vagrant.RESOURCES[host.role]
        assert m["providers"]["virtualbox"] == {
            "name": f"labdom-{host.name}",
            "memory": want.memory,
            "cpus": want.cpus,
        }
        assert m["providers"]["libvirt"] == {"memory": want.memory, "cpus": want.cpus}
        if host.role is Role.DOMAIN_CONTROLLER:
            assert m["providers"]["virtualbox"]["memory"] >= 2048
            assert m["providers"]["libvirt"]["memory"] >= 2048
            assert m["providers"]["libvirt"]["cpus"] >= 2


def test_lab_vagrantfile_text(lab):
    """The text itself: header, no provisioner, each define with its values (parsed back)."""
    text = vagrant.vagrantfile(lab)
    assert text == vagrant.vagrantfile(lab)  # deterministic
    assert "Generated by `provision vagrant` from the spec labdom (lab-domain.yml)" in text
    assert "Do not edit by hand" in text
    assert "`provision apply SPEC --vagrant DIR` configures the machines" in text
    assert ".vm.provision" not in text
    assert "#   * 10.231.0.0/24" in text  # the networks.conf line VirtualBox needs
    assert "/etc/vbox/networks.conf" in text and "192.168.56.0/21" in text
    blocks = text.split("config.vm.define ")[1:]
    assert len(blocks) == len(lab.hosts)
    for host, block in zip(lab.hosts, blocks, strict=True):
        assert block.startswith(f"'{host.name}' do |machine|")
        assert f"ip: '{host.address}'," in block
        want = vagrant.RESOURCES[host.role]
        assert block.count(f".memory = {want.memory}\n") == 2
        assert block.count(f".cpus = {want.cpus}\n") == 2


@needs_ruby
def test_workgroup_and_small_office_are_valid_ruby(tmp_path):
    for spec in ("lab-workgroup.yml", "small-office.yml", "branch-office.yml"):
        network = load_network(ROOT / "inventories" / spec)
        got = evaluate(vagrant.vagrantfile(network), tmp_path)
        assert [m["name"] for m in got["machines"]] == [h.name for h in network.hosts]


@needs_ruby
def test_campus_ranges(campus, tmp_path):
    """2,400 workstations from ranges, two /16 subnets: one machine each, on its own subnet."""
    text = vagrant.vagrantfile(campus)
    got = evaluate(text, tmp_path, syntax=True)
    machines = got["machines"]
    assert len(machines) == len(campus.hosts) > 2000
    by_name = {m["name"]: m for m in machines}
    names = {}
    for host in campus.hosts:
        m = by_name[host.name]
        options = m["networks"][0]["options"]
        assert options["ip"] == host.address
        assert options["netmask"] == "255.255.0.0"
        names[options["libvirt__network_name"]] = options["libvirt__host_ip"]
        want = vagrant.RESOURCES[host.role]
        assert m["providers"]["libvirt"] == {"memory": want.memory, "cpus": want.cpus}
    # 10.40.0.1 is no host's (the spec names it as DNS forwarder, a router's): this side takes it.
    assert names == {"campus-10.40.0.0-16": "10.40.0.1", "campus-10.41.0.0-16": "10.41.0.1"}
    assert "#   * 10.40.0.0/16\n#   * 10.41.0.0/16\n" in text


@needs_ruby
def test_resource_overrides(lab, tmp_path):
    got = evaluate(vagrant.vagrantfile(lab, resources={Role.WORKSTATION: Resources(memory=512, cpus=1)}), tmp_path)
    machines = {m["name"]: m for m in got["machines"]}
    assert machines["ws1"]["providers"]["virtualbox"]["memory"] == 512
    assert machines["dc1"]["providers"]["virtualbox"]["memory"] == 2048
    with pytest.raises(SpecError) as err:
        vagrant.vagrantfile(lab, resources={Role.WORKSTATION: Resources(memory=64, cpus=0)})
    assert err.value.problems[0].path == "resources.workstation.memory"


def test_host_side_avoids_a_host_at_the_first_address():
    text = vagrant.vagrantfile(small("192.168.56.1", "192.168.56.2", "192.168.56.10"))
    assert "virtualbox__adapter_ip: '192.168.56.3'," in text
    assert "libvirt__host_ip: '192.168.56.3'," in text
    assert "This spec's subnets lie inside it." in text  # no networks.conf line needed


def test_outside_virtualbox_range(lab):
    assert vagrant.outside_virtualbox_range(lab) == ["10.231.0.0/24"]
    assert vagrant.outside_virtualbox_range(small("192.168.57.20", subnet="192.168.57.0/24")) == []


@pytest.mark.parametrize(
    ("field", "value", "path"),
    [
        ("name", "dc1'; system('id'); '", "hosts[0].name"),
        ("name", "dc1\nend; system('id')", "hosts[0].name"),
        ("name", "DC1", "hosts[0].name"),
        ("name", "-dc1", "hosts[0].name"),
        ("address", "10.231.0.21' + `id` + '", "hosts[0].address"),
        ("address", "10.231.9.9", "hosts[0].address"),  # outside the subnets
        ("address", "10.231.0.0", "hosts[0].address"),  # the network address
    ],
)
def test_hostile_host_values_are_refused(lab, field, value, path):
    """Validation is bypassed (replace on the model): the Vagrantfile still refuses them."""
    hosts = (replace(lab.hosts[0], **{field: value}), *lab.hosts[1:])
    with pytest.raises(SpecError) as err:
        vagrant.vagrantfile(replace(lab, hosts=hosts))
    assert [p.path for p in err.value.problems] == [path]


@pytest.mark.parametrize("name", ["lab'dom", "lab\ndom", "labdom\u202e", "Labdom"])
def test_hostile_network_name_is_refused(lab, name):
    with pytest.raises(SpecError) as err:
        vagrant.vagrantfile(replace(lab, name=name))
    assert "network.name" in {p.path for p in err.value.problems}


def test_hostile_source_is_refused(lab):
    with pytest.raises(SpecError):
        vagrant.vagrantfile(replace(lab, source="/tmp/x\nsystem('id')\n.yml"))


@needs_ruby
def test_box_is_escaped(lab, tmp_path):
    """The box is the operator's, not validated: quotes, backslashes, #{} and backticks stay text."""
    box = "evil'box\\ #{exit 3} ' + `id` + ' \\'"
    got = evaluate(vagrant.vagrantfile(lab, box=box), tmp_path)
    assert got["box"] == box


@pytest.mark.parametrize("box", ["", "box\n", "box\x00", "box\x1b[31m"])
def test_bad_box_is_refused(lab, box):
    with pytest.raises(SpecError):
        vagrant.vagrantfile(lab, box=box)


@needs_ruby
def test_ruby_string_round_trips(tmp_path):
    values = ["plain", "it's", "\\", "\\'", "'", "#{1+1}", '"double"', "%q(x)", "é ü ✓"]
    program = "require 'json'\nputs JSON.generate([" + ", ".join(vagrant.ruby_string(v) for v in values) + "])\n"
    path = tmp_path / "strings.rb"
    path.write_text(program)
    done = subprocess.run([RUBY, str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == values
    for bad in ("\n", "\r", "\x00", "\x7f", "\u2028", "\u202e"):
        with pytest.raises(ValueError):
            vagrant.ruby_string(f"a{bad}b")


# --------------------------------------------------------------------------- subnet clashes


def test_overlaps_pure(lab):
    # containment: the spec's /24 inside a /16 of this machine (the lab bridge)
    bridge = ConfiguredNetwork(_net("10.231.0.0/16"), "provlab0", ipaddress.IPv4Address("10.231.0.1"))
    assert vagrant.overlaps(lab, [bridge]) == [
        "spec subnet 10.231.0.0/24 lies inside 10.231.0.0/16, in use on provlab0 of this machine (address 10.231.0.1)"
    ]
    # containment the other way: a /28 route inside the spec's /24
    found = vagrant.overlaps(lab, [ConfiguredNetwork(_net("10.231.0.16/28"), "wg0")])
    assert found == ["spec subnet 10.231.0.0/24 contains 10.231.0.16/28, in use on wg0 of this machine"]
    # the same network
    assert "is 10.231.0.0/24" in vagrant.overlaps(lab, [ConfiguredNetwork(_net("10.231.0.0/24"), "eth1")])[0]
    # no overlap; loopback and default routes never count
    assert vagrant.overlaps(lab, [ConfiguredNetwork(_net("10.232.0.0/16"), "eth0")]) == []
    assert vagrant.overlaps(lab, [_net("127.0.0.0/8"), _net("0.0.0.0/0")]) == []
    # a plain network (no interface known) is accepted too
    assert vagrant.overlaps(lab, [_net("10.0.0.0/8")]) == [
        "spec subnet 10.231.0.0/24 lies inside 10.0.0.0/8, in use on this machine"
    ]


def test_overlaps_loopback_spec():
    network = small("127.0.0.5", subnet="127.0.0.0/24")
    assert vagrant.overlaps(network, [_net("127.0.0.0/8")]) == []


def test_overlaps_names_every_clash(campus):
    configured = [
        ConfiguredNetwork(_net("10.40.7.0/24"), "eth1", ipaddress.IPv4Address("10.40.7.1")),
        ConfiguredNetwork(_net("10.0.0.0/8"), "tun0"),
    ]
    found = vagrant.overlaps(campus, configured)
    assert found == [
        "spec subnet 10.40.0.0/16 contains 10.40.7.0/24, in use on eth1 of this machine (address 10.40.7.1)",
        "spec subnet 10.40.0.0/16 lies inside 10.0.0.0/8, in use on tun0 of this machine",
        "spec subnet 10.41.0.0/16 lies inside 10.0.0.0/8, in use on tun0 of this machine",
    ]
    with pytest.raises(SpecError) as err:
        vagrant.check_subnets(campus, configured)
    assert [p.path for p in err.value.problems] == ["network.subnets[0]"] * 2 + ["network.subnets[1]"]


def test_own_vagrant_network_is_no_clash(lab):
    """The host-only adapter (or libvirt bridge) these very machines brought up."""
    own = ConfiguredNetwork(_net("10.231.0.0/24"), "vboxnet0", ipaddress.IPv4Address("10.231.0.1"))
    assert vagrant.overlaps(lab, [own]) == []
    assert vagrant.overlaps(lab, [replace(own, interface="virbr3")]) == []
    assert vagrant.overlaps(lab, [replace(own, interface="eth1")]) != []
    assert vagrant.overlaps(lab, [replace(own, address=ipaddress.IPv4Address("10.231.0.5"))]) != []
    assert vagrant.overlaps(lab, [replace(own, network=_net("10.231.0.0/16"))]) != []


def test_guest_networks_are_refused():
    """VirtualBox NAT and the libvirt management network live inside every guest."""
    for subnet, address in (("10.0.2.0/24", "10.0.2.20"), ("192.168.121.0/24", "192.168.121.20")):
        with pytest.raises(SpecError) as err:
            vagrant.check_subnets(small(address, subnet=subnet), [])
        assert "every guest" in err.value.problems[0].message
    vagrant.check_subnets(small("192.168.56.20"), [])


IP_ADDR = [
    {"ifindex": 1, "ifname": "lo", "addr_info": [{"family": "inet", "local": "127.0.0.1", "prefixlen": 8}]},
    {"ifindex": 4, "ifname": "eth0", "addr_info": [{"family": "inet", "local": "192.0.2.2", "prefixlen": 24}]},
    {"ifindex": 9, "ifname": "provlab0", "addr_info": [{"family": "inet", "local": "10.231.0.1", "prefixlen": 16}]},
    {"ifindex": 10, "ifname": "down0", "addr_info": []},
]
IP_ROUTE = [
    {"dst": "default", "gateway": "192.0.2.1", "dev": "eth0", "flags": []},
    {"dst": "10.231.0.0/16", "dev": "provlab0", "protocol": "kernel", "scope": "link", "prefsrc": "10.231.0.1"},
    {"dst": "192.0.2.0/24", "dev": "eth0", "protocol": "kernel", "scope": "link", "prefsrc": "192.0.2.2"},
    {"dst": "10.8.0.0/16", "dev": "wg0", "table": "51820"},
    {"type": "local", "dst": "10.231.0.1", "dev": "provlab0", "table": "local", "prefsrc": "10.231.0.1"},
    {"type": "broadcast", "dst": "10.231.255.255", "dev": "provlab0", "table": "local"},
    {"type": "local", "dst": "127.0.0.0/8", "dev": "lo", "table": "local"},
    {"type": "blackhole", "dst": "10.99.0.0/16"},
]


def test_networks_from_ip_json():
    """`ip -j -4 addr show` and `ip -j -4 route show table all`, as this kind of machine prints them."""
    got = vagrant.networks_from_ip(IP_ADDR, IP_ROUTE)
    assert [(str(c.network), c.interface, str(c.address)) for c in got] == [
        ("192.0.2.0/24", "eth0", "192.0.2.2"),
        ("10.231.0.0/16", "provlab0", "10.231.0.1"),
        ("10.8.0.0/16", "wg0", "None"),
    ]


@pytest.mark.skipif(shutil.which("ip") is None, reason="no iproute2 here")
def test_configured_networks_of_this_machine():
    """Read only: `ip -j` lists this machine's networks; loopback and default are left out."""
    got = vagrant.configured_networks()
    assert all(isinstance(c.network, ipaddress.IPv4Network) for c in got)
    assert not any(c.network.is_loopback or c.network.prefixlen == 0 for c in got)


def test_write(lab, tmp_path):
    out = tmp_path / "deep" / "machines"
    path = vagrant.write(lab, out, configured=[])
    assert path == out / "Vagrantfile"
    assert path.read_text() == vagrant.vagrantfile(lab)
    assert [p.name for p in out.iterdir()] == ["Vagrantfile"]
    with pytest.raises(ProvisionError, match="--force"):
        vagrant.write(lab, out, box="other/box", configured=[])
    assert "other/box" not in path.read_text()
    vagrant.write(lab, out, box="other/box", force=True, configured=[])
    assert "config.vm.box = 'other/box'" in path.read_text()


def test_write_refuses_overlaps_before_writing(lab, tmp_path):
    bridge = ConfiguredNetwork(_net("10.231.0.0/16"), "provlab0", ipaddress.IPv4Address("10.231.0.1"))
    with pytest.raises(SpecError) as err:
        vagrant.write(lab, tmp_path / "out", configured=[bridge])
    assert "provlab0" in err.value.problems[0].message
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- vagrant ssh-config


def test_parse_virtualbox_fixture():
    got = vagrant.parse_ssh_config((DATA / "virtualbox.ssh-config").read_text())
    assert list(got) == LAB_HOSTS
    ports = dict(zip(LAB_HOSTS, [2222, 2200, 2201, 2202, 2203, 2204, 2205], strict=True))
    for name, connection in got.items():
        assert connection == HostConnection(
            address="127.0.0.1",
            port=ports[name],
            user="vagrant",
            identity_file=f"/home/alice/labdom-vagrant/.vagrant/machines/{name}/virtualbox/private_key",
            proxy_command=None,
        )


def test_parse_libvirt_fixtures():
    local = vagrant.parse_ssh_config((DATA / "libvirt.ssh-config").read_text())
    remote = vagrant.parse_ssh_config((DATA / "libvirt-remote.ssh-config").read_text())
    assert list(local) == list(remote) == LAB_HOSTS
    for name in LAB_HOSTS:
        assert ipaddress.IPv4Address(local[name].address) in _net("192.168.121.0/24")
        assert local[name].port == 22 and local[name].user == "vagrant"
        assert local[name].identity_file == f"/home/alice/labdom-vagrant/.vagrant/machines/{name}/libvirt/private_key"
        assert local[name].proxy_command is None
        assert remote[name] == replace(
            local[name],
            proxy_command="ssh 'virthost.example.com' -l 'alice' -i '/home/alice/.ssh/id_ed25519' -W %h:%p",
        )


def test_parse_keys_case_insensitive_and_equals():
    text = "host dc1\n  HOSTNAME 127.0.0.1\n  user=vagrant\n  pOrT = 2222\n  identityfile=/k/private_key\n"
    assert vagrant.parse_ssh_config(text)["dc1"] == HostConnection("127.0.0.1", 2222, "vagrant", "/k/private_key")


def test_parse_quoted_identity_with_spaces():
    text = (
        "Host dc1\n  HostName 127.0.0.1\n  User vagrant\n  Port 2222\n"
        '  IdentityFile "/home/alice/Lab Machines/.vagrant/machines/dc1/virtualbox/private_key"\n'
    )
    got = vagrant.parse_ssh_config(text)["dc1"]
    assert got.identity_file == "/home/alice/Lab Machines/.vagrant/machines/dc1/virtualbox/private_key"
    with pytest.raises(ProvisionError, match="one value"):
        vagrant.parse_ssh_config(text.replace('"', ""))
    with pytest.raises(ProvisionError, match="quotes"):
        vagrant.parse_ssh_config(text.replace('key"', "key"))


def test_parse_identity_prefers_the_machine_key():
    base = "Host ws1\n  HostName 127.0.0.1\n  User vagrant\n  Port 2204\n"
    insecure = (
        "  IdentityFile /home/alice/.vagrant.d/insecure_private_keys/vagrant.key.ed25519\n"
        "  IdentityFile /home/alice/.vagrant.d/insecure_private_keys/vagrant.key.rsa\n"
    )
    own = "  IdentityFile /p/.vagrant/machines/ws1/virtualbox/private_key\n"
    # Vagrant's insecure keys (insert_key off, or before the first boot): the first one
    assert vagrant.parse_ssh_config(base + insecure)["ws1"].identity_file.endswith("vagrant.key.ed25519")
    assert vagrant.parse_ssh_config(base + insecure + own)["ws1"].identity_file.endswith("/ws1/virtualbox/private_key")
    assert vagrant.parse_ssh_config(base)["ws1"].identity_file is None


def test_parse_first_value_wins_and_proxy_none():
    text = "Host a b\n  HostName 10.0.0.1\n  HostName 10.0.0.2\n  User vagrant\n  ProxyCommand none\n"
    got = vagrant.parse_ssh_config(text)
    assert got["a"] == got["b"] == HostConnection("10.0.0.1", 22, "vagrant")


def test_parse_ignores_notices_before_the_first_host():
    text = "==> vagrant: A new version of Vagrant is available: 9.9.9 (installed version: 2.4.1)!\n\n"
    text += (DATA / "virtualbox.ssh-config").read_text()
    assert list(vagrant.parse_ssh_config(text)) == LAB_HOSTS


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("Host dc1\n  HostName 127.0.0.1\x1b[31m\n  User vagrant\n", "control"),
        ("Host dc1\n  HostName 127.0.0.1\n  User vagr\x00ant\n", "control"),
        ("Host dc1\n  HostName 127.0.0.1\n  User vagrant\n  ProxyCommand ssh x\u202e -W %h:%p\n", "control"),
        ("Host dc1\n  User vagrant\n  Port 2222\n", "no HostName"),
        ("Host dc1\n  HostName 127.0.0.1\n", "no User"),
        ("Host dc1\n  HostName 127.0.0.1\n  User vagrant\n  Port 22x\n", "bad Port"),
        ("Host dc1\n  HostName 127.0.0.1\n  User vagrant\n  Port 0\n", "bad Port"),
        ("Host dc1\n  HostName 127.0.0.1 evil.example\n  User vagrant\n", "one value"),
        ("Host dc1\n  HostName 127.0.0.1\n  User vagrant\nMatch exec id\n", "Match"),
        ("Host\n", "without a name"),
    ],
)
def test_parse_refuses(text, match):
    with pytest.raises(ProvisionError, match=match):
        vagrant.parse_ssh_config(text)


def test_parse_accepts_crlf():
    text = (DATA / "libvirt.ssh-config").read_text().replace("\n", "\r\n")
    assert list(vagrant.parse_ssh_config(text)) == LAB_HOSTS


# --------------------------------------------------------------------------- connections()


def stand_in_vagrant(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, output: str, rc: int = 0, stderr: str = ""
) -> Path:
    """A `vagrant` first on PATH that prints recorded output: no VM can boot here.

    It also notes its working directory, VAGRANT_CWD and arguments, to check how it was run.
    """
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (tmp_path / "stdout").write_text(output)
    (tmp_path / "stderr").write_text(stderr)
    script = bindir / "vagrant"
    script.write_text(
        "#!/bin/sh\n"
        f'printf "%s\\n" "$(/bin/pwd)" "$VAGRANT_CWD" "$@" > "{tmp_path}/called"\n'
        f'/bin/cat "{tmp_path}/stderr" >&2\n'
        f'/bin/cat "{tmp_path}/stdout"\n'
        f"exit {rc}\n"
    )
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("VAGRANT_CWD", "/somewhere/else")
    return tmp_path / "called"


@pytest.fixture
def machines(tmp_path, lab) -> Path:
    directory = tmp_path / "machines"
    vagrant.write(lab, directory, configured=[])
    return directory


def test_connections(lab, machines, tmp_path, monkeypatch):
    called = stand_in_vagrant(tmp_path, monkeypatch, (DATA / "libvirt-remote.ssh-config").read_text())
    got = vagrant.connections(lab, machines)
    assert called.read_text().split("\n")[:-1] == [str(machines), str(machines), "ssh-config", *LAB_HOSTS]
    assert [h.name for h in got.hosts] == LAB_HOSTS
    for host, before in zip(got.hosts, lab.hosts, strict=True):
        assert host.connection is not None
        assert host.connection.user == "vagrant"
        key = f"/home/alice/labdom-vagrant/.vagrant/machines/{host.name}/libvirt/private_key"
        assert host.connection.identity_file == key
        assert host.connection.proxy_command is not None and host.connection.proxy_command.endswith("-W %h:%p")
        assert replace(host, connection=None) == before  # nothing else changed: the spec address stays
    assert got.ssh.known_hosts_file == str(machines / "known_hosts")
    assert got.ssh.become  # vagrant logs in as vagrant and uses sudo
    assert got.ssh.identity_file == lab.ssh.identity_file
    assert replace(got, hosts=lab.hosts, ssh=lab.ssh) == lab


def test_connections_ignores_other_machines(lab, machines, tmp_path, monkeypatch):
    extra = "Host builder\n  HostName 127.0.0.1\n  User vagrant\n  Port 2299\n\n"
    stand_in_vagrant(tmp_path, monkeypatch, extra + (DATA / "virtualbox.ssh-config").read_text())
    got = vagrant.connections(lab, machines)
    assert got.host("dc2").connection == HostConnection(
        "127.0.0.1", 2200, "vagrant", "/home/alice/labdom-vagrant/.vagrant/machines/dc2/virtualbox/private_key"
    )


def test_connections_names_missing_hosts(lab, machines, tmp_path, monkeypatch):
    text = (DATA / "virtualbox.ssh-config").read_text()
    kept = "\n\n".join(b for b in text.split("\n\n") if not b.lstrip().startswith(("Host fs1", "Host ws2")))
    stand_in_vagrant(tmp_path, monkeypatch, kept)
    with pytest.raises(ProvisionError, match="host\\(s\\) fs1, ws2 of the spec"):
        vagrant.connections(lab, machines)


def test_connections_vagrant_fails(lab, machines, tmp_path, monkeypatch):
    stderr = (
        "\x1b[31mThe provider for this Vagrant-managed machine is reporting that it is not yet ready for SSH."
        "\x1b[0m\n"
    )
    stand_in_vagrant(tmp_path, monkeypatch, "", rc=1, stderr=stderr)
    with pytest.raises(ProvisionError) as err:
        vagrant.connections(lab, machines)
    message = str(err.value)
    assert "exit 1" in message and "not yet ready for SSH" in message and "\x1b" not in message


def test_connections_without_vagrant(lab, machines, tmp_path, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(ProvisionError, match="install Vagrant") as err:
        vagrant.connections(lab, machines)
    assert err.value.exit_code == 8


def test_connections_needs_a_vagrantfile(lab, tmp_path, monkeypatch):
    stand_in_vagrant(tmp_path, monkeypatch, (DATA / "virtualbox.ssh-config").read_text())
    with pytest.raises(ProvisionError, match="no Vagrantfile"):
        vagrant.connections(lab, tmp_path)


# --------------------------------------------------------------------------- the command line


def test_cli_reaches_the_hosts_as_vagrant_says(lab, machines, tmp_path, monkeypatch):
    """--vagrant DIR: the inventory for plain ansible-playbook reaches each machine at its
    forwarded port with its own key, keeps the spec address for the roles, and checks host
    keys against DIR/known_hosts."""
    import shlex

    import yaml
    from click.testing import CliRunner

    from provision.cli import cli

    stand_in_vagrant(tmp_path, monkeypatch, (DATA / "virtualbox.ssh-config").read_text())
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    spec = ROOT / "inventories" / "lab-domain.yml"
    res = CliRunner().invoke(cli, ["inventory", str(spec), "--vagrant", str(machines)])
    assert res.exit_code == 0, res.output
    inventory = yaml.load(res.stdout, Loader=yaml.BaseLoader)
    dc1 = inventory["all"]["children"]["domain"]["children"]["domain_controller"]["hosts"]["dc1"]
    assert (dc1["ansible_host"], dc1["ansible_port"], dc1["ansible_user"]) == ("127.0.0.1", "2222", "vagrant")
    assert dc1["provision_address"] == "10.231.0.21"
    assert dc1["ansible_ssh_private_key_file"].endswith("/machines/dc1/virtualbox/private_key")
    assert f"UserKnownHostsFile={machines}/known_hosts" in shlex.split(dc1["ansible_ssh_common_args"])


def test_cli_refuses_a_spec_on_vagrants_own_network(tmp_path):
    """10.0.2.0/24 is every VirtualBox machine's NAT network: a spec there is refused (exit 2)."""
    from click.testing import CliRunner

    from provision.cli import cli

    text = (ROOT / "inventories" / "lab-workgroup.yml").read_text().replace("10.231.0.", "10.0.2.")
    spec = tmp_path / "nat.yml"
    spec.write_text(text)
    res = CliRunner().invoke(cli, ["vagrant", str(spec), "-o", str(tmp_path / "vm")])
    assert res.exit_code == 2, res.output
    assert "10.0.2.0/24" in res.output and not (tmp_path / "vm" / "Vagrantfile").exists()
