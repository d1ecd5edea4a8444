"""``provision show SPEC HOST``: everything the spec means for one host, offline.

Each part comes from where the apply takes it, never from a second reading of the
spec: shares from the playbooks' share planner (``provision.shares``), logins and sudo
from ``provision.policy``, firewall ports from the base role's own port table, the
variables from ``provision.inventory``, secrets from ``provision.secrets`` (references
only, never values).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

from provision import inventory, policy, requirements, secrets, shares
from provision.errors import EXIT_INVALID_SPEC, ProvisionError
from provision.model import Host, Mode, Network, Role
from provision.requirements import HostRequirements
from provision.resources import playbooks_dir
from provision.verify import join_client, postgres_cluster


class UnknownHost(ProvisionError):
    """HOST is not a host of the spec (a command-line error: nothing contacted)."""

    exit_code = EXIT_INVALID_SPEC


@dataclass(frozen=True)
class ShareAccess:
    """A share as its users meet it: who reads and writes (groups expanded to the spec's users)."""

    name: str
    path: str
    read_write: tuple[str, ...]
    read_only: tuple[str, ...]
    admins: bool  # the domain's admins may always write (domain file servers)


@dataclass(frozen=True)
class Port:
    proto: str
    port: str
    comment: str


@dataclass(frozen=True)
class HostView:
    host: Host
    mode: Mode
    groups: tuple[str, ...]  # inventory groups
    shares: tuple[ShareAccess, ...]
    printers: tuple[tuple[str, tuple[str, ...]], ...]  # name, who may print (empty: every user)
    logins: tuple[str, ...]  # users of the spec who may log in
    sudo: tuple[tuple[str, str], ...]  # user, what (commands, nopasswd)
    services: tuple[str, ...]
    ports: tuple[Port, ...]
    allow_from: tuple[str, ...]
    firewall: bool
    variables: dict[str, Any] = field(default_factory=dict)  # host vars, then the groups' (no secrets)
    secrets: tuple[tuple[str, str], ...] = ()  # variable, reference
    requirements: HostRequirements | None = None  # what preflight checks on it

    def to_dict(self) -> dict[str, Any]:
        h = self.host
        return {
            "host": h.name,
            "address": h.address,
            "role": h.role.value,
            "mode": self.mode.value,
            "client": join_client(h) if h.role not in (Role.PEER, Role.DOMAIN_CONTROLLER) else None,
            "groups": list(self.groups),
            "shares": [
                {"name": s.name, "path": s.path, "read_write": list(s.read_write), "read_only": list(s.read_only)}
                for s in self.shares
            ],
            "printers": [{"name": n, "users": list(u)} for n, u in self.printers],
            "logins": list(self.logins),
            "sudo": [{"user": u, "grant": g} for u, g in self.sudo],
            "services": list(self.services),
            "firewall": {
                "enabled": self.firewall,
                "allow_from": list(self.allow_from),
                "ports": [{"proto": p.proto, "port": p.port, "comment": p.comment} for p in self.ports],
            },
            "requirements": requirements.to_dict(self.requirements) if self.requirements else None,
            "variables": self.variables,
            "secrets": [{"variable": v, "reference": r} for v, r in self.secrets],
        }


@functools.cache
def _base_defaults() -> dict[str, Any]:
    import yaml

    data = yaml.safe_load((playbooks_dir() / "roles/base/defaults/main.yml").read_text())
    return data if isinstance(data, dict) else {}


def firewall_ports(network: Network, host: Host) -> list[Port]:
    """The inbound ports the base role opens on ``host`` (its role's, NetBIOS, IMAP STARTTLS)
    besides SSH, read from the role's defaults: the same table the firewall is built from."""
    d = _base_defaults()
    entries = list(d.get("base_firewall_role_ports", {}).get(host.role.value) or [])
    if network.policies.smb.netbios and host.role.value in d.get("base_firewall_smb_roles", []):
        entries += d.get("base_firewall_netbios_ports", [])
    if host.role is Role.MAIL_SERVER and host.mail is not None and host.mail.imap_starttls:
        entries.append({"proto": "tcp", "port": "143", "comment": "IMAP (STARTTLS)"})
    ssh = Port("tcp", str(network.ssh.port), "SSH")
    return [ssh] + [Port(str(e["proto"]), str(e["port"]), str(e.get("comment", ""))) for e in entries]


def services(network: Network, host: Host) -> list[str]:
    """The systemd units the roles run on ``host`` (each role's converged watch list names them)."""
    out = ["chrony.service"] + (["nftables.service"] if network.policies.firewall.enabled else [])
    if host.role is Role.PEER:
        out += ["smbd.service", "nmbd.service", "avahi-daemon.service", "wsdd.service"]
        out += ["cups.service"] if host.printers else []
    elif host.role is Role.DOMAIN_CONTROLLER:
        out += ["samba-ad-dc.service"]
    elif join_client(host) == "winbind":
        out += ["winbind.service", "smbd.service"]
    else:
        out += ["sssd.service"]
    if host.role is Role.MAIL_SERVER:
        out += ["postfix.service", "dovecot.service"]
    if host.role is Role.DATABASE_SERVER:
        out.append(postgres_cluster()["unit"])
    return out


def _share_access(network: Network, host: Host) -> list[ShareAccess]:
    members = policy.group_members(network)
    users = [u.name for u in network.users]

    def expand(names: list[str]) -> set[str]:
        out: set[str] = set()
        for n in names:
            # smb.conf spells them @"DOM\\group", "DOM\\user" or plain: the spec's name is the last part
            bare = n.removeprefix("@").strip('"').split("\\")[-1].strip('"')
            if n.startswith("@"):
                out |= {m for m in members.get(bare, set()) if m in users}
            elif bare in users:
                out.add(bare)
        return out

    found = []
    for s in shares.host_sections(network, host):
        valid = expand(list(s.get("valid_users") or [])) if s.get("valid_users") else set(users)
        writers = expand(list(s.get("write_list") or []))
        readers = expand(list(s.get("read_list") or []))
        rw = writers & valid if s.get("read_only") else (valid - readers) | (writers & valid)
        found.append(
            ShareAccess(
                name=str(s["name"]),
                path=str(s.get("path", "")),
                read_write=tuple(sorted(rw)),
                read_only=tuple(sorted(valid - rw)),
                admins=network.mode is Mode.DOMAIN,
            )
        )
    return found


def view(network: Network, name: str) -> HostView:
    """The view of host ``name``."""
    try:
        host = network.host(name)
    except KeyError:
        raise UnknownHost(f"'{name}' is not a host of the spec") from None
    logins, grants = [], []
    for u in network.users:
        found = policy.answer(network, u.name, host.name)
        if found["login"]["allowed"]:
            logins.append(u.name)
        for g in found["sudo"]:
            grants.append((u.name, ", ".join(g["commands"]) + (" (no password)" if g["nopasswd"] else "")))
    inv = inventory.build_inventory(network, [host])
    group_names = _groups_of(inv["all"], host.name)
    variables = dict(inventory.host_vars(host) | inventory.host_connection_vars(network, host))
    variables.update({k: v for k, v in inventory.global_vars(network).items() if k not in variables})
    fw = network.policies.firewall
    return HostView(
        host=host,
        mode=network.mode,
        groups=tuple(group_names),
        shares=tuple(_share_access(network, host)),
        printers=tuple((p.name, tuple(sorted({*p.users, *p.groups}))) for p in host.printers),
        logins=tuple(logins),
        sudo=tuple(grants),
        services=tuple(services(network, host)),
        ports=tuple(firewall_ports(network, host)),
        allow_from=tuple(fw.allow_from or network.subnets),
        firewall=fw.enabled,
        variables=variables,
        secrets=tuple(_secret_refs(network, host)),
        requirements=requirements.for_host(network, host),
    )


def _groups_of(group: dict[str, Any], name: str) -> list[str]:
    """The inventory groups under ``group`` that hold ``name``, outermost first."""
    out: list[str] = []
    for child_name, child in (group.get("children") or {}).items():
        inner = _groups_of(child, name)
        if inner or name in (child.get("hosts") or {}):
            out += [child_name, *inner]
    return out


def _secret_refs(network: Network, host: Host) -> list[tuple[str, str]]:
    """The secrets a run sends for ``host``, as references (runner sends users' passwords only
    to the hosts that set them: DCs and peers)."""
    users = host.role in (Role.DOMAIN_CONTROLLER, Role.PEER)
    out = []
    for where, ref in secrets.references(network, users=users):
        variable = "provision_domain_admin_password" if where.startswith("domain.") else "provision_user_passwords"
        out.append((f"{variable} ({where})", ref.describe()))
    return out


def render(v: HostView) -> str:
    """The view as text for people."""
    h = v.host
    client = f", {join_client(h)} member" if h.role not in (Role.PEER, Role.DOMAIN_CONTROLLER) else ""
    lines = [f"{h.name}: {h.role.value}{client}, {h.address} ({v.mode.value})", f"  groups: {', '.join(v.groups)}"]
    if v.requirements is not None:
        lines.append(f"  requirements (preflight checks them): {requirements.describe(v.requirements)}")
    lines.append(f"  services: {', '.join(v.services)}")
    if v.firewall:
        ports = ", ".join(f"{p.port}/{p.proto} {p.comment}".strip() for p in v.ports)
        lines.append(f"  firewall: from {', '.join(v.allow_from)} only: {ports}")
    else:
        lines.append("  firewall: off (policies.firewall.enabled: false)")
    if v.shares:
        lines.append("  shares:")
        for s in v.shares:
            admins = " (and the domain's admins)" if s.admins else ""
            lines.append(f"    \\\\{h.name}\\{s.name}  {s.path}{admins}")
            lines.append(f"      read-write: {', '.join(s.read_write) or 'nobody'}")
            lines.append(f"      read-only:  {', '.join(s.read_only) or 'nobody'}")
    for name, who in v.printers:
        lines.append(f"  printer {name}: {', '.join(who) or 'every user'}")
    lines.append(f"  may log in: {', '.join(v.logins) or 'no user of the spec'} (and root with its key)")
    for user, grant in v.sudo:
        lines.append(f"  sudo: {user}: {grant}")
    lines.append("  variables (host, then the groups'; every string reaches Ansible !unsafe):")
    for key, value in v.variables.items():
        text = repr(value)
        lines.append(f"    {key}: {text if len(text) <= 100 else text[:97] + '...'}")
    for variable, ref in v.secrets:
        lines.append(f"    {variable}: secret from {ref} (resolved at run time, never shown)")
    return "\n".join(lines)
