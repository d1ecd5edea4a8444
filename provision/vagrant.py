"""Vagrant machines for a spec: a Vagrantfile, and how to reach the machines it boots.

``provision vagrant SPEC -o DIR`` writes a Vagrantfile with one machine per host of the
spec, at the spec's address on a private network; Vagrant only boots them (no
provisioner). ``--vagrant DIR`` on preflight, apply and verify then reaches each machine
the way ``vagrant ssh-config`` says (a forwarded port on 127.0.0.1 for VirtualBox, the
management network address and perhaps a ProxyCommand for libvirt, a key per machine),
while everything the roles configure stays on the spec's address.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import subprocess
import tempfile
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType

from provision.errors import Problem, ProvisionError, SpecError
from provision.model import HostConnection, Network, Role


@dataclass(frozen=True, slots=True)
class Resources:
    """What one machine gets from the hypervisor."""

    memory: int  # MiB
    cpus: int


# A Samba DC runs its own LDAP, Kerberos KDC, DNS and replication: below 2 GiB and 2 CPUs
# provisioning and joins time out under load. PostgreSQL with Kerberos sign-on wants room
# for its buffers; a file or mail server with a handful of lab clients does with 1 GiB.
RESOURCES: Mapping[Role, Resources] = MappingProxyType(
    {
        Role.DOMAIN_CONTROLLER: Resources(memory=2048, cpus=2),
        Role.FILE_SERVER: Resources(memory=1536, cpus=1),
        Role.MAIL_SERVER: Resources(memory=1024, cpus=1),
        Role.DATABASE_SERVER: Resources(memory=2048, cpus=2),
        Role.WORKSTATION: Resources(memory=1024, cpus=1),
        Role.PEER: Resources(memory=1024, cpus=1),
    }
)
MIN_MEMORY = 256  # MiB; Debian 12 does not boot in less

# Published for both the virtualbox and the libvirt provider.
DEFAULT_BOX = "debian/bookworm64"

# VirtualBox 6.1.28+ (Linux, Solaris; macOS before 7.0) refuses host-only addresses
# outside this range unless /etc/vbox/networks.conf lists more (Vagrant checks it too).
VIRTUALBOX_HOSTONLY_RANGE = ipaddress.IPv4Network("192.168.56.0/21")
VBOX_NETWORKS_CONF = "/etc/vbox/networks.conf"

VAGRANT_INSTALL = "https://developer.hashicorp.com/vagrant/install"

# Timeout of `vagrant ssh-config`: Vagrant asks the provider about every machine in turn.
SSH_CONFIG_TIMEOUT = 120.0
SSH_CONFIG_TIMEOUT_PER_HOST = 2.0

_HOST_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_NETWORK_NAME = re.compile(r"^[a-z][a-z0-9-]{0,62}$")  # the schema's network.name


@dataclass(frozen=True, slots=True)
class ConfiguredNetwork:
    """An IPv4 network already in use: on this machine (address or route) or inside the guests."""

    network: ipaddress.IPv4Network
    interface: str  # the device, or what uses it ("VirtualBox NAT in every guest")
    address: ipaddress.IPv4Address | None = None  # this machine's own address there, if known


# Networks every Vagrant guest has besides the spec's: a spec subnet overlapping one of them
# would be routed out of the wrong interface inside the guests.
GUEST_NETWORKS: tuple[ConfiguredNetwork, ...] = (
    ConfiguredNetwork(ipaddress.IPv4Network("10.0.2.0/24"), "the VirtualBox NAT interface of every guest"),
    ConfiguredNetwork(
        ipaddress.IPv4Network("192.168.121.0/24"), "the vagrant-libvirt management network of every guest"
    ),
)


# --------------------------------------------------------------------------- Ruby quoting


def _control_characters(text: str) -> list[str]:
    return [f"U+{ord(c):04X}" for c in text if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp")]


def ruby_string(value: str) -> str:
    """A single-quoted Ruby literal of ``value``: nothing in it is interpolated or evaluated.

    Inside single quotes Ruby only knows ``\\\\`` and ``\\'``; control and format characters
    are refused (a newline would end a comment, an RTL override would hide text).
    """
    bad = _control_characters(value)
    if bad:
        raise ValueError(f"control or format characters ({', '.join(bad)}) in {value!r}")
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _comment_text(value: str) -> str:
    """Text for a Ruby comment line: one line, nothing hidden."""
    bad = _control_characters(value)
    if bad:
        raise ValueError(f"control or format characters ({', '.join(bad)}) in {value!r}")
    return value


# --------------------------------------------------------------------------- the Vagrantfile


@dataclass(frozen=True, slots=True)
class _Subnet:
    network: ipaddress.IPv4Network
    host_side: ipaddress.IPv4Address  # this machine's address on it (host-only adapter, libvirt bridge)
    libvirt_name: str


def _subnets(network: Network, problems: list[Problem]) -> list[_Subnet]:
    """The spec's subnets, each with the address this machine takes on it.

    VirtualBox and vagrant-libvirt give the host the subnet's first address unless told
    otherwise; a spec host may already own it, so take the first address no host uses.
    """
    used = {h.address for h in network.hosts} | {n.address for n in network.rollout.execution_nodes}
    out: list[_Subnet] = []
    for i, text in enumerate(network.subnets):
        try:
            net = ipaddress.IPv4Network(text, strict=True)
        except ValueError as exc:
            problems.append(Problem(f"network.subnets[{i}]", f"not an IPv4 network: {exc}"))
            continue
        if net.prefixlen > 30:
            problems.append(Problem(f"network.subnets[{i}]", f"{net} leaves no room for a host side and guests"))
            continue
        host_side = next((a for a in net.hosts() if str(a) not in used), None)
        if host_side is None:
            message = f"{net}: every address is a host's, none is left for this machine"
            problems.append(Problem(f"network.subnets[{i}]", message))
            continue
        out.append(_Subnet(net, host_side, f"{network.name}-{net.network_address}-{net.prefixlen}"))
    return out


def _resources(overrides: Mapping[Role, Resources] | None, problems: list[Problem]) -> dict[Role, Resources]:
    table = dict(RESOURCES)
    for role, res in (overrides or {}).items():
        if not isinstance(role, Role):
            problems.append(Problem("resources", f"unknown role {role!r}"))
            continue
        mem, cpus = res.memory, res.cpus
        if isinstance(mem, bool) or not isinstance(mem, int) or mem < MIN_MEMORY:
            problems.append(Problem(f"resources.{role.value}.memory", f"{mem!r}: at least {MIN_MEMORY} MiB"))
            continue
        if isinstance(cpus, bool) or not isinstance(cpus, int) or not 1 <= cpus <= 512:
            problems.append(Problem(f"resources.{role.value}.cpus", f"{cpus!r}: a whole number of CPUs, 1 or more"))
            continue
        table[role] = res
    return table


def _quoted(problems: list[Problem], path: str, value: str) -> str:
    try:
        return ruby_string(value)
    except ValueError as exc:
        problems.append(Problem(path, str(exc)))
        return "''"


def outside_virtualbox_range(network: Network) -> list[str]:
    """Spec subnets VirtualBox 6.1.28+ refuses for host-only networks without /etc/vbox/networks.conf."""
    out = []
    for text in network.subnets:
        try:
            net = ipaddress.IPv4Network(text, strict=False)
        except ValueError:
            continue
        if not net.subnet_of(VIRTUALBOX_HOSTONLY_RANGE):
            out.append(str(net))
    return out


def vagrantfile(network: Network, box: str = DEFAULT_BOX, resources: Mapping[Role, Resources] | None = None) -> str:
    """The Vagrantfile of ``network``: one machine per host, deterministic, every value quoted.

    Host names and addresses were validated with the spec, but this text is Ruby that
    Vagrant evaluates: a network built by hand must not get code into it, so names and
    addresses are checked again and every string is a single-quoted literal.
    """
    problems: list[Problem] = []
    source = Path(network.source).name if network.source else "(no file)"
    # The name goes into machine and libvirt network names (and libvirt's XML): the spec's rule.
    if not _NETWORK_NAME.match(network.name):
        problems.append(Problem("network.name", f"{network.name!r} is not a network name (a-z, 0-9, hyphens)"))
    try:
        header_source = _comment_text(source)
    except ValueError as exc:
        problems.append(Problem("source", str(exc)))
        header_source = ""
    if not box:
        problems.append(Problem("box", "empty box name"))
    q_box = _quoted(problems, "box", box)
    table = _resources(resources, problems)
    subnets = _subnets(network, problems)

    lines: list[str] = []
    seen: set[str] = set()
    for i, host in enumerate(network.hosts):
        where = f"hosts[{i}]"
        if not _HOST_NAME.match(host.name):
            problems.append(Problem(f"{where}.name", f"{host.name!r} is not a host name (a-z, 0-9, inner hyphens)"))
            continue
        if host.name in seen:
            problems.append(Problem(f"{where}.name", f"{host.name} is defined twice"))
            continue
        seen.add(host.name)
        try:
            address = ipaddress.IPv4Address(host.address)
        except ValueError:
            problems.append(Problem(f"{where}.address", f"{host.address!r} is not an IPv4 address"))
            continue
        subnet = next((s for s in subnets if address in s.network), None)
        if subnet is None:
            problems.append(Problem(f"{where}.address", f"{address} is in none of the spec's subnets"))
            continue
        if address in (subnet.network.network_address, subnet.network.broadcast_address):
            problems.append(Problem(f"{where}.address", f"{address} is not a host address of {subnet.network}"))
            continue
        res = table[host.role]
        name = _quoted(problems, f"{where}.name", host.name)
        vm_name = _quoted(problems, "network.name", f"{network.name}-{host.name}")
        lines += [
            "",
            f"  # {host.name}: {host.role.value}",
            f"  config.vm.define {name} do |machine|",
            f"    machine.vm.hostname = {name}",
            "    machine.vm.network :private_network,",
            f"      ip: {ruby_string(str(address))},",
            f"      netmask: {ruby_string(str(subnet.network.netmask))},",
            f"      virtualbox__adapter_ip: {ruby_string(str(subnet.host_side))},",
            f"      libvirt__network_name: {_quoted(problems, 'network.name', subnet.libvirt_name)},",
            f"      libvirt__host_ip: {ruby_string(str(subnet.host_side))},",
            "      libvirt__dhcp_enabled: false,",
            "      libvirt__forward_mode: 'none'",
            "    machine.vm.provider :virtualbox do |vb|",
            f"      vb.name = {vm_name}",
            f"      vb.memory = {int(res.memory)}",
            f"      vb.cpus = {int(res.cpus)}",
            "    end",
            "    machine.vm.provider :libvirt do |libvirt|",
            f"      libvirt.memory = {int(res.memory)}",
            f"      libvirt.cpus = {int(res.cpus)}",
            "    end",
            "  end",
        ]
    if problems:
        raise SpecError(network.source or network.name, problems)

    conf = outside_virtualbox_range(network)
    head = [
        "# -*- mode: ruby -*-",
        "# vi: set ft=ruby :",
        "#",
        f"# Generated by `provision vagrant` from the spec {network.name} ({header_source}).",
        "# Do not edit by hand: change the spec and run `provision vagrant SPEC -o DIR --force`.",
        "#",
        "# One machine per host of the spec, at the spec's address on a private network. Its",
        "# first interface is Vagrant's own (VirtualBox NAT, 10.0.2.15; or the vagrant-libvirt",
        "# management network, 192.168.121.0/24), which Vagrant and provision reach it through;",
        "# provision binds Samba and DNS to the spec address only.",
        "# This machine's side of each private network (host-only adapter, libvirt bridge):",
        *(f"#   {s.network}: {s.host_side} (libvirt network {s.libvirt_name})" for s in subnets),
        "# Hosts of different subnets reach each other only through a router the spec does not",
        "# describe; Vagrant adds none.",
        "#",
        "# VirtualBox 6.1.28 and later (Linux, Solaris; macOS before 7.0) allow host-only",
        f"# addresses only in {VIRTUALBOX_HOSTONLY_RANGE} unless {VBOX_NETWORKS_CONF} allows more.",
    ]
    if conf:
        head += ["# This spec needs these lines there (as root; libvirt needs nothing of the kind):"]
        head += [f"#   * {net}" for net in conf]
    else:
        head += ["# This spec's subnets lie inside it."]
    head += [
        "#",
        "# No provisioner: `provision apply SPEC --vagrant DIR` configures the machines",
        "# (`provision preflight SPEC --vagrant DIR` checks them first).",
        "",
        "Vagrant.configure('2') do |config|",
        f"  config.vm.box = {q_box}",
        "  config.vm.synced_folder '.', '/vagrant', disabled: true",
        "  # Vagrant replaces its well-known insecure key with a key of each machine's own.",
        "  config.ssh.insert_key = true",
    ]
    return "\n".join([*head, *lines, "end", ""])


# --------------------------------------------------------------------------- this machine's networks


def _run_ip(*args: str) -> list[dict[str, object]]:
    argv = ["ip", "-j", "-4", *args]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise ProvisionError("cannot read this machine's networks: `ip` (iproute2) is not installed") from None
    except (OSError, subprocess.SubprocessError) as exc:
        raise ProvisionError(f"cannot read this machine's networks: {' '.join(argv)}: {exc}") from None
    if proc.returncode != 0:
        raise ProvisionError(f"`{' '.join(argv)}` failed: {proc.stderr.strip()[-500:]}")
    try:
        data = json.loads(proc.stdout or "[]")
    except json.JSONDecodeError as exc:
        raise ProvisionError(f"`{' '.join(argv)}` printed no JSON: {exc}") from None
    if not isinstance(data, list):
        raise ProvisionError(f"`{' '.join(argv)}` printed {type(data).__name__}, not a list")
    return [item for item in data if isinstance(item, dict)]


def networks_from_ip(
    addresses: Sequence[Mapping[str, object]], routes: Sequence[Mapping[str, object]]
) -> list[ConfiguredNetwork]:
    """The networks in ``ip -j -4 addr show`` and ``ip -j -4 route show table all`` output.

    Loopback and default routes are left out; so are local and broadcast routes (the
    addresses themselves are in ``addr``). Each (network, interface) appears once.
    """
    out: dict[tuple[ipaddress.IPv4Network, str], ConfiguredNetwork] = {}

    def add(net: ipaddress.IPv4Network, dev: str, address: ipaddress.IPv4Address | None) -> None:
        if net.prefixlen == 0 or net.is_loopback:
            return
        out.setdefault((net, dev), ConfiguredNetwork(net, dev, address))

    for link in addresses:
        dev = str(link.get("ifname", "?"))
        infos = link.get("addr_info")
        for info in infos if isinstance(infos, list) else []:
            if not isinstance(info, dict) or info.get("family", "inet") != "inet":
                continue
            try:
                iface = ipaddress.IPv4Interface(f"{info['local']}/{info['prefixlen']}")
            except (KeyError, ValueError):
                continue
            add(iface.network, dev, iface.ip)
    for route in routes:
        if route.get("type", "unicast") != "unicast":
            continue
        dst = str(route.get("dst", ""))
        if dst in ("", "default"):
            continue
        try:
            net = ipaddress.IPv4Network(dst, strict=False)
        except ValueError:
            continue
        src: ipaddress.IPv4Address | None = None
        if "prefsrc" in route:
            try:
                src = ipaddress.IPv4Address(str(route["prefsrc"]))
            except ValueError:
                src = None
        add(net, str(route.get("dev", "?")), src)
    return list(out.values())


def configured_networks() -> list[ConfiguredNetwork]:
    """This machine's IPv4 networks: its addresses' networks and its routes (read with ``ip -j``)."""
    return networks_from_ip(_run_ip("addr", "show"), _run_ip("route", "show", "table", "all"))


def _host_side(network: Network, subnet: ipaddress.IPv4Network) -> ipaddress.IPv4Address | None:
    found = _subnets(network, [])
    return next((s.host_side for s in found if s.network == subnet), None)


def _overlaps(
    network: Network, configured: Iterable[ConfiguredNetwork | ipaddress.IPv4Network]
) -> list[tuple[int, str]]:
    entries = [c if isinstance(c, ConfiguredNetwork) else ConfiguredNetwork(c, "") for c in configured]
    found: list[tuple[int, str]] = []
    for i, text in enumerate(network.subnets):
        try:
            subnet = ipaddress.IPv4Network(text, strict=False)
        except ValueError:
            continue
        for c in entries:
            net = c.network
            if net.prefixlen == 0 or net.is_loopback or not subnet.overlaps(net):
                continue
            # The private network this very Vagrantfile's machines brought up (VirtualBox
            # host-only adapter, vagrant-libvirt bridge, with the host side we assign):
            # writing the Vagrantfile again must not be refused because of it.
            if (
                net == subnet
                and c.interface.startswith(("vboxnet", "virbr"))
                and c.address is not None
                and c.address == _host_side(network, subnet)
            ):
                continue
            if net == subnet:
                how = "is"
            elif subnet.subnet_of(net):
                how = "lies inside"
            elif net.subnet_of(subnet):
                how = "contains"
            else:
                how = "overlaps"
            where = f"{c.interface}" if c.interface else "this machine"
            if c.interface and not c.interface.startswith("the "):
                where = f"{c.interface} of this machine"
                if c.address is not None:
                    where += f" (address {c.address})"
            message = f"spec subnet {subnet} {how} {net}, in use on {where}"
            if (i, message) not in found:
                found.append((i, message))
    return found


def overlaps(network: Network, configured: Iterable[ConfiguredNetwork | ipaddress.IPv4Network]) -> list[str]:
    """Every clash of the spec's subnets with networks in use (pure: the list is given).

    A Vagrant private network on a subnet this machine already reaches through another
    interface would capture (or lose) that traffic, so such a spec is refused.
    """
    return [message for _, message in _overlaps(network, configured)]


def check_subnets(network: Network, configured: Iterable[ConfiguredNetwork] | None = None) -> None:
    """Refuse, with every clash at once, a spec whose subnets overlap networks already in use.

    ``configured`` defaults to this machine's networks; the guests' own Vagrant networks
    (VirtualBox NAT, libvirt management) are always added.
    """
    present = configured_networks() if configured is None else list(configured)
    found = _overlaps(network, [*present, *GUEST_NETWORKS])
    if found:
        raise SpecError(
            network.source or network.name,
            [Problem(f"network.subnets[{i}]", message) for i, message in found],
        )


def write(
    network: Network,
    out_dir: Path,
    box: str = DEFAULT_BOX,
    force: bool = False,
    resources: Mapping[Role, Resources] | None = None,
    configured: Iterable[ConfiguredNetwork] | None = None,
) -> Path:
    """Write ``out_dir/Vagrantfile`` (creating ``out_dir``); an existing one only with ``force``."""
    check_subnets(network, configured)
    text = vagrantfile(network, box, resources)
    target = out_dir / "Vagrantfile"
    if target.is_dir():
        raise ProvisionError(f"{target} is a directory")
    if (target.exists() or target.is_symlink()) and not force:
        raise ProvisionError(f"{target} exists; --force overwrites it")
    out_dir.mkdir(parents=True, exist_ok=True)
    # Atomic: a Vagrantfile is never seen half written.
    fd, tmp = tempfile.mkstemp(prefix=".Vagrantfile.", dir=out_dir)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)  # noqa: PTH101 - the temporary file is only a name here
        os.replace(tmp, target)  # noqa: PTH105
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


# --------------------------------------------------------------------------- vagrant ssh-config

_KEYWORD = re.compile(r"^([A-Za-z][A-Za-z0-9]*)(?:[ \t]*=[ \t]*|[ \t]+)(.*)$")


def _one_value(value: str, key: str, lineno: int) -> str:
    """A single argument, unquoted as ssh_config(5) does (Vagrant quotes paths with spaces)."""
    value = value.strip()
    if value.startswith('"'):
        if len(value) < 2 or not value.endswith('"') or '"' in value[1:-1]:
            raise ProvisionError(f"vagrant ssh-config, line {lineno}: unbalanced quotes in {key}")
        return value[1:-1]
    if not value or any(c in value for c in ' \t"'):
        raise ProvisionError(f"vagrant ssh-config, line {lineno}: {key} takes one value, got {value!r}")
    return value


def parse_ssh_config(text: str) -> dict[str, HostConnection]:
    """The connection of every ``Host`` block in ``vagrant ssh-config`` output.

    Keywords are case-insensitive and the first value wins (ssh_config(5)); ``IdentityFile``
    may repeat: the machine's own ``private_key`` (Vagrant's inserted key) is preferred, else
    the first. ``UserKnownHostsFile`` and ``StrictHostKeyChecking`` are ignored on purpose:
    provision checks host keys with its own known_hosts. Lines before the first ``Host``
    (notices Vagrant may print) are ignored; control characters are refused anywhere.
    """
    blocks: list[tuple[list[str], dict[str, str], list[str], int]] = []
    current: tuple[list[str], dict[str, str], list[str], int] | None = None
    for lineno, raw in enumerate(text.split("\n"), 1):
        line = raw.removesuffix("\r")
        bad = [c for c in line if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") and c != "\t"]
        if bad:
            raise ProvisionError(
                f"vagrant ssh-config, line {lineno}: control characters "
                f"({', '.join(f'U+{ord(c):04X}' for c in bad)}); refusing its output"
            )
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = _KEYWORD.match(stripped)
        key = (match.group(1) if match else stripped).lower()
        value = match.group(2).strip() if match else ""
        if key == "host":
            names = value.split()
            if not names:
                raise ProvisionError(f"vagrant ssh-config, line {lineno}: Host without a name")
            current = (names, {}, [], lineno)
            blocks.append(current)
            continue
        if current is None:
            continue
        if key == "match":
            raise ProvisionError(f"vagrant ssh-config, line {lineno}: Match blocks are not Vagrant's")
        if key in ("hostname", "user", "port"):
            if not match:
                raise ProvisionError(f"vagrant ssh-config, line {lineno}: {key} without a value")
            current[1].setdefault(key, _one_value(value, key, lineno))
        elif key == "identityfile":
            if not match:
                raise ProvisionError(f"vagrant ssh-config, line {lineno}: IdentityFile without a value")
            current[2].append(_one_value(value, "IdentityFile", lineno))
        elif key == "proxycommand":
            if not match:
                raise ProvisionError(f"vagrant ssh-config, line {lineno}: ProxyCommand without a value")
            current[1].setdefault(key, value)  # verbatim: ssh hands it to the shell as is
        # Anything else (UserKnownHostsFile, StrictHostKeyChecking, PasswordAuthentication,
        # IdentitiesOnly, LogLevel, PubkeyAcceptedKeyTypes, HostKeyAlgorithms, ForwardAgent,
        # Include...) is deliberately not carried over.

    out: dict[str, HostConnection] = {}
    for names, values, identities, lineno in blocks:
        if "hostname" not in values:
            raise ProvisionError(f"vagrant ssh-config, line {lineno}: Host {names[0]} has no HostName")
        if "user" not in values:
            raise ProvisionError(f"vagrant ssh-config, line {lineno}: Host {names[0]} has no User")
        port_text = values.get("port", "22")
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ProvisionError(f"vagrant ssh-config, line {lineno}: Host {names[0]}: bad Port {port_text!r}")
        own = [p for p in identities if Path(p).name == "private_key"]
        identity = (own or identities)[0] if identities else None
        proxy = values.get("proxycommand")
        connection = HostConnection(
            address=values["hostname"],
            port=int(port_text),
            user=values["user"],
            identity_file=identity,
            proxy_command=None if proxy is None or proxy.lower() == "none" else proxy,
        )
        for name in names:
            out.setdefault(name, connection)
    return out


def _printable(text: str, limit: int = 800) -> str:
    """Program output fit for an error message: no escape sequences, bounded."""
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)
    text = "".join(c if c in "\n\t" or unicodedata.category(c) not in ("Cc", "Cf") else "?" for c in text)
    text = text.strip()
    return text if len(text) <= limit else "..." + text[-limit:]


def connections(network: Network, directory: Path, timeout: float | None = None) -> Network:
    """``network`` with every host's connection from ``vagrant ssh-config`` run in ``directory``.

    Host keys are recorded in ``directory/known_hosts`` on first contact and checked
    afterwards. Vagrant boxes log in as ``vagrant`` with passwordless sudo, so a network
    reached as anyone but root becomes root with sudo.
    """
    directory = directory.resolve()
    if not (directory / "Vagrantfile").is_file():
        raise ProvisionError(f"{directory} has no Vagrantfile: `provision vagrant SPEC -o {directory}` writes one")
    names = [h.name for h in network.hosts]
    bad = [n for n in names if not _HOST_NAME.match(n)]
    if bad:
        raise SpecError(network.source or network.name, [Problem("hosts", f"{n!r} is not a host name") for n in bad])
    exe = shutil.which("vagrant")
    if exe is None:
        raise ProvisionError(
            f"vagrant is not installed (not on PATH): install Vagrant ({VAGRANT_INSTALL}) "
            "and VirtualBox or the vagrant-libvirt plugin"
        )
    # Inherit the environment, but make sure Vagrant reads this directory's Vagrantfile:
    # VAGRANT_CWD and VAGRANT_VAGRANTFILE would point it elsewhere.
    env = dict(os.environ)
    env["VAGRANT_CWD"] = str(directory)
    env.pop("VAGRANT_VAGRANTFILE", None)
    env.setdefault("VAGRANT_CHECKPOINT_DISABLE", "1")  # no version check on the way
    limit = timeout if timeout is not None else SSH_CONFIG_TIMEOUT + SSH_CONFIG_TIMEOUT_PER_HOST * len(names)
    argv = [exe, "ssh-config", *names]
    try:
        proc = subprocess.run(
            argv, cwd=directory, env=env, stdin=subprocess.DEVNULL, capture_output=True, timeout=limit
        )
    except FileNotFoundError:
        raise ProvisionError(f"vagrant is not installed ({exe} is gone): install Vagrant ({VAGRANT_INSTALL})") from None
    except subprocess.TimeoutExpired:
        raise ProvisionError(f"`vagrant ssh-config` in {directory} did not finish within {limit:.0f} s") from None
    except OSError as exc:
        raise ProvisionError(f"cannot run vagrant: {exc}") from None
    try:
        stdout = proc.stdout.decode("utf-8")
    except UnicodeDecodeError:
        raise ProvisionError(f"`vagrant ssh-config` in {directory} printed text that is not UTF-8") from None
    stderr = proc.stderr.decode("utf-8", errors="replace")
    if proc.returncode != 0:
        raise ProvisionError(
            f"`vagrant ssh-config` in {directory} failed (exit {proc.returncode}); are the machines up "
            f"(`vagrant status`, `vagrant up`)?\n{_printable(stderr or stdout)}"
        )
    found = parse_ssh_config(stdout)
    missing = [n for n in names if n not in found]
    if missing:
        raise ProvisionError(
            f"`vagrant ssh-config` in {directory} says nothing of host(s) {', '.join(missing)} of the spec: "
            "is this the spec's Vagrantfile (`provision vagrant SPEC -o DIR`), and are they up?"
        )
    hosts = tuple(replace(h, connection=found[h.name]) for h in network.hosts)
    out = replace(network, hosts=hosts)
    if any(h.connection is not None and h.connection.user != "root" for h in hosts):
        out = replace(out, ssh=replace(out.ssh, become=True))
    return out.with_connection(known_hosts_file=str(directory / "known_hosts"))
