"""Cross-host rules (what JSON Schema cannot say) and building the model.

The rules run on the parsed dict even when the schema found problems, so a
user sees every problem in one pass; parts the schema already rejected are
skipped rather than reported twice. Host ranges are expanded here, once.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import socket
import stat
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from provision import policy
from provision.errors import Problem
from provision.model import (
    DEFAULT_ORDER,
    DOMAIN_ROLES,
    STAGE_ROLES,
    TLS_ROLES,
    AccessRule,
    BackupPolicy,
    Database,
    Domain,
    ExecutionNode,
    FirewallPolicy,
    Group,
    Host,
    MailService,
    Mode,
    Network,
    PasswordPolicy,
    Policies,
    Printer,
    RequirementsOverride,
    Role,
    Rollout,
    SecretRef,
    Share,
    SmbPolicy,
    Ssh,
    SudoRule,
    TlsFiles,
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
    m = _RANGE.fullmatch(name)
    if m is None:
        return None
    return max(0, int(m["end"]) - int(m["start"]) + 1)


def expand_range(name: str) -> list[str] | None:
    """'ws[001:250]' -> ['ws001', ..., 'ws250'] (width of START kept); None if not a range."""
    m = _RANGE.fullmatch(name)
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


def cross_check(data: Mapping[str, Any], bad: set[str], base_dir: Path | None = None) -> Found:
    """Apply every cross-host rule; return errors, warnings and expanded hosts.

    ``base_dir`` is the spec's folder: relative secret and SSH files are checked against it."""
    found = Found()
    network = _dict(data.get("network"))
    mode = network.get("mode") if "network.mode" not in bad else None
    hosts = _list(data.get("hosts"))
    _expand_hosts(hosts, bad, found)

    _check_subnets(network, bad, found)
    _check_roles(mode, hosts, bad, found)
    _check_host_names(data, mode, found)
    users, groups = _check_directory(data, mode, bad, found)
    _check_shares(data, hosts, users, groups, mode, bad, found)
    _check_users(data, bad, found)
    _check_mail(data, hosts, users, groups, mode, found)
    _check_databases(hosts, users, groups, found)
    check_local_files(data, base_dir, found)
    if mode == "domain":
        _check_domain(data, hosts, found)
    elif mode == "workgroup" and "domain" in data:
        found.error("domain", "a 'domain' block only applies in domain mode (network.mode: domain)")
    _check_policies(data, mode, bad, found)
    _check_execution_nodes(data, bad, found)
    _check_access_policy(data, hosts, groups, mode, bad, found)
    return found


def _check_access_policy(
    data: Mapping[str, Any], hosts: list[Any], groups: set[str], mode: Any, bad: set[str], found: Found
) -> None:
    """policies.access and policies.sudo name the spec's accounts and hosts (provision.policy)."""
    policies = _dict(data.get("policies"))
    if policies.get("access") is None and not policies.get("sudo"):
        return
    members = {
        str(_dict(u).get("name")): {g for g in _list(_dict(u).get("groups")) if isinstance(g, str)}
        for u in _list(data.get("users"))
        if isinstance(_dict(u).get("name"), str)
    }
    named = [(h.name, str(_dict(hosts[h.index]).get("role"))) for h in found.hosts]
    problems = policy.check(data, named, members, groups, mode, expand_range, lambda path: _is_bad(path, bad))
    for severity, path, message in problems:
        (found.error if severity == "error" else found.warn)(path, message)


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


def _check_directory(data: Mapping[str, Any], mode: Any, bad: set[str], found: Found) -> tuple[set[str], set[str]]:
    groups: set[str] = set()
    for j, g in enumerate(_list(data.get("groups"))):
        name = _dict(g).get("name")
        if isinstance(name, str):
            if name in groups:
                found.error(f"groups[{j}].name", f"duplicate group '{name}'")
            elif f"groups[{j}].name" not in bad and (why := _reserved_account(name, "group")):
                found.error(f"groups[{j}].name", why)
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
            if f"users[{j}].name" not in bad and (why := _reserved_account(name, "user")):
                found.error(f"users[{j}].name", why)
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
    data: Mapping[str, Any],
    hosts: list[Any],
    users: set[str],
    groups: set[str],
    mode: Any,
    bad: set[str],
    found: Found,
) -> None:
    names = {e.name for e in found.hosts} if data.get("shares") else set()
    for j, s in enumerate(_list(data.get("shares"))):
        for k, n in enumerate(_list(_dict(s).get("hosts"))):
            if isinstance(n, str) and n not in names:
                found.error(f"shares[{j}].hosts[{k}]", f"host '{n}' is not declared under hosts")
    # Per host entry: smb.conf section names (lower case) -> where they were declared.
    per_host: dict[int, dict[str, str]] = {}
    # Per host entry: (where, macOS interoperability on) of each share.
    fruit: dict[int, list[tuple[str, bool]]] = defaultdict(list)
    # Per host entry: share paths -> where they were declared (nested shares bypass ACLs).
    paths_of: dict[int, dict[str, str]] = {}
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
        if isinstance(name, str) and f"{path}.name" not in bad and (why := _reserved_share(name, mode, "share")):
            found.error(f"{path}.name", why)
        share_path = share.get("path")
        if isinstance(share_path, str) and f"{path}.path" not in bad and not _HOSTILE.search(share_path):
            if (why := _share_path_problem(share_path)) is not None:
                found.error(f"{path}.path", why)
                share_path = None
        else:
            share_path = None
        comment = share.get("comment")
        if isinstance(comment, str) and (why := _smb_text_problem(comment)) is not None:
            found.error(f"{path}.comment", f"the comment {why}")
        if share.get("macos") is True and share.get("streams") is False:
            found.error(
                f"{path}.macos",
                "macOS interoperability (vfs_fruit) keeps Finder metadata in alternate data streams: "
                "it needs 'streams: true'; set 'macos: false' or drop 'streams: false'",
            )
        for i in idx:
            fruit[i].append((path, _macos(share)))
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
                        f"share '{name}' is declared twice on host '{host.get('name')}' (also {seen[key]}); "
                        "smb.conf section names are case-insensitive",
                    )
                else:
                    seen[key] = path
            if share_path is not None:
                _nested_share(share_path, path, paths_of.setdefault(i, {}), host, found)
    for i, flags in sorted(fruit.items()):
        if len({on for _, on in flags}) > 1:
            off = next(where for where, on in flags if not on)
            found.warn(
                f"{off}.macos",
                f"host '{_dict(hosts[i]).get('name')}' mixes shares with and without macOS interoperability; "
                "Samba warns that macOS clients then behave unpredictably (the first share they open decides): "
                "set 'macos' the same on every share of the host",
            )
    for i, h in enumerate(hosts):
        if type(h) is not dict or "printers" not in h:
            continue
        for j, _p in enumerate(_list(h.get("printers"))):
            if h.get("role") not in (None, "peer", "file_server"):
                found.error(f"hosts[{i}].printers[{j}]", "only peers and file servers share printers")
        sections = per_host.setdefault(i, {})
        for j, p in enumerate(_list(h.get("printers"))):
            where = f"hosts[{i}].printers[{j}]"
            for k, n in enumerate(_list(_dict(p).get("users"))):
                if isinstance(n, str) and n not in users:
                    found.error(f"{where}.users[{k}]", f"user '{n}' is not declared under users")
            for k, n in enumerate(_list(_dict(p).get("groups"))):
                if isinstance(n, str) and n not in groups:
                    found.error(f"{where}.groups[{k}]", f"group '{n}' is not declared under groups")
            _check_printer(_dict(p), where, mode, bad, sections, h, found)


def _macos(share: Mapping[str, Any]) -> bool:
    """Whether the share gets vfs_fruit: on by default, off with streams off."""
    return bool(share.get("macos", True)) and bool(share.get("streams", True))


def _check_printer(
    printer: Mapping[str, Any],
    where: str,
    mode: Any,
    bad: set[str],
    sections: dict[str, str],
    host: Mapping[str, Any],
    found: Found,
) -> None:
    name = printer.get("name")
    if isinstance(name, str) and f"{where}.name" not in bad:
        if (why := _reserved_share(name, mode, "printer")) is not None:
            found.error(f"{where}.name", why)
        elif name.lower() in sections:
            other = sections[name.lower()]
            kind = "printer" if ".printers[" in other else "share"
            found.error(
                f"{where}.name",
                f"printer '{name}' has the name of a {kind} on host '{host.get('name')}' ({other}); "
                "smb.conf section names are case-insensitive, so one would replace the other",
            )
        else:
            sections[name.lower()] = where
    description = printer.get("description")
    if isinstance(description, str) and (why := _smb_text_problem(description)) is not None:
        found.error(f"{where}.description", f"the description {why}")
    uri = printer.get("uri")
    if isinstance(uri, str) and f"{where}.uri" not in bad and not _HOSTILE.search(uri) and (why := _uri_problem(uri)):
        found.error(f"{where}.uri", why)


def _nested_share(path: str, where: str, seen: dict[str, str], host: Mapping[str, Any], found: Found) -> None:
    """A share inside another share on the same host is reachable through the outer one,
    with the outer one's access rules: a warning, it is sometimes meant."""
    for other, other_where in seen.items():
        if other == path:
            if other_where != where:
                found.warn(f"{where}.path", f"{path} is also shared by {other_where} on host '{host.get('name')}'")
            return
        if path.startswith(other + "/") or other.startswith(path + "/"):
            inner, outer = (where, other_where) if path.startswith(other + "/") else (other_where, where)
            found.warn(
                f"{where}.path",
                f"{inner} lies inside {outer} on host '{host.get('name')}': its files are reachable through "
                f"{outer} with {outer}'s access rules",
            )
            break
    seen[path] = where


def _check_host_names(data: Mapping[str, Any], mode: Any, found: Found) -> None:
    reported: set[int] = set()
    workgroup = None
    network = _dict(data.get("network"))
    if mode == "workgroup":
        wg = network.get("workgroup")
        name = network.get("name")
        if isinstance(wg, str) and wg:
            workgroup = wg
        elif isinstance(name, str):
            workgroup = name.upper()[:NETBIOS_MAX]
    lowered = {h.name.lower() for h in found.hosts}
    if not (lowered & RESERVED_HOST_NAMES) and (workgroup is None or workgroup.lower() not in lowered):
        return  # the common case, without a call per host
    for h in found.hosts:
        if h.index in reported:
            continue
        why = _reserved_host(h.name)
        if why is None and workgroup is not None and h.name.upper() == workgroup:
            why = (
                f"host name '{h.name}' equals the workgroup name '{workgroup}'; NetBIOS names of hosts and "
                "the workgroup must differ (set network.workgroup or rename the host)"
            )
        if why is not None:
            reported.add(h.index)
            found.error(f"hosts[{h.index}].name", why)


def _check_users(data: Mapping[str, Any], bad: set[str], found: Found) -> None:
    for j, u in enumerate(_list(data.get("users"))):
        u = _dict(u)
        shell = u.get("shell")
        if isinstance(shell, str) and f"users[{j}].shell" not in bad and not _HOSTILE.search(shell):
            why = _path_form(shell)
            if why is None and (":" in shell or "," in shell):
                why = f"{clip(shell)} contains ':' or ',', which separate the fields of /etc/passwd"
            if why is not None:
                found.error(f"users[{j}].shell", why)


def _check_mail(
    data: Mapping[str, Any], hosts: list[Any], users: set[str], groups: set[str], mode: Any, found: Found
) -> None:
    """Mail settings sit on the hosts and groups they concern, and the accounts provision makes are free."""
    mail_hosts = [h for h in found.hosts if _dict(hosts[h.index]).get("role") == "mail_server"]
    for i, raw in enumerate(hosts):
        h = _dict(raw)
        role = h.get("role")
        if "mail" in h and role != "mail_server":
            found.error(f"hosts[{i}].mail", f"only a host with role mail_server serves mail (this one is {role})")
        if "tls" in h and role not in {r.value for r in TLS_ROLES}:
            found.error(
                f"hosts[{i}].tls",
                "only domain controllers (LDAPS), mail and database servers present a certificate "
                f"(this one is {role})",
            )
    for j, g in enumerate(_list(data.get("groups"))):
        if _dict(g).get("mail") is True:
            if mode != "domain":
                found.error(f"groups[{j}].mail", "distribution lists need a domain with a mail server")
            elif not mail_hosts:
                found.warn(f"groups[{j}].mail", "no host has role mail_server: nobody receives this list's mail")
    # Each mail server binds to the directory with an account of its own, mail-<host>.
    taken = {f"mail-{h.name}": h for h in mail_hosts}
    for kind, names in (("users", users), ("groups", groups)):
        for j, entry in enumerate(_list(data.get(kind))):
            name = _dict(entry).get("name")
            if isinstance(name, str) and name in taken and name in names:
                found.error(
                    f"{kind}[{j}].name",
                    f"'{name}' is the directory account provision makes for mail server {taken[name].name}'s lookups; "
                    "choose another name",
                )
    domain = _dict(data.get("domain"))
    mail_domain, realm = domain.get("mail_domain"), domain.get("realm")
    if isinstance(mail_domain, str) and isinstance(realm, str):
        zone = realm.lower()
        if mail_domain != zone and not mail_domain.endswith("." + zone):
            found.warn(
                "domain.mail_domain",
                f"{mail_domain} lies outside the domain's DNS zone {zone}: provision cannot add its MX record; "
                "publish it in the DNS of " + mail_domain,
            )


# Databases every PostgreSQL cluster has; a spec database of that name would take it over.
RESERVED_DATABASES = frozenset({"postgres", "template0", "template1"})
# Role names PostgreSQL keeps for itself (pg_* are its predefined roles).
RESERVED_PG_ROLES = frozenset({"postgres", "public", "current_user", "session_user", "current_role", "none"})


def _check_databases(hosts: list[Any], users: set[str], groups: set[str], found: Found) -> None:
    """Databases sit on database servers, name the spec's accounts, and give each one access once."""
    for i, raw in enumerate(hosts):
        h = _dict(raw)
        dbs = _list(h.get("databases"))
        if dbs and h.get("role") != "database_server":
            found.error(
                f"hosts[{i}].databases",
                f"only a host with role database_server serves databases (this one is {h.get('role')})",
            )
            continue
        seen: set[str] = set()
        for j, db in enumerate(dbs):
            db = _dict(db)
            where = f"hosts[{i}].databases[{j}]"
            name = db.get("name")
            if isinstance(name, str):
                if name in seen:
                    found.error(f"{where}.name", f"duplicate database '{name}' on this host")
                elif name in RESERVED_DATABASES:
                    found.error(
                        f"{where}.name", f"'{name}' is a database every PostgreSQL cluster has; pick another name"
                    )
                seen.add(name)
            owner = db.get("owner")
            if isinstance(owner, str) and owner not in users | groups:
                found.error(f"{where}.owner", f"'{owner}' is not a user or group of the spec")
            granted: dict[str, str] = {}
            for access in ("read_write", "read_only"):
                for kind, known in (("users", users), ("groups", groups)):
                    for k, n in enumerate(_list(_dict(db.get(access)).get(kind))):
                        if not isinstance(n, str):
                            continue
                        path = f"{where}.{access}.{kind}[{k}]"
                        if n not in known:
                            found.error(path, f"'{n}' is not one of the spec's {kind}")
                        elif n in granted and granted[n] != access:
                            found.error(path, f"'{n}' is also given {granted[n]}; give each account one kind of access")
                        granted.setdefault(n, access)
            for n in [owner, *granted]:
                if isinstance(n, str) and (n.lower() in RESERVED_PG_ROLES or n.lower().startswith("pg_")):
                    found.error(
                        where, f"'{n}' is a role name PostgreSQL keeps for itself; it cannot be a database role"
                    )


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


def _stages(order: Any) -> list[list[str]]:
    """rollout.order as lists of role names: a stage is a role, or a list of roles rolled
    out side by side (one play); anything else in it is left to the schema's errors."""
    return [[o] if isinstance(o, str) else [r for r in _list(o) if isinstance(r, str)] for o in _list(order)]


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
    _check_firewall(data, _dict(policies.get("firewall")), bad, found)
    directory = _dict(policies.get("backup")).get("directory")
    why = backup_dir_problem(directory) if isinstance(directory, str) else None
    if why is not None and "policies.backup.directory" not in bad:
        found.error("policies.backup.directory", why)
    smb = _dict(policies.get("smb"))
    if mode == "domain" and smb.get("signing") == "auto":
        found.error("policies.smb.signing", "a domain always requires SMB signing ('mandatory')")
    if mode == "domain" and smb.get("netbios") is True:
        found.warn("policies.smb.netbios", "NetBIOS is not needed in an AD domain; DNS is used")
    stages = _stages(_dict(data.get("rollout")).get("order"))
    order = [r for stage in stages for r in stage]
    if "domain_controller" in order and stages[0] != ["domain_controller"]:
        found.error("rollout.order", "domain controllers must be configured first, in a stage of their own")
    twice = sorted({r for r in order if order.count(r) > 1})
    if twice:
        found.error("rollout.order", f"rollout.order names {', '.join(twice)} more than once")
    side_by_side = {r.value for r in STAGE_ROLES}
    for i, stage in enumerate(stages):
        if len(stage) > 1 and not set(stage) <= side_by_side:
            found.error(
                f"rollout.order[{i}]",
                "only domain members roll out side by side: a stage of several roles may hold "
                + ", ".join(sorted(side_by_side)),
            )
    if mode in ("workgroup", "domain") and order:
        present = {str(_dict(h).get("role")) for h in _list(data.get("hosts"))}
        missing = sorted(r for r in present if r in {x.value for x in Role} and r not in order)
        if missing:
            found.error("rollout.order", f"rollout.order leaves out roles present in hosts: {', '.join(missing)}")


def _firewall_sources(data: Mapping[str, Any]) -> tuple[list[tuple[str, Any]], bool]:
    """(path, CIDR text) of the sources the hosts' firewall admits SSH and services from, and
    whether they are policies.firewall.allow_from (else the network's subnets, its default:
    an empty allow_from means the subnets, as in the model and the base role)."""
    allow = _list(_dict(_dict(data.get("policies")).get("firewall")).get("allow_from"))
    if allow:
        return [(f"policies.firewall.allow_from[{j}]", v) for j, v in enumerate(allow)], True
    subnets = _list(_dict(data.get("network")).get("subnets"))
    return [(f"network.subnets[{j}]", v) for j, v in enumerate(subnets)], False


def _check_execution_nodes(data: Mapping[str, Any], bad: set[str], found: Found) -> None:
    """rollout.execution_nodes: names and addresses of their own, and reachable by SSH from the
    hosts' point of view (their workers open SSH to the hosts, through the hosts' firewall)."""
    nodes = _list(_dict(data.get("rollout")).get("execution_nodes"))
    if not nodes:
        return
    host_names = {h.name: h for h in found.hosts}
    host_addrs = {h.ip: h for h in found.hosts}
    subnets = [
        (text, parsed)
        for text in _list(_dict(data.get("network")).get("subnets"))
        if isinstance(text, str) and (parsed := parse_cidr(text)) is not None
    ]
    firewall = _dict(_dict(data.get("policies")).get("firewall"))
    sources, explicit = _firewall_sources(data)
    admitted = [
        (text, parsed)
        for where, text in sources
        if isinstance(text, str) and where not in bad and (parsed := parse_cidr(text)) is not None
    ]
    # Firewall off (or its switch itself in error): no source to be inside of.
    switch_bad = any(p in bad for p in ("policies", "policies.firewall", "policies.firewall.enabled"))
    guarded = firewall.get("enabled", True) is True and not switch_bad and bool(admitted)
    names: dict[str, int] = {}
    addrs: dict[int, int] = {}
    for j, raw in enumerate(nodes):
        node = _dict(raw)
        path = f"rollout.execution_nodes[{j}]"
        name = node.get("name")
        if isinstance(name, str) and f"{path}.name" not in bad:
            host = host_names.get(name)
            if name in names:
                found.error(
                    f"{path}.name",
                    f"duplicate execution node name '{name}' (also rollout.execution_nodes[{names[name]}])",
                )
            elif host is not None:
                found.error(
                    f"{path}.name",
                    f"'{name}' is the name of a host ({_host_where(host)}); an execution node needs a name of its own",
                )
            elif (why := _reserved_host(name)) is not None:
                found.error(f"{path}.name", why)
            names.setdefault(name, j)
        address = node.get("address")
        ip = ip_to_int(address) if isinstance(address, str) and f"{path}.address" not in bad else None
        if ip is None:
            continue
        host = host_addrs.get(ip)
        if ip in addrs:
            found.error(f"{path}.address", f"address {address} is also used by rollout.execution_nodes[{addrs[ip]}]")
            continue
        addrs[ip] = j
        if host is not None:
            found.error(
                f"{path}.address", f"address {address} is the address of host '{host.name}' ({_host_where(host)})"
            )
            continue
        edge = next(
            (
                text
                for text, (net, bits) in [*subnets, *admitted]
                if bits <= 30 and ip in (net, net | (0xFFFFFFFF >> bits))
            ),
            None,
        )
        if edge is not None:
            found.error(f"{path}.address", f"{address} is the network or broadcast address of {edge}")
            continue
        if guarded and not any(ip & ((0xFFFFFFFF << (32 - bits)) & 0xFFFFFFFF) == net for _, (net, bits) in admitted):
            listed = ", ".join(text for text, _ in admitted)
            via = (
                "policies.firewall.allow_from"
                if explicit
                else "the network's subnets, the firewall's default while policies.firewall.allow_from is empty"
            )
            found.error(
                f"{path}.address",
                f"{address} is outside the networks the hosts' firewall admits SSH from ({listed}: {via}): "
                "the hosts' firewall would refuse SSH from this execution node, so its worker could not reach them; "
                "add a network holding it to policies.firewall.allow_from"
                + ("" if explicit else " (with the network's subnets)"),
            )


def _host_where(host: Expanded) -> str:
    """Where a host comes from in the spec: its hosts[] entry, and its range if any."""
    return f"hosts[{host.index}]" + (f", range '{host.range_name}'" if host.range_name else "")


WIDE_PREFIX = 8  # a firewall source wider than a /8 is (nearly) the whole internet


def _check_firewall(data: Mapping[str, Any], firewall: Mapping[str, Any], bad: set[str], found: Found) -> None:
    """Sources the firewall admits SSH and SMB from: warn when one is wider than a /8."""
    if firewall.get("enabled") is False:
        return
    sources, allow = _firewall_sources(data)
    for where, text in sources:
        parsed = parse_cidr(text) if isinstance(text, str) and where not in bad else None
        if parsed is None or parsed[1] >= WIDE_PREFIX:
            continue
        size = "every IPv4 address (the whole internet)" if parsed[1] == 0 else f"{2 ** (32 - parsed[1]):,} addresses"
        via = "" if allow else " (the firewall admits the network's subnets when policies.firewall.allow_from is empty)"
        found.warn(
            where,
            f"{text} admits SSH and SMB from {size}{via}; list only the subnets that need access",
        )


# --------------------------------------------------------------------------- hostile input
#
# The spec crosses a trust boundary: its strings end up in smb.conf, /etc/passwd, CUPS,
# the Ansible inventory (where Jinja is evaluated) and the terminal. The rules below close
# whole classes of values rather than single examples; ``check_strings`` in particular
# walks every string of the parsed spec, keys included, so a field added later is covered
# without anyone remembering to add it here.

CLIP = 80  # longest piece of a value quoted back in a message


def clip(value: object, limit: int = CLIP) -> str:
    """``repr`` of a value for a message, cut to about ``limit`` characters with an ellipsis."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")  # used with fullmatch: "$" would allow a final "\n"


def format_path(path: Sequence[str | int]) -> str:
    """``hosts[3].address``; keys that are not plain names are quoted: ``network['a.b']``.

    Parts longer than CLIP are cut, so a hostile key cannot make a message unbounded."""
    out = ""
    for part in path:
        if isinstance(part, int) and not isinstance(part, bool):
            out += f"[{part}]"
        elif isinstance(part, str) and len(part) <= CLIP and _PLAIN_KEY.fullmatch(part):
            out += f".{part}" if out else part
        else:
            out += f"[{clip(str(part))}]"
    return out or "(root)"


# C0 controls (tab, line feed and carriage return included), DEL, C1 controls, the Unicode
# line and paragraph separators, bidirectional embeddings/overrides/isolates ("Trojan
# Source" reordering), lone surrogates (not encodable as UTF-8), and the three Jinja
# opening delimiters. Closers ('}}', '%}', '#}') are harmless without an opener.
_HOSTILE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]|\\{[{%#]")
_CHAR_NAMES = {"\n": "a line feed (\\n)", "\r": "a carriage return (\\r)", "\t": "a tab (\\t)", "\x00": "a NUL byte"}


def _hostile_text(value: str) -> str | None:
    """Why a string of the spec is refused, or None. Only called on a regex hit."""
    m = _HOSTILE.search(value)
    if m is None:
        return None
    hit, at = m.group(), m.start()
    if hit.startswith("{"):
        return (
            f"contains {hit!r} at position {at}, a Jinja template delimiter: Ansible would evaluate it "
            "(e.g. {{ lookup('pipe', 'id') }} runs a command on the controller); remove it"
        )
    if "\ud800" <= hit <= "\udfff":
        what = f"a lone surrogate U+{ord(hit):04X} (not a character, not encodable as UTF-8)"
    else:
        what = _CHAR_NAMES.get(hit) or f"the control or layout character U+{ord(hit):04X}"
    return (
        f"contains {what} at position {at}; every value of a spec is one line of plain text "
        "(a line break would add lines to smb.conf, /etc/passwd or the inventory); remove it"
    )


# _HOSTILE as it shows in compact JSON (ensure_ascii off): C0 controls are escaped there
# as \n or \u00XX; an escaped backslash before such a letter is a false alarm the walk sorts out.
_HOSTILE_JSON = re.compile("\\\\[nrtbfu]|" + _HOSTILE.pattern)


def check_strings(data: Any) -> list[Problem]:
    """Every string of the spec, at any depth and keys included, free of control
    characters and Jinja delimiters. Iterative (no recursion limit); paths are built only
    for what is reported."""
    try:  # fast path: one C-speed dump and one search; the walk only when it finds something
        if not _HOSTILE_JSON.search(json.dumps(data, ensure_ascii=False, check_circular=False)):
            return []
    except (TypeError, ValueError, RecursionError):
        pass  # not plain JSON (or too deep for the C encoder): walk it
    out: list[Problem] = []
    search = _HOSTILE.search
    # Each entry: (container, its path as a linked list (parent link, key) or None).
    stack: list[tuple[Any, Any]] = [(data, None)]
    if isinstance(data, str):
        stack = []
        if search(data):
            out.append(Problem("(root)", f"the spec is the string {clip(data)}, which {_hostile_text(data)}"))
    visited: set[int] = set()
    while stack:
        node, link = stack.pop()
        if id(node) in visited:  # shared or cyclic containers (only from callers, never from YAML)
            continue
        visited.add(id(node))
        if type(node) is dict:
            items: Any = node.items()
        elif type(node) is list:
            items = enumerate(node)
        else:
            continue
        for key, value in items:
            if type(key) is str and search(key):
                out.append(Problem(_linked_path(link, key), f"the field name {clip(key)} {_hostile_text(key)}"))
            tv = type(value)
            if tv is str:
                if search(value):
                    out.append(Problem(_linked_path(link, key), f"{clip(value)} {_hostile_text(value)}"))
            elif tv is dict or tv is list:
                stack.append((value, (link, key)))
    return out


def _linked_path(link: Any, last: str | int) -> str:
    parts: list[str | int] = [last]
    while link is not None:
        link, key = link
        parts.append(key)
    parts.reverse()
    return format_path(parts)


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


def _names(*groups: str) -> frozenset[str]:
    return frozenset(_fold(n) for g in groups for n in g.split(","))


def _fold(name: str) -> str:
    """Case, spaces, '-', '_' and '.' folded away: 'Domain Admins' ~ 'domain-admins' ~ 'domain_admins'
    (winbind's 'normalize names' turns spaces into underscores)."""
    return re.sub(r"[\s_.-]+", "", name.strip().lower())


# Active Directory built-in and well-known groups (Samba creates these in every domain;
# Windows members know them locally).
AD_BUILTIN_GROUPS = _names(
    "administrators,users,guests,power users,account operators,backup operators,print operators,"
    "server operators,replicator,dnsadmins,dnsupdateproxy,cert publishers,schema admins,enterprise admins,"
    "domain admins,domain users,domain guests,domain computers,domain controllers,remote desktop users,"
    "network configuration operators,performance monitor users,performance log users,distributed com users,"
    "iis_iusrs,cryptographic operators,event log readers,certificate service dcom access,"
    "rds remote access servers,rds endpoint servers,rds management servers,hyper-v administrators,"
    "access control assistance operators,remote management users,storage replica administrators,"
    "allowed rodc password replication group,denied rodc password replication group,"
    "read-only domain controllers,enterprise read-only domain controllers,cloneable domain controllers,"
    "protected users,key admins,enterprise key admins,ras and ias servers,group policy creator owners,"
    "pre-windows 2000 compatible access,windows authorization access group,terminal server license servers,"
    "incoming forest trust builders,dhcp administrators,dhcp users,wins users,device owners,"
    "everyone,authenticated users,anonymous logon,creator owner,creator group,enterprise domain controllers,"
    "local system,local service,network service",
)
AD_BUILTIN_USERS = _names("administrator,guest,krbtgt,defaultaccount,wdagutilityaccount")
# Accounts and groups of Debian/Ubuntu systems (base-passwd and the packages provision
# installs or commonly meets). Membership of several is root-equivalent (sudo, adm, disk,
# shadow, docker, lxd, libvirt...).
DEBIAN_SYSTEM_USERS = _names(
    "root,daemon,bin,sys,sync,games,man,lp,mail,news,uucp,proxy,www-data,backup,list,irc,gnats,nobody,_apt,"
    "systemd-network,systemd-resolve,systemd-timesync,systemd-coredump,systemd-oom,messagebus,sshd,_chrony,"
    "avahi,postfix,dovecot,dovenull,postgres,bind,debian-exim,statd,sssd,_rpc,tss,uuidd,tcpdump,ntp,ntpsec,"
    "dnsmasq,usbmux,rtkit,pulse,polkitd,debian-snmp,_lldpd,mysql,redis,memcache,nslcd,openldap,clamav,"
    "opendkim,_flatpak,saned,colord,geoclue,lightdm,gdm,speech-dispatcher,cups-pk-helper,kernoops,whoopsie",
)
DEBIAN_SYSTEM_GROUPS = _names(
    "root,daemon,bin,sys,adm,tty,disk,lp,mail,news,uucp,man,proxy,kmem,dialout,fax,voice,cdrom,floppy,tape,"
    "sudo,audio,dip,www-data,backup,operator,list,irc,src,gnats,shadow,utmp,video,sasl,plugdev,staff,games,"
    "users,nogroup,systemd-journal,systemd-network,systemd-resolve,systemd-timesync,systemd-coredump,_ssh,"
    "crontab,messagebus,sambashare,winbindd_priv,ssl-cert,netdev,input,kvm,render,sgx,_chrony,debian-exim,"
    "postfix,postdrop,dovecot,dovenull,postgres,bind,lpadmin,scanner,bluetooth,avahi,pulse,pulse-access,"
    "rtkit,polkitd,docker,lxd,libvirt,libvirt-qemu,wheel,admin,tss,uuidd,tcpdump,mlocate,plocate,ntp,"
    "ntpsec,sssd,statd,_rpc,i2c,spi,gpio,lxd,incus,incus-admin,systemd-oom",
)
# 'staff' is a Debian system group too, but the examples and most real specs use it for
# the people of the office; it is the one system group name left available to groups.
_GROUP_NAMES_ALLOWED = _names("staff")


def _reserved_account(name: str, kind: str) -> str | None:
    """Why ``name`` cannot be a user (kind 'user') or group (kind 'group') of the spec."""
    if name.startswith("_"):
        return f"'{name}': names starting with '_' are reserved for system accounts on Debian; pick another name"
    folded = _fold(name)
    if folded.startswith(_fold(policy.LOGIN_GROUP_PREFIX)):
        return (
            f"'{name}': names starting with {policy.LOGIN_GROUP_PREFIX} are the login groups provision keeps "
            "in a domain"
        )
    if folded.startswith("systemd"):
        return f"'{name}' looks like a systemd system account (systemd-*); pick another name"
    if kind == "user" and folded in AD_BUILTIN_USERS | DEBIAN_SYSTEM_USERS:
        return f"'{name}' is a built-in account (of Active Directory or Debian) and cannot be managed; rename it"
    if folded in AD_BUILTIN_GROUPS:
        return (
            f"'{name}' is (a spelling of) a built-in Active Directory group; "
            f"a {kind} of that name would be mistaken for it in ACLs; pick another name"
        )
    if kind == "group" and folded in _GROUP_NAMES_ALLOWED:
        return None
    if folded in DEBIAN_SYSTEM_GROUPS or (kind == "group" and folded in DEBIAN_SYSTEM_USERS):
        return (
            f"'{name}' is a Debian system {'group' if folded in DEBIAN_SYSTEM_GROUPS else 'account'}; "
            f"a {kind} of that name would join or shadow it (some, like sudo or disk, give root); pick another name"
        )
    return None


# Section names of smb.conf are case-insensitive; these are Samba's own or Windows' admin shares.
RESERVED_SHARE_NAMES = frozenset({"global", "globals", "homes", "printers", "print$", "ipc$", "admin$"})
_DRIVE_SHARE = re.compile(r"^[a-z]\$$")
DOMAIN_SHARE_NAMES = frozenset({"netlogon", "sysvol"})


def _reserved_share(name: str, mode: Any, kind: str) -> str | None:
    low = name.lower()
    if low in RESERVED_SHARE_NAMES or _DRIVE_SHARE.fullmatch(low):
        return (
            f"'{name}' is reserved: smb.conf section names are case-insensitive and [{low}] is Samba's "
            f"own or a Windows admin share; name the {kind} differently"
        )
    if mode == "domain" and low in DOMAIN_SHARE_NAMES:
        return f"'{name}' is reserved in a domain: the domain controllers serve [{low}]; name the {kind} differently"
    return None


def reserved_reason(field: object, value: str) -> str | None:
    """Why the schema's ``not`` refused ``value`` for a share's ``field``, said as the rules say it."""
    if field == "path":
        return _share_path_problem(value)
    if field == "name":
        return _reserved_share(value, None, "share")
    return None


# Single-label names that mean something else to DNS, WPAD/ISATAP discovery, /etc/hosts
# or the generated Ansible inventory (its groups all, ungrouped, workgroup, domain and
# the roles without '_').
RESERVED_HOST_NAMES = frozenset(
    _words(
        "localhost localdomain ip6-localhost ip6-loopback ip6-allnodes ip6-allrouters broadcasthost wpad "
        "isatap domaindnszones forestdnszones _msdcs _sites _tcp _udp all ungrouped workgroup domain peer "
        "workstation"
    )
)


def _reserved_host(name: str) -> str | None:
    low = name.lower()
    if low not in RESERVED_HOST_NAMES:
        return None
    if low in ("all", "ungrouped", "workgroup", "domain", "peer", "workstation"):
        return f"host name '{name}' is a group of the generated Ansible inventory; --limit would be ambiguous"
    if low in ("wpad", "isatap"):
        return f"host name '{name}' is used for {low.upper()} auto-discovery: clients would send it their traffic"
    return f"host name '{name}' is reserved (localhost, /etc/hosts or Active Directory DNS zones)"


# Share paths: never a system tree (by prefix), nor a directory that holds one.
SYSTEM_DIRS = _words(
    "/bin /boot /dev /etc /lib /lib32 /lib64 /libx32 /proc /root /run /sbin /sys /usr /snap "
    "/lost+found /var/lib /var/cache /var/log /var/spool /var/run /var/lock /var/mail /var/backups "
    "/var/tmp /tmp"
)
# Directories that hold other people's data or other shares: a folder under them is fine.
CONTAINER_DIRS = ("/home", "/srv", "/mnt", "/media")
PATH_MAX = 4096  # bytes, the terminating NUL included
NAME_MAX = 255  # bytes per component


def _path_form(path: str) -> str | None:
    """Why ``path`` is not an absolute, normalised POSIX path, or None."""
    if not path.startswith("/"):
        return f"{clip(path)} is not an absolute path: start it with '/'"
    if "\\" in path:
        return (
            f"{clip(path)} contains a backslash; separate directories with '/' "
            "(in smb.conf a trailing '\\' continues the line)"
        )
    parts = path.split("/")[1:]
    if path != "/" and ("" in parts or "." in parts or ".." in parts):
        fixed = posixpath.normpath(path).replace("//", "/")
        return f"{clip(path)} is not normalised ('//', a trailing '/', '.' or '..'); write it as {clip(fixed)}"
    size = len(path.encode("utf-8", "surrogatepass"))
    if size >= PATH_MAX:
        return f"the path is {size} bytes long; Linux allows at most {PATH_MAX - 1} (PATH_MAX)"
    long = next((p for p in parts if len(p.encode("utf-8", "surrogatepass")) > NAME_MAX), None)
    if long is not None:
        return f"the path component {clip(long)} is longer than {NAME_MAX} bytes (NAME_MAX)"
    return None


def _share_path_problem(path: str) -> str | None:
    form = _path_form(path)
    if form is not None:
        return form
    if "%" in path:
        return (
            f"{clip(path)} contains '%': Samba expands %-macros (%U, %m...) in a share path, "
            "so it would serve another directory than the one provision creates"
        )
    if path == "/":
        return "'/' is the whole file system; share a folder such as /srv/NAME"
    for system in SYSTEM_DIRS:
        if path == system or path.startswith(system + "/"):
            return f"{clip(path)} lies inside {system}, a system directory; share a folder of its own such as /srv/NAME"
        if system.startswith(path + "/"):
            return f"{clip(path)} holds the system directory {system}; share a folder of its own such as /srv/NAME"
    if path in CONTAINER_DIRS:
        return f"{path} holds other users' or shares' data; share a folder under it (e.g. {path}/NAME)"
    return None


def backup_dir_problem(path: str) -> str | None:
    """Why ``path`` may not hold backups on the controller (the spec chooses it: never a system
    directory, so an untrusted spec cannot have provision write into /etc or /usr)."""
    form = _path_form(path)
    if form is not None:
        return form
    for system in SYSTEM_DIRS:
        if system == "/var/backups" and path.startswith("/var/backups/"):
            continue  # a folder of its own under /var/backups is where backups belong
        if path == system or path.startswith(system + "/") or system.startswith(path + "/"):
            return f"{clip(path)} is or holds the system directory {system}; use a folder such as /srv/backups"
    if path in CONTAINER_DIRS:
        return f"{path} holds other data; use a folder of its own under it (e.g. {path}/backups)"
    return None


def _backup_policy(raw: Mapping[str, Any]) -> BackupPolicy:
    age = raw.get("max_age")
    hours = None if age is None else int(age[:-1]) * (24 if age.endswith("d") else 1)
    return BackupPolicy(hours, raw.get("keep"), raw.get("schedule", "daily"), raw.get("directory"))


def _smb_text_problem(value: str) -> str | None:
    """A free-text value written into smb.conf as 'key = value'."""
    if value.endswith("\\"):
        return "ends in a backslash, which continues the line in smb.conf (the next line would join it); remove it"
    if value != value.strip():
        return "has leading or trailing white space, which smb.conf drops (it would never match the spec); remove it"
    return None


PRINTER_SCHEMES = frozenset(_words("ipp ipps http https socket lpd usb dnssd smb cups-pdf hp hpfax ippusb file"))
_NULL_DEVICE = frozenset({"file:///dev/null", "file:/dev/null"})
_SECRET_QUERY = re.compile(r"(?:^|[?&;])(?:pass(?:word|wd)?|pwd|secret|token|auth)=", re.IGNORECASE)


def _uri_problem(uri: str) -> str | None:
    scheme, sep, rest = uri.partition(":")
    scheme = scheme.lower()
    if not sep or not scheme:
        return f"{clip(uri)} is not a device URI such as ipp://printer/ipp/print"
    if any(c.isspace() for c in uri):
        return f"{clip(uri)} contains white space; percent-encode it (%20)"
    if scheme not in PRINTER_SCHEMES:
        return f"unknown URI scheme '{scheme[:20]}'; allowed: {', '.join(sorted(PRINTER_SCHEMES - {'file'}))}, file:///dev/null"
    if scheme == "file" and uri.lower() not in _NULL_DEVICE:
        return (
            "a file: URI makes CUPS write every job into that file (as root or lp), which can overwrite "
            "any file; only file:///dev/null (a test queue) is allowed"
        )
    if rest.startswith("//"):
        authority = re.split(r"[/?#]", rest[2:], maxsplit=1)[0]
        if "@" in authority:
            return (
                "the URI carries credentials (user[:password]@ before the host): CUPS stores and shows them "
                "(printers.conf, lpstat -v); remove them and set authentication on the printer or in CUPS"
            )
    _, _, query = rest.partition("?")
    if query and _SECRET_QUERY.search(query):
        return "the URI carries a password or token in its query; remove it (CUPS stores and shows device URIs)"
    return None


# Environment variables of the system and of the tools provision runs: never a secret of
# the spec's (a spec naming them would ship the operator's environment to the hosts).
_SYSTEM_ENV = frozenset(
    _words(
        "PATH HOME USER LOGNAME SHELL PWD OLDPWD TERM LANG LANGUAGE DISPLAY MAIL HOSTNAME TMPDIR EDITOR "
        "VISUAL PAGER IFS PS1 PS2 TZ UID EUID SHLVL VIRTUAL_ENV KRB5CCNAME KRB5_CONFIG"
    )
)
_SYSTEM_ENV_PREFIXES = ("LD_", "LC_", "SSH_", "SUDO_", "XDG_", "PYTHON", "ANSIBLE_", "DBUS_", "GPG_", "PROVISION_LAB")


def _secret_refs(data: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for j, u in enumerate(_list(data.get("users"))):
        ref = _dict(u).get("password")
        if type(ref) is dict:
            yield f"users[{j}].password", ref
    ref = _dict(data.get("domain")).get("admin_password")
    if type(ref) is dict:
        yield "domain.admin_password", ref


# A PEM file holds a certificate chain or one key: anything bigger is not one.
PEM_FILE_MAX = 65536


def _pem_refs(data: Mapping[str, Any]) -> Iterator[tuple[str, Any, bool]]:
    """(path, file, is a private key) of every PEM file the spec names."""
    for i, h in enumerate(_list(data.get("hosts"))):
        tls = _dict(_dict(h).get("tls"))
        for part in ("certificate", "key"):
            if part in tls:
                yield f"hosts[{i}].tls.{part}.file", _dict(tls[part]).get("file"), part == "key"
    for k, ref in enumerate(_list(_dict(data.get("tls")).get("ca_certificates"))):
        yield f"tls.ca_certificates[{k}].file", _dict(ref).get("file"), False


def _pem_file_problem(path: Path, is_key: bool) -> str | None:
    """Why ``path`` cannot be a PEM file the controller reads (stat only, never opened)."""
    if _under_system_tree(path):
        return f"{clip(str(path))} lies under /proc, /sys or /dev; name a regular file"
    try:
        st = path.stat()
    except FileNotFoundError:
        return None  # read (and reported) at run time: the file may be made by the pipeline
    except OSError as exc:
        return f"cannot check {clip(str(path))}: {exc.strerror}"
    if not stat.S_ISREG(st.st_mode):
        return f"{clip(str(path))} is not a regular file"
    if st.st_size > PEM_FILE_MAX:
        return f"{clip(str(path))} is {st.st_size} bytes; a PEM file here holds at most {PEM_FILE_MAX} bytes"
    if is_key and st.st_mode & 0o077:
        return f"{clip(str(path))} is readable by others (mode {st.st_mode & 0o777:04o}); a private key must be 0600"
    return None


_SYSTEM_TREES = ("/proc", "/sys", "/dev")


def _under_system_tree(path: Path) -> bool:
    for candidate in (os.path.abspath(path), os.path.realpath(path)):  # noqa: PTH100 - no symlink resolution wanted
        if any(candidate == t or candidate.startswith(t + "/") for t in _SYSTEM_TREES):
            return True
    return False


def check_local_files(data: Mapping[str, Any], base_dir: Path | None, found: Found) -> None:
    """Files the controller reads: secret files and the SSH key and known_hosts files.

    Checked with stat only, never opened; relative paths only when the spec's folder is
    known. A missing file is not an error here (it may be made by the pipeline)."""
    from provision import secrets  # deferred: secrets pulls in tempfile/shutil, only needed here

    base = str(base_dir) if base_dir is not None else ""
    for path, ref in _secret_refs(data):
        env = ref.get("env")
        if isinstance(env, str) and (env.upper() in _SYSTEM_ENV or env.upper().startswith(_SYSTEM_ENV_PREFIXES)):
            found.error(
                f"{path}.env",
                f"'{env[:CLIP]}' is an environment variable of the system or of the tools provision runs, "
                "not a secret; name a variable of your own, e.g. ACME_ALICE_PW",
            )
        file = ref.get("file")
        if not isinstance(file, str) or not file or _HOSTILE.search(file):
            continue
        if not base and not file.startswith(("/", "~")):
            continue
        try:
            problem = secrets.secret_file_problem(secrets.secret_path(file, base))
        except (OSError, ValueError) as exc:  # e.g. an embedded NUL the walk reports, a bad ~user
            problem = ("error", f"cannot check the secret file: {exc}")
        if problem is not None:
            severity, message = problem
            (found.error if severity == "error" else found.warn)(f"{path}.file", message)
    for path, file, is_key in _pem_refs(data):
        if not isinstance(file, str) or not file or _HOSTILE.search(file):
            continue
        if not base and not file.startswith(("/", "~")):
            continue
        try:
            target = Path(file).expanduser()
            why = _pem_file_problem(target if target.is_absolute() else Path(base) / target, is_key)
        except (OSError, RuntimeError, ValueError) as exc:
            why = f"cannot check {clip(file)}: {exc}"
        if why is not None:
            found.error(path, why)
    ssh = _dict(data.get("ssh"))
    for key in ("identity_file", "known_hosts_file"):
        value = ssh.get(key)
        if not isinstance(value, str) or not value or _HOSTILE.search(value):
            continue
        if not base and not value.startswith(("/", "~")):
            continue
        try:
            target = Path(value).expanduser()
            if not target.is_absolute() and base:
                target = Path(base) / target
            if _under_system_tree(target):
                found.error(f"ssh.{key}", f"{clip(value)} lies under /proc, /sys or /dev; name a regular file")
                continue
            mode = target.stat().st_mode
        except FileNotFoundError:
            continue
        except (OSError, RuntimeError, ValueError) as exc:
            found.error(f"ssh.{key}", f"cannot check {clip(value)}: {exc}")
            continue
        if not stat.S_ISREG(mode):
            found.error(f"ssh.{key}", f"{clip(value)} is not a regular file (a FIFO or device would block or stream)")


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
        streams=raw.get("streams", True),
        macos=_macos(raw),
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
    parts: dict[
        int,
        tuple[
            Role,
            str,
            tuple[Share, ...],
            tuple[Printer, ...],
            bool,
            str,
            MailService | None,
            TlsFiles | None,
            tuple[Database, ...],
            RequirementsOverride | None,
        ],
    ] = {}
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
                MailService(**raw.get("mail", {})) if raw["role"] == Role.MAIL_SERVER else None,
                _tls_files(raw.get("tls"), base_dir),
                tuple(_database(d) for d in raw.get("databases", ())),
                _requirements(raw.get("requirements")),
            )
        role, os_, shares, printers, homes, client, mail, tls, dbs, needs = p
        if role is Role.FILE_SERVER:
            client = "winbind"
        hosts.append(
            Host(
                e.name,
                e.address,
                role,
                os_,
                shares,
                printers,
                homes,
                client,
                e.range_name,
                mail,
                dbs,
                tls,
                requirements=needs,
            )
        )

    domain = None
    if mode is Mode.DOMAIN:
        d = data["domain"]
        dcs = tuple(d.get("dcs") or [h.name for h in hosts if h.role is Role.DOMAIN_CONTROLLER])
        zone = d["realm"].lower()
        domain = Domain(d["realm"], d["netbios"], _secret(d["admin_password"]), dcs, zone, d.get("mail_domain") or zone)

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
        access=None if pol.get("access") is None else tuple(_access_rule(r) for r in pol["access"]),
        sudo=None if not pol.get("sudo") else tuple(_sudo_rule(r) for r in pol["sudo"]),
        backup=_backup_policy(pol.get("backup") or {}),
    )
    ro = data.get("rollout", {})
    order = tuple(tuple(Role(r) for r in stage) for stage in _stages(ro.get("order"))) or tuple(
        stage
        for stage in (tuple(r for r in s if (r in DOMAIN_ROLES) == (mode is Mode.DOMAIN)) for s in DEFAULT_ORDER)
        if stage
    )
    rollout = Rollout(
        batch=ro.get("batch", 50),
        max_fail_percent=ro.get("max_fail_percent", 10),
        order=order,
        execution_nodes=tuple(ExecutionNode(n["name"], n["address"]) for n in ro.get("execution_nodes", ())),
    )

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
    groups = tuple(Group(g["name"], g.get("description", ""), g.get("mail", False)) for g in data.get("groups", ()))
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
        tls_ca_files=tuple(
            _resolve_path(ref["file"], base_dir) or ref["file"]
            for ref in data.get("tls", {}).get("ca_certificates", ())
        ),
    )


def _host_names(selectors: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(n for sel in selectors for n in (expand_range(sel) or [sel])))


def _access_rule(raw: Mapping[str, Any]) -> AccessRule:
    return AccessRule(
        users=tuple(raw.get("users", ())),
        groups=tuple(raw.get("groups", ())),
        everyone=raw.get("everyone", False),
        roles=tuple(raw.get("roles", ())),
        hosts=_host_names(raw.get("hosts", [])),
        allow=raw.get("allow", True),
    )


def _sudo_rule(raw: Mapping[str, Any]) -> SudoRule:
    return SudoRule(
        users=tuple(raw.get("users", ())),
        groups=tuple(raw.get("groups", ())),
        roles=tuple(raw.get("roles", ())),
        hosts=_host_names(raw.get("hosts", [])),
        commands=tuple(raw.get("commands", ("ALL",))),
        nopasswd=raw.get("nopasswd", False),
    )


def _database(raw: Mapping[str, Any]) -> Database:
    rw, ro = raw.get("read_write", {}), raw.get("read_only", {})
    return Database(
        raw["name"],
        raw["owner"],
        tuple(rw.get("users", ())),
        tuple(rw.get("groups", ())),
        tuple(ro.get("users", ())),
        tuple(ro.get("groups", ())),
    )


def _requirements(raw: Mapping[str, Any] | None) -> RequirementsOverride | None:
    """hosts[].requirements; int() because JSON Schema's integer also admits 2048.0."""
    if not raw:
        return None
    figures = {k: int(raw[k]) for k in ("memory_mb", "cpus", "disk_gb") if raw.get(k) is not None}
    return RequirementsOverride(**figures) if figures else None


def _tls_files(raw: Mapping[str, Any] | None, base_dir: Path | None) -> TlsFiles | None:
    if not raw:
        return None
    cert = raw["certificate"]["file"]
    key = raw["key"]["file"]
    return TlsFiles(_resolve_path(cert, base_dir) or cert, _resolve_path(key, base_dir) or key)


def _resolve_path(value: str | None, base_dir: Path | None) -> str | None:
    if not value:
        return None
    path = Path(value).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    return str(path)
