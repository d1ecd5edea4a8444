"""Cross-host rules (what JSON Schema cannot say) and building the model.

The rules run on the parsed dict even when the schema found problems, so a
user sees every problem in one pass; parts the schema already rejected are
skipped rather than reported twice. Host ranges are expanded here, once.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from provision.errors import Problem
from provision.model import (
    DEFAULT_ORDER,
    DOMAIN_ROLES,
    Domain,
    FirewallPolicy,
    Group,
    Host,
    Mode,
    Network,
    PasswordPolicy,
    Policies,
    Printer,
    Role,
    Rollout,
    SecretRef,
    Share,
    SmbPolicy,
    Ssh,
    User,
)

NETBIOS_MAX = 15
_RANGE = re.compile(r"^(?P<pre>[a-z0-9][a-z0-9-]*)?\[(?P<start>[0-9]+):(?P<end>[0-9]+)\](?P<post>[a-z0-9-]*)$")
_HOSTNAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
SHARE_ROLES = frozenset({Role.PEER, Role.FILE_SERVER})
MAX_HOSTS = 100_000


def ip_to_int(text: str) -> int | None:
    """Dotted quad to int; None if malformed (faster than ipaddress for 10k hosts)."""
    parts = text.split(".")
    if len(parts) != 4:
        return None
    try:
        if not all(p.isascii() and p.isdigit() and (p == "0" or p[0] != "0") and int(p) < 256 for p in parts):
            return None
        return int.from_bytes(socket.inet_aton(text), "big")
    except OSError:
        return None


def _fast_ip(text: str) -> int | None:
    """ip_to_int for text the schema already checked as dotted-quad (the common case)."""
    try:
        return int.from_bytes(socket.inet_aton(text), "big") if text.count(".") == 3 else None
    except OSError:
        return None


def int_to_ip(value: int) -> str:
    return socket.inet_ntoa(value.to_bytes(4, "big"))


def parse_cidr(text: str) -> tuple[int, int] | None:
    """(network, prefix) of 'A.B.C.D/N' with host bits zero, else None."""
    addr, sep, prefix = text.partition("/")
    if not sep or not (prefix.isascii() and prefix.isdigit()) or (prefix != "0" and prefix[0] == "0"):
        return None
    if int(prefix) > 32:
        return None
    net = ip_to_int(addr)
    if net is None:
        return None
    bits = int(prefix)
    mask = (0xFFFFFFFF << (32 - bits)) & 0xFFFFFFFF
    if net & ~mask & 0xFFFFFFFF:
        return None
    return net, bits


@dataclass
class Expanded:
    """A host of the spec after range expansion (still raw dict based)."""

    name: str
    address: str
    index: int  # index of the hosts[] entry it came from
    range_name: str | None = None
    ip: int = 0


@dataclass
class Found:
    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    hosts: list[Expanded] = field(default_factory=list)

    def error(self, path: str, message: str) -> None:
        self.errors.append(Problem(path, message))

    def warn(self, path: str, message: str) -> None:
        self.warnings.append(Problem(path, message, severity="warning"))


_EMPTY: dict[str, Any] = {}


def _list(value: Any) -> list[Any]:
    return value if type(value) is list else []


def _dict(value: Any) -> Mapping[str, Any]:
    # type() not isinstance(): YAML gives plain dicts, and the ABC check is slow on 10k hosts
    return value if type(value) is dict else _EMPTY


def _is_bad(path: str, bad: set[str]) -> bool:
    return any(b == path or b.startswith(path + ".") or b.startswith(path + "[") for b in bad)


# --------------------------------------------------------------------------- expansion


def range_size(name: str) -> int | None:
    """How many hosts a range name makes, without making them; None if not a range."""
    m = _RANGE.match(name)
    if m is None:
        return None
    return max(0, int(m["end"]) - int(m["start"]) + 1)


def expand_range(name: str) -> list[str] | None:
    """'ws[001:250]' -> ['ws001', ..., 'ws250'] (width of START kept); None if not a range."""
    m = _RANGE.match(name)
    if m is None:
        return None
    start, end = m["start"], m["end"]
    width = len(start)
    pre, post = m["pre"] or "", m["post"]
    return [f"{pre}{i:0{width}d}{post}" for i in range(int(start), int(end) + 1)]


def _expand_hosts(hosts: list[Any], bad: set[str], found: Found) -> None:
    seen_names: dict[str, int] = {}
    seen_addrs: dict[int, int] = {}
    total = 0
    for i, entry in enumerate(hosts):
        if type(entry) is not dict:
            continue
        path = f"hosts[{i}]"
        name, address = entry.get("name"), entry.get("address")
        if not isinstance(name, str) or not isinstance(address, str):
            continue
        if f"{path}.name" in bad or f"{path}.address" in bad:
            continue
        size = range_size(name) if "[" in name else None
        if size is not None and total + size > MAX_HOSTS:
            found.error(f"{path}.name", f"ranges expand to more than {MAX_HOSTS} hosts")
            return
        names = expand_range(name) if size is not None else None
        if names is None:
            addr = _fast_ip(address)
            if addr is None:
                found.error(f"{path}.address", f"{address!r} is a pool or range, but '{name}' is a single host")
                continue
            if len(name) > NETBIOS_MAX:
                found.error(f"{path}.name", f"'{name}' is longer than {NETBIOS_MAX} characters (NetBIOS limit)")
            addrs = [addr]
            names = [name]
        else:
            if not names:
                found.error(f"{path}.name", f"range '{name}' is empty: its start is after its end")
                continue
            total += len(names)
            if len(names[-1]) > NETBIOS_MAX:
                found.error(
                    f"{path}.name",
                    f"range '{name}' makes names like '{names[-1]}', "
                    f"longer than {NETBIOS_MAX} characters (NetBIOS limit)",
                )
            pool = _address_pool(address, len(names), f"{path}.address", found)
            if pool is None:
                continue
            addrs = pool
        range_name = name if "[" in name else None
        single = range_name is None
        for n, a in zip(names, addrs, strict=True):
            text = address if single else int_to_ip(a)
            if n in seen_names:
                other = seen_names[n]
                where = "" if other == i else f" (also hosts[{other}])"
                found.error(f"{path}.name", f"duplicate host name '{n}'{where}")
                found.hosts.append(Expanded(n, text, i, range_name, a))
                continue
            seen_names[n] = i
            if a in seen_addrs:
                other = seen_addrs[a]
                where = "within this range" if other == i else f"also used by hosts[{other}]"
                found.error(f"{path}.address", f"address {int_to_ip(a)} overlaps: {where}")
                continue
            seen_addrs[a] = i
            found.hosts.append(Expanded(n, text, i, range_name, a))


def _address_pool(address: str, count: int, path: str, found: Found) -> list[int] | None:
    if address.endswith("+"):
        start = ip_to_int(address[:-1])
        if start is None:
            found.error(path, f"{address!r}: {address[:-1]!r} is not a valid IPv4 address")
            return None
        end = start + count - 1
    elif "-" in address:
        first, _, last = address.partition("-")
        start, end_ = ip_to_int(first), ip_to_int(last)
        if start is None or end_ is None:
            found.error(path, f"{address!r} is not a valid address range")
            return None
        if end_ < start:
            found.error(path, f"address range {address!r} ends before it starts")
            return None
        if end_ - start + 1 < count:
            found.error(
                path, f"address range {address!r} holds {end_ - start + 1} addresses, the name range needs {count}"
            )
            return None
        end = start + count - 1
    else:
        single = ip_to_int(address)
        if single is None or count != 1:
            found.error(path, f"a range of {count} hosts needs an address pool ('{address}+') or range ('A-B')")
            return None
        return [single]
    if end > 0xFFFFFFFF:
        found.error(path, f"address pool {address!r} runs past 255.255.255.255")
        return None
    return list(range(start, end + 1))


# --------------------------------------------------------------------------- rules


def cross_check(data: Mapping[str, Any], bad: set[str]) -> Found:
    """Apply every cross-host rule; return errors, warnings and expanded hosts."""
    found = Found()
    network = _dict(data.get("network"))
    mode = network.get("mode") if "network.mode" not in bad else None
    hosts = _list(data.get("hosts"))
    _expand_hosts(hosts, bad, found)

    _check_subnets(network, bad, found)
    _check_roles(mode, hosts, bad, found)
    users, groups = _check_directory(data, mode, found)
    _check_shares(data, hosts, users, groups, mode, found)
    if mode == "domain":
        _check_domain(data, hosts, found)
    elif mode == "workgroup" and "domain" in data:
        found.error("domain", "a 'domain' block only applies in domain mode (network.mode: domain)")
    _check_policies(data, mode, bad, found)
    return found


def _check_subnets(network: Mapping[str, Any], bad: set[str], found: Found) -> None:
    nets = []
    for j, text in enumerate(_list(network.get("subnets"))):
        parsed = parse_cidr(text) if isinstance(text, str) else None
        if parsed is not None:
            nets.append(parsed)
        elif f"network.subnets[{j}]" not in bad:
            found.error(f"network.subnets[{j}]", f"{text!r} is not a valid IPv4 subnet")
    if not nets:
        return
    masks = [(net, (0xFFFFFFFF << (32 - bits)) & 0xFFFFFFFF, bits) for net, bits in nets]
    declared = ", ".join(x for x in _list(network.get("subnets")) if isinstance(x, str))
    outside: set[int] = set()
    edge: set[int] = set()
    for h in found.hosts:
        a = h.ip
        inside = next(((net, mask, bits) for net, mask, bits in masks if a & mask == net), None)
        if inside is None:
            if h.index not in outside:
                outside.add(h.index)
                found.error(f"hosts[{h.index}].address", f"{h.address} is outside the network's subnets ({declared})")
            continue
        net, mask, bits = inside
        if bits <= 30 and (a == net or a == net | (~mask & 0xFFFFFFFF)) and h.index not in edge:
            edge.add(h.index)
            found.error(f"hosts[{h.index}].address", f"{h.address} is the network or broadcast address of its subnet")


def _check_roles(mode: Any, hosts: list[Any], bad: set[str], found: Found) -> None:
    if mode not in ("workgroup", "domain"):
        return
    for i, entry in enumerate(hosts):
        role = _dict(entry).get("role")
        if not isinstance(role, str) or f"hosts[{i}].role" in bad:
            continue
        if mode == "workgroup" and role != "peer":
            found.error(f"hosts[{i}].role", f"role '{role}' needs domain mode; a workgroup has only 'peer' hosts")
        elif mode == "domain" and role == "peer":
            found.error(
                f"hosts[{i}].role",
                "role 'peer' is for workgroup mode; in a domain use domain_controller, "
                "file_server, mail_server, database_server or workstation",
            )
        if "client" in _dict(entry) and role != "workstation":
            found.warn(f"hosts[{i}].client", "'client' only applies to workstations; file servers always use winbind")


def _check_directory(data: Mapping[str, Any], mode: Any, found: Found) -> tuple[set[str], set[str]]:
    groups: set[str] = set()
    for j, g in enumerate(_list(data.get("groups"))):
        name = _dict(g).get("name")
        if isinstance(name, str):
            if name in groups:
                found.error(f"groups[{j}].name", f"duplicate group '{name}'")
            groups.add(name)
    users: set[str] = set()
    for j, u in enumerate(_list(data.get("users"))):
        u = _dict(u)
        name = u.get("name")
        if isinstance(name, str):
            if name in users:
                found.error(f"users[{j}].name", f"duplicate user '{name}'")
            if name in groups:
                found.error(
                    f"users[{j}].name",
                    f"'{name}' is both a user and a group; account names must be unique",
                )
            if name in ("root", "administrator", "guest", "nobody", "krbtgt"):
                found.error(f"users[{j}].name", f"'{name}' is a built-in account and cannot be managed")
            users.add(name)
        for k, g in enumerate(_list(u.get("groups"))):
            if isinstance(g, str) and g not in groups:
                found.error(f"users[{j}].groups[{k}]", f"group '{g}' is not declared under groups")
    return users, groups


def _share_sites(
    data: Mapping[str, Any], hosts: list[Any], found: Found
) -> list[tuple[str, Mapping[str, Any], list[int]]]:
    """(path, share, host indices) for every share, per-host and network-wide."""
    by_name: dict[str, int] = {}
    if data.get("shares"):
        for e in found.hosts:
            by_name.setdefault(e.name, e.index)
    sites: list[tuple[str, Mapping[str, Any], list[int]]] = []
    for i, h in enumerate(hosts):
        if type(h) is dict and "shares" in h:
            for j, s in enumerate(_list(h["shares"])):
                sites.append((f"hosts[{i}].shares[{j}]", _dict(s), [i]))
    for j, s in enumerate(_list(data.get("shares"))):
        s = _dict(s)
        idx = sorted({by_name[n] for n in _list(s.get("hosts")) if isinstance(n, str) and n in by_name})
        sites.append((f"shares[{j}]", s, idx))
    return sites


def _check_shares(
    data: Mapping[str, Any], hosts: list[Any], users: set[str], groups: set[str], mode: Any, found: Found
) -> None:
    names = {e.name for e in found.hosts} if data.get("shares") else set()
    for j, s in enumerate(_list(data.get("shares"))):
        for k, n in enumerate(_list(_dict(s).get("hosts"))):
            if isinstance(n, str) and n not in names:
                found.error(f"shares[{j}].hosts[{k}]", f"host '{n}' is not declared under hosts")
    per_host: dict[int, dict[str, str]] = {}
    for path, share, idx in _share_sites(data, hosts, found):
        for key in ("users",):
            for k, n in enumerate(_list(share.get(key))):
                if isinstance(n, str) and n not in users:
                    found.error(f"{path}.{key}[{k}]", f"user '{n}' is not declared under users")
        for k, n in enumerate(_list(share.get("groups"))):
            if isinstance(n, str) and n not in groups:
                found.error(f"{path}.groups[{k}]", f"group '{n}' is not declared under groups")
        for key in ("read_list", "write_list"):
            for k, n in enumerate(_list(share.get(key))):
                if not isinstance(n, str):
                    continue
                if n.startswith("@") and n[1:] not in groups:
                    found.error(f"{path}.{key}[{k}]", f"group '{n[1:]}' is not declared under groups")
                elif not n.startswith("@") and n not in users:
                    found.error(f"{path}.{key}[{k}]", f"user '{n}' is not declared under users")
        for key, known in (("owner", users), ("group", groups)):
            v = share.get(key)
            if isinstance(v, str) and v != "root" and v not in known:
                kind = "user" if key == "owner" else "group"
                found.error(f"{path}.{key}", f"{kind} '{v}' is not declared under {kind}s")
        if share.get("guest_ok") and mode == "domain":
            found.warn(f"{path}.guest_ok", "guest access in a domain bypasses its central security policy")
        name = share.get("name")
        for i in idx:
            host = _dict(hosts[i])
            role = host.get("role")
            if role in ("domain_controller",):
                found.warn(path, f"host '{host.get('name')}' is a domain controller; serve shares from a file_server")
            elif isinstance(role, str) and role not in {r.value for r in SHARE_ROLES} | {"domain_controller"}:
                found.error(
                    path, f"host '{host.get('name')}' has role '{role}'; only peers and file servers share folders"
                )
            if isinstance(name, str):
                seen = per_host.setdefault(i, {})
                key = name.lower()
                if key in seen:
                    found.error(
                        f"{path}.name",
                        f"share '{name}' is declared twice on host '{host.get('name')}' (also {seen[key]})",
                    )
                else:
                    seen[key] = path
    for i, h in enumerate(hosts):
        if type(h) is not dict or "printers" not in h:
            continue
        for j, _p in enumerate(_list(h.get("printers"))):
            if h.get("role") not in (None, "peer", "file_server"):
                found.error(f"hosts[{i}].printers[{j}]", "only peers and file servers share printers")
        for j, p in enumerate(_list(h.get("printers"))):
            for k, n in enumerate(_list(_dict(p).get("users"))):
                if isinstance(n, str) and n not in users:
                    found.error(f"hosts[{i}].printers[{j}].users[{k}]", f"user '{n}' is not declared under users")
            for k, n in enumerate(_list(_dict(p).get("groups"))):
                if isinstance(n, str) and n not in groups:
                    found.error(f"hosts[{i}].printers[{j}].groups[{k}]", f"group '{n}' is not declared under groups")


def _check_domain(data: Mapping[str, Any], hosts: list[Any], found: Found) -> None:
    domain = _dict(data.get("domain"))
    dc_names = [h.name for h in found.hosts if _dict(hosts[h.index]).get("role") == "domain_controller"]
    if not dc_names and any(isinstance(h, Mapping) and h.get("role") for h in hosts):
        found.error("hosts", "domain mode needs at least one host with role domain_controller")
    for k, n in enumerate(_list(domain.get("dcs"))):
        if isinstance(n, str) and n not in dc_names:
            found.error(f"domain.dcs[{k}]", f"'{n}' is not a host with role domain_controller")
    listed = [n for n in _list(domain.get("dcs")) if isinstance(n, str)]
    if listed:
        for n in dc_names:
            if n not in listed:
                found.error("domain.dcs", f"domain controller '{n}' is missing from domain.dcs")
    realm = domain.get("realm")
    if isinstance(realm, str):
        if realm.endswith(".LOCAL"):
            found.warn(
                "domain.realm",
                f"realm '{realm}' ends in .LOCAL, which clashes with mDNS (Avahi, macOS); "
                "use a subdomain of a name you own, e.g. AD.EXAMPLE.COM",
            )
        if "." in realm and len(realm.split(".")[0]) > NETBIOS_MAX:
            found.warn("domain.realm", "the realm's first label is longer than 15 characters; set netbios explicitly")
    netbios = domain.get("netbios")
    if isinstance(netbios, str):
        clash = next((h for h in found.hosts if h.name.upper() == netbios), None)
        if clash is not None:
            found.error(
                "domain.netbios", f"NetBIOS domain '{netbios}' equals host name '{clash.name}'; they must differ"
            )
    if "workgroup" in _dict(data.get("network")):
        found.error(
            "network.workgroup", "domain mode takes its NetBIOS name from domain.netbios; remove network.workgroup"
        )


def _check_policies(data: Mapping[str, Any], mode: Any, bad: set[str], found: Found) -> None:
    policies = _dict(data.get("policies"))
    password = _dict(policies.get("password"))
    window, duration = password.get("lockout_window_minutes", 30), password.get("lockout_duration_minutes", 30)
    if isinstance(window, int) and isinstance(duration, int) and window > duration:
        found.error(
            "policies.password.lockout_window_minutes",
            f"the lockout window ({window} min) cannot be longer than the lockout duration ({duration} min)",
        )
    min_age, max_age = password.get("min_age_days", 1), password.get("max_age_days", 90)
    if isinstance(min_age, int) and isinstance(max_age, int) and max_age and min_age >= max_age:
        found.error("policies.password.min_age_days", "the minimum password age must be below the maximum age")
    smb = _dict(policies.get("smb"))
    if mode == "domain" and smb.get("signing") == "auto":
        found.error("policies.smb.signing", "a domain always requires SMB signing ('mandatory')")
    if mode == "domain" and smb.get("netbios") is True:
        found.warn("policies.smb.netbios", "NetBIOS is not needed in an AD domain; DNS is used")
    order = [o for o in _list(_dict(data.get("rollout")).get("order")) if isinstance(o, str)]
    if order and "domain_controller" in order and order[0] != "domain_controller":
        found.error("rollout.order", "domain controllers must be configured first")
    if mode in ("workgroup", "domain") and order:
        present = {str(_dict(h).get("role")) for h in _list(data.get("hosts"))}
        missing = sorted(r for r in present if r in {x.value for x in Role} and r not in order)
        if missing:
            found.error("rollout.order", f"rollout.order leaves out roles present in hosts: {', '.join(missing)}")


# --------------------------------------------------------------------------- model


def _secret(raw: Mapping[str, Any]) -> SecretRef:
    return SecretRef(env=raw.get("env"), file=raw.get("file"))


def _share(raw: Mapping[str, Any]) -> Share:
    groups = tuple(raw.get("groups", ()))
    return Share(
        name=raw["name"],
        path=raw["path"],
        comment=raw.get("comment", ""),
        users=tuple(raw.get("users", ())),
        groups=groups,
        read_only=raw.get("read_only", False),
        read_list=tuple(raw.get("read_list", ())),
        write_list=tuple(raw.get("write_list", ())),
        guest_ok=raw.get("guest_ok", False),
        browseable=raw.get("browseable", True),
        owner=raw.get("owner", "root"),
        group=raw.get("group", groups[0] if groups else "root"),
        mode=raw.get("mode", "2770"),
    )


def _printer(raw: Mapping[str, Any]) -> Printer:
    return Printer(
        name=raw["name"],
        uri=raw.get("uri", "file:///dev/null"),
        description=raw.get("description", ""),
        users=tuple(raw.get("users", ())),
        groups=tuple(raw.get("groups", ())),
    )


def build_network(data: Mapping[str, Any], found: Found, source: str = "", base_dir: Path | None = None) -> Network:
    """The model of a spec that passed every check (defaults applied once, here)."""
    net = data["network"]
    mode = Mode(net["mode"])
    raw_hosts: Sequence[Mapping[str, Any]] = data["hosts"]

    extra: dict[int, list[Share]] = {}
    by_name = {h.name: h.index for h in found.hosts}
    for s in data.get("shares", ()):
        share = _share(s)
        for n in s["hosts"]:
            extra.setdefault(by_name[n], []).append(share)

    # Entries are shared by every host of a range: build their parts once per entry.
    parts: dict[int, tuple[Role, str, tuple[Share, ...], tuple[Printer, ...], bool, str]] = {}
    hosts = []
    for e in found.hosts:
        p = parts.get(e.index)
        if p is None:
            raw = raw_hosts[e.index]
            shares = tuple(_share(s) for s in raw.get("shares", ())) + tuple(extra.get(e.index, ()))
            printers = tuple(_printer(x) for x in raw.get("printers", ()))
            p = parts[e.index] = (
                Role(raw["role"]),
                raw.get("os", "debian12"),
                shares,
                printers,
                raw.get("homes", False),
                raw.get("client", "sssd"),
            )
        role, os_, shares, printers, homes, client = p
        if role is Role.FILE_SERVER:
            client = "winbind"
        hosts.append(Host(e.name, e.address, role, os_, shares, printers, homes, client, e.range_name))

    domain = None
    if mode is Mode.DOMAIN:
        d = data["domain"]
        dcs = tuple(d.get("dcs") or [h.name for h in hosts if h.role is Role.DOMAIN_CONTROLLER])
        domain = Domain(d["realm"], d["netbios"], _secret(d["admin_password"]), dcs, d["realm"].lower())

    pol = data.get("policies", {})
    fw = pol.get("firewall", {})
    policies = Policies(
        password=PasswordPolicy(**pol.get("password", {})),
        smb=SmbPolicy(**pol.get("smb", {})),
        firewall=FirewallPolicy(
            enabled=fw.get("enabled", True),
            allow_from=tuple(fw.get("allow_from") or net["subnets"]),
        ),
        unattended_upgrades=pol.get("unattended_upgrades", False),
    )
    ro = data.get("rollout", {})
    order = tuple(Role(r) for r in ro.get("order", ())) or tuple(
        r for r in DEFAULT_ORDER if (r in DOMAIN_ROLES) == (mode is Mode.DOMAIN)
    )
    rollout = Rollout(batch=ro.get("batch", 50), max_fail_percent=ro.get("max_fail_percent", 10), order=order)

    ssh_raw = data.get("ssh", {})
    ssh = Ssh(
        user=ssh_raw.get("user", "root"),
        port=ssh_raw.get("port", 22),
        identity_file=_resolve_path(ssh_raw.get("identity_file"), base_dir),
        known_hosts_file=_resolve_path(ssh_raw.get("known_hosts_file"), base_dir),
        become=ssh_raw.get("become", False),
    )
    users = tuple(
        User(
            u["name"],
            _secret(u["password"]),
            u.get("full_name", ""),
            tuple(u.get("groups", ())),
            u.get("shell", "/bin/bash"),
        )
        for u in data.get("users", ())
    )
    groups = tuple(Group(g["name"], g.get("description", "")) for g in data.get("groups", ()))
    return Network(
        name=net["name"],
        mode=mode,
        subnets=tuple(net["subnets"]),
        hosts=tuple(hosts),
        workgroup=net.get("workgroup") or (domain.netbios if domain else net["name"].upper()[:NETBIOS_MAX]),
        dns_forwarders=tuple(net.get("dns_forwarders", ())),
        ntp_servers=tuple(net.get("ntp_servers", ())),
        domain=domain,
        users=users,
        groups=groups,
        policies=policies,
        rollout=rollout,
        ssh=ssh,
        source=source,
        base_dir=str(base_dir) if base_dir else "",
    )


def _resolve_path(value: str | None, base_dir: Path | None) -> str | None:
    if not value:
        return None
    path = Path(value).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    return str(path)
