r"""What the next apply adds, changes and removes: the last applied model against the spec.

``diff(before, after)`` compares two models (``before`` from ``state.load``, None when
nothing was applied: then everything is an addition) object by object, and says for
each removal what the apply really does on the hosts (``Change.note``, written from the
roles and modules that do it; each note cites them in a comment).

Decisions:

- Actions are ``add``, ``change`` and ``remove``, nothing else. An object that leaves the
  spec is a ``remove`` even when the apply leaves it in place (a database, a workgroup
  group, an adopted account): its note then says "left in place (unmanaged)". So
  "K to remove" counts what leaves the spec, and the notes say what that does.
- Group membership is a field of the user (``groups``), as in the spec; a mail list's
  members follow from it and are not listed again.
- A removed host carries its shares, printers and databases away with it: they are not
  listed one by one (the host is not contacted, so nothing happens to them); the host's
  note says what stays. Its computer account and DNS records are listed (the first DC
  deletes them). An added host lists everything it gets.
- Consequences that are no object of the spec are told in notes, not counted: a
  workgroup peer's accounts that no share of it needs any more, PostgreSQL roles no
  database names any more, the prune safety net of the first DC.
- A ``SecretRef`` shows as its reference (``env:NAME``, ``file:PATH``). A changed secret
  *value* behind the same reference cannot be seen: no secret is ever recorded.

Kinds, in the order they are listed (per host, the network-wide ones first), with the
form of their names; host is null for the first nine::

    network           the network's name (mode, subnets, workgroup, forwarders, NTP, CAs)
    connection        "ssh": user, port, become (not the controller's key and known_hosts files)
    domain            the realm (netbios, dns_domain, mail_domain, dcs, admin_password)
    rollout           "rollout" (batch, max_fail_percent, order); "execution node NAME"
    policy            "password", "smb", "firewall", "unattended upgrades",
                      "access rules", "sudo rules" (fields "source" and "rule N"), "backup"
    group             the group's name
    user              the user's name; fields full_name, groups (memberships), shell, password
    mailbox           "user@mail.domain" (domain with a mail server)
    mail list         "group@mail.domain" (groups with mail: true)
    host              the host's name (address, role, os, homes, client, mail, tls, ...)
    computer account  the member's name (domain members; DCs have none here)
    dns record        "ws1.lab.example A 10.231.1.5", "lab.example MX mx1.lab.example"
    share             "\\fs1\projects"; fields the share's settings and access lists
    printer           "\\peer2\office-pdf"
    database          the database's name; fields owner and grants

Changes are ordered by host (None first, then by name, digits as numbers), then kind
(the order above), then name. ``Changes.to_records()`` is the JSON form (version
``RECORD_VERSION``), one object per change::

    {"action": "add" | "change" | "remove",
     "kind": "share",                 # one of KINDS
     "name": "\\\\fs1\\projects",       # what it is called on the network
     "host": "fs1" | null,             # the host it lives on; null: network-wide
     "fields": [{"name": "read_only", "before": false, "after": true}, ...],
     "note": "..."}                    # what the apply really does; "" when nothing to add

``fields`` of an addition hold every field that has a value (``before`` null), of a
removal the values it had (``after`` null), of a change the fields that differ; values
are JSON (strings, numbers, booleans, lists, objects such as a host's ``mail``).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

from ansible.errors import AnsibleError

from provision import inventory, shares
from provision.model import (
    AccessRule,
    Database,
    Domain,
    Group,
    Host,
    Mode,
    Network,
    Printer,
    Role,
    Rollout,
    Share,
    Ssh,
    SudoRule,
    User,
)
from provision.state import to_data

ADD, CHANGE, REMOVE = "add", "change", "remove"
RECORD_VERSION = 1
KINDS = (
    "network",
    "connection",
    "domain",
    "rollout",
    "policy",
    "group",
    "user",
    "mailbox",
    "mail list",
    "host",
    "computer account",
    "dns record",
    "share",
    "printer",
    "database",
)
UNMANAGED = "left in place (unmanaged)"

# The first DC's prune safety net (playbooks/roles/domain_directory/defaults/main.yml:
# domain_directory_prune_max, domain_directory_prune_max_percent).
PRUNE_MAX = 10
PRUNE_MAX_PERCENT = 50
MAILDIR = "/var/vmail"  # playbooks/roles/mail_server/defaults/main.yml: mail_server_mail_dir
COMPUTER_OU = "OU=Provisioned Computers"  # domain_common_computer_ou


@dataclass(frozen=True, slots=True)
class FieldChange:
    """One field of an object: its value before and after (JSON data; None: absent)."""

    name: str
    before: Any
    after: Any


@dataclass(frozen=True, slots=True)
class Change:
    """One object the apply adds, changes or removes."""

    action: str  # ADD, CHANGE or REMOVE
    kind: str  # one of KINDS
    name: str
    host: str | None = None  # None: network-wide
    fields: tuple[FieldChange, ...] = ()
    note: str = ""

    def to_record(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "kind": self.kind,
            "name": self.name,
            "host": self.host,
            "fields": [{"name": f.name, "before": f.before, "after": f.after} for f in self.fields],
            "note": self.note,
        }


@dataclass(frozen=True, slots=True)
class Changes:
    """Every change of an apply, in the documented order."""

    changes: tuple[Change, ...] = ()

    def __iter__(self) -> Iterator[Change]:
        return iter(self.changes)

    def __len__(self) -> int:
        return len(self.changes)

    def __bool__(self) -> bool:
        return bool(self.changes)

    def counts(self) -> tuple[int, int, int]:
        """(to add, to change, to remove)."""
        actions = [c.action for c in self.changes]
        return actions.count(ADD), actions.count(CHANGE), actions.count(REMOVE)

    def removals(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.action == REMOVE)

    def by_host(self) -> dict[str | None, tuple[Change, ...]]:
        """Changes per host, network-wide (None) first, in order."""
        out: dict[str | None, list[Change]] = {}
        for c in self.changes:
            out.setdefault(c.host, []).append(c)
        return {h: tuple(cs) for h, cs in out.items()}

    def to_records(self) -> list[dict[str, Any]]:
        """The JSON form (version RECORD_VERSION; see the module docstring)."""
        return [c.to_record() for c in self.changes]


def summary_line(changes: Changes) -> str:
    """'3 to add, 1 to change, 2 to remove', or 'no changes'."""
    if not changes:
        return "no changes"
    add, change, remove = changes.counts()
    return f"{add} to add, {change} to change, {remove} to remove"


def _natural(text: str) -> tuple[tuple[int, int, str], ...]:
    """ws2 before ws10."""
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"(\d+)", text) if p)


def order_key(c: Change) -> tuple[Any, ...]:
    return (c.host is not None, _natural(c.host or ""), KINDS.index(c.kind), _natural(c.name), c.action)


# --------------------------------------------------------------------------- the objects of a model


@dataclass(frozen=True, slots=True)
class _Item:
    """An object of one model: its name on the network, host, and field values (JSON data)."""

    name: str
    host: str | None
    values: dict[str, Any]


def _values(obj: object, names: Iterable[str]) -> dict[str, Any]:
    return {n: to_data(getattr(obj, n)) for n in names}


def _own_fields(cls: type, *exclude: str) -> tuple[str, ...]:
    """A model class's fields but the excluded ones: a field added to the model is compared
    without a change here (the excluded ones are objects of their own, or not the network's
    meaning: Host.connection, Host.range_name)."""
    return tuple(f.name for f in dataclasses.fields(cls) if f.name not in exclude)


HOST_FIELDS = _own_fields(Host, "name", "shares", "printers", "databases", "connection", "range_name")
SHARE_FIELDS = _own_fields(Share, "name")
PRINTER_FIELDS = _own_fields(Printer, "name")
DATABASE_FIELDS = _own_fields(Database, "name")
USER_FIELDS = _own_fields(User, "name")
GROUP_FIELDS = _own_fields(Group, "name")
DOMAIN_FIELDS = _own_fields(Domain)
# The key and known_hosts files live on the controller and --identity / --known-hosts
# replace them per run (Network.with_connection): not compared, or every such run differs.
SSH_FIELDS = _own_fields(Ssh, "identity_file", "known_hosts_file")
ROLLOUT_FIELDS = _own_fields(Rollout, "execution_nodes")
# The workgroup is compared in workgroup mode only: a domain's is its NetBIOS name (kind domain).
NETWORK_FIELDS = _own_fields(
    Network, "hosts", "users", "groups", "policies", "rollout", "ssh", "domain", "source", "base_dir", "workgroup"
)


def _who(users: tuple[str, ...], groups: tuple[str, ...], everyone: bool = False) -> str:
    if everyone:
        return "everyone"
    parts = ([f"users {', '.join(users)}"] if users else []) + ([f"groups {', '.join(groups)}"] if groups else [])
    return "; ".join(parts) or "nobody"


def _where(roles: tuple[str, ...], hosts: tuple[str, ...]) -> str:
    parts = ([f"roles {', '.join(roles)}"] if roles else []) + ([f"hosts {', '.join(hosts)}"] if hosts else [])
    return "; ".join(parts) or "no host"


def access_text(rule: AccessRule) -> str:
    """One login rule as a line: 'allow groups staff on roles workstation'."""
    verb = "allow" if rule.allow else "deny"
    return f"{verb} {_who(rule.users, rule.groups, rule.everyone)} on {_where(rule.roles, rule.hosts)}"


def sudo_text(rule: SudoRule) -> str:
    """One sudo rule as a line: 'groups admins on roles all may run ALL'."""
    tail = " without a password" if rule.nopasswd else ""
    who, where = _who(rule.users, rule.groups), _where(rule.roles, rule.hosts)
    return f"{who} on {where} may run {', '.join(rule.commands)}{tail}"


def _rules(rules: tuple[AccessRule, ...] | tuple[SudoRule, ...] | None, text: Callable[[Any], str]) -> dict[str, Any]:
    out: dict[str, Any] = {"source": "defaults" if rules is None else "spec"}
    for i, r in enumerate(rules or (), 1):
        out[f"rule {i}"] = text(r)
    return out


def _mail_servers(n: Network) -> list[Host]:
    return [h for h in n.hosts if h.role is Role.MAIL_SERVER]


def items(n: Network | None) -> dict[str, dict[Any, _Item]]:
    """Every object of a model by kind, keyed by what identifies it across models."""
    out: dict[str, dict[Any, _Item]] = {k: {} for k in KINDS}
    if n is None:
        return out
    values = _values(n, NETWORK_FIELDS)
    if n.mode is Mode.WORKGROUP:  # a domain's workgroup is its NetBIOS name (kind domain)
        values["workgroup"] = n.workgroup
    out["network"]["network"] = _Item(n.name, None, values)
    out["connection"]["ssh"] = _Item("ssh", None, _values(n.ssh, SSH_FIELDS))
    out["rollout"]["rollout"] = _Item("rollout", None, _values(n.rollout, ROLLOUT_FIELDS))
    for node in n.rollout.execution_nodes:
        out["rollout"][("node", node.name)] = _Item(f"execution node {node.name}", None, {"address": node.address})
    p = n.policies
    policy = out["policy"]
    policy["password"] = _Item("password", None, to_data(p.password))
    policy["smb"] = _Item("smb", None, to_data(p.smb))
    policy["firewall"] = _Item("firewall", None, to_data(p.firewall))
    policy["unattended upgrades"] = _Item("unattended upgrades", None, {"enabled": p.unattended_upgrades})
    policy["access rules"] = _Item("access rules", None, _rules(p.access, access_text))
    policy["sudo rules"] = _Item("sudo rules", None, _rules(p.sudo, sudo_text))
    # On the controller only: where backups go, how many stay, when --schedule runs them.
    policy["backup"] = _Item("backup", None, to_data(p.backup))
    for g in n.groups:
        out["group"][g.name] = _Item(g.name, None, _values(g, GROUP_FIELDS))
    for u in n.users:
        out["user"][u.name] = _Item(u.name, None, _values(u, USER_FIELDS))
    d = n.domain
    if d is not None:
        out["domain"]["domain"] = _Item(d.realm, None, _values(d, DOMAIN_FIELDS))
        if _mail_servers(n):
            for u in n.users:
                address = f"{u.name}@{d.mail_domain}"
                out["mailbox"][u.name] = _Item(address, None, {"address": address})
            for g in n.groups:
                if g.mail:
                    address = f"{g.name}@{d.mail_domain}"
                    out["mail list"][g.name] = _Item(address, None, {"address": address})
    for h in n.hosts:
        out["host"][h.name] = _Item(h.name, h.name, _values(h, HOST_FIELDS))
        if d is not None:
            if h.role is not Role.DOMAIN_CONTROLLER:
                out["computer account"][h.name] = _Item(h.name, h.name, {})
            fqdn = f"{h.name}.{d.dns_domain}"
            out["dns record"][("A", h.name)] = _Item(
                f"{fqdn} A {h.address}", h.name, {"name": fqdn, "address": h.address}
            )
            if h.role is Role.MAIL_SERVER and d.mail_in_zone:
                out["dns record"][("MX", h.name)] = _Item(
                    f"{d.mail_domain} MX {fqdn}", h.name, {"domain": d.mail_domain, "target": fqdn}
                )
        for s in h.shares:
            out["share"][(h.name, s.name)] = _Item(f"\\\\{h.name}\\{s.name}", h.name, _values(s, SHARE_FIELDS))
        for pr in h.printers:
            out["printer"][(h.name, pr.name)] = _Item(f"\\\\{h.name}\\{pr.name}", h.name, _values(pr, PRINTER_FIELDS))
        for db in h.databases:
            out["database"][(h.name, db.name)] = _Item(db.name, h.name, _values(db, DATABASE_FIELDS))
    return out


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


# --------------------------------------------------------------------------- what the hosts derive


def peer_accounts(n: Network | None) -> dict[str, frozenset[str]]:
    """Workgroup peer -> the users it has an account for: the roles' own planner decides
    (playbooks/filter_plugins/samba_shares.py samba_peer_plan: the users a share or printer
    of the peer names, directly or through a group, or every user with homes)."""
    if n is None or n.mode is not Mode.WORKGROUP:
        return {}
    group = inventory.global_vars(n)
    out: dict[str, frozenset[str]] = {}
    for h in n.hosts:
        if h.role is not Role.PEER:
            continue
        mine = inventory.host_vars(h)
        try:
            plan = shares.planner().samba_peer_plan(
                mine.get("provision_shares", []),
                mine.get("provision_printers", []),
                group.get("provision_users", []),
                group.get("provision_groups", []),
                mine.get("provision_homes", False),
            )
        except AnsibleError:  # a value the planner refuses (the apply would fail there anyway)
            continue
        out[h.name] = frozenset(plan["user_names"])
    return out


def pg_roles(n: Network | None) -> dict[str, frozenset[str]]:
    """Database server -> the PostgreSQL roles provision keeps there: the users and groups its
    databases name, and the members of those groups (playbooks/roles/database_server/vars/main.yml,
    playbooks/library/provision_pg_access.py parse_request)."""
    if n is None:
        return {}
    groups = {g.name for g in n.groups}
    out: dict[str, frozenset[str]] = {}
    for h in n.hosts:
        if not h.databases:
            continue
        named_groups = {g for db in h.databases for g in (*db.read_write_groups, *db.read_only_groups)}
        named_groups |= {db.owner for db in h.databases if db.owner in groups}
        users = {db.owner for db in h.databases if db.owner not in groups}
        users |= {u for db in h.databases for u in (*db.read_write_users, *db.read_only_users)}
        users |= {u.name for u in n.users if set(u.groups) & named_groups}
        out[h.name] = frozenset(users | named_groups)
    return out


def prune_limit(total: int) -> int:
    """How many things that left the inventory the first DC deletes in one run
    (playbooks/library/provision_ad_directory.py prune_limit)."""
    return min(PRUNE_MAX, max(1, total * PRUNE_MAX_PERCENT // 100))


def _names_role(value: Any, role: str) -> bool:
    """Whether a field value (a name or a list of names) names the role."""
    return value == role or (isinstance(value, list) and role in value)


def _names(names: Iterable[str]) -> str:
    return ", ".join(sorted(names, key=_natural))


# --------------------------------------------------------------------------- the diff


class _Diff:
    def __init__(self, before: Network | None, after: Network) -> None:
        self.before, self.after = before, after
        self.b, self.a = items(before), items(after)
        self.out: list[Change] = []
        self.gone_hosts = set(self.b["host"]) - set(self.a["host"])

    @cached_property
    def peers_before(self) -> dict[str, frozenset[str]]:
        return peer_accounts(self.before)

    # ------------------------------------------------------------ generic

    def run(self) -> Changes:
        for kind in KINDS:
            self.compare(kind)
        self.peer_account_notes()
        self.pg_role_notes()
        self.prune_notes()
        return Changes(tuple(sorted(self.out, key=order_key)))

    def compare(self, kind: str) -> None:
        before, after = self.b[kind], self.a[kind]
        note: Callable[[str, Any, _Item | None, _Item | None, tuple[FieldChange, ...]], str] = getattr(
            self, "note_" + kind.replace(" ", "_")
        )
        for key, item in after.items():
            old = before.get(key)
            if old is None:
                fields = tuple(FieldChange(k, None, v) for k, v in item.values.items() if not _empty(v))
                self.out.append(Change(ADD, kind, item.name, item.host, fields, note(ADD, key, None, item, fields)))
                continue
            names = list(dict.fromkeys([*old.values, *item.values]))
            fields = tuple(
                FieldChange(k, old.values.get(k), item.values.get(k))
                for k in names
                if old.values.get(k) != item.values.get(k)
            )
            if fields:
                self.out.append(
                    Change(CHANGE, kind, item.name, item.host, fields, note(CHANGE, key, old, item, fields))
                )
        for key, old in before.items():
            if key in after:
                continue
            if kind in ("share", "printer", "database") and old.host in self.gone_hosts:
                continue  # carried away by its host (see the host's note)
            fields = tuple(FieldChange(k, v, None) for k, v in old.values.items() if not _empty(v))
            self.out.append(Change(REMOVE, kind, old.name, old.host, fields, note(REMOVE, key, old, None, fields)))

    def append_note(self, index: int, text: str) -> None:
        c = self.out[index]
        self.out[index] = replace(c, note=f"{c.note}; {text}" if c.note else text)

    def find(
        self, kinds: tuple[str, ...], host: str | None = None, name: str | None = None, action: str | None = None
    ) -> list[int]:
        """Indexes of the changes of these kinds (and this host, name, action when given)."""
        return [
            i
            for i, c in enumerate(self.out)
            if c.kind in kinds
            and (host is None or c.host == host)
            and (name is None or c.name == name)
            and (action is None or c.action == action)
        ]

    @property
    def domain(self) -> bool:
        return self.after.mode is Mode.DOMAIN

    def was_domain(self) -> bool:
        return self.before is not None and self.before.mode is Mode.DOMAIN

    # ------------------------------------------------------------ notes per kind

    def note_network(self, action: str, key: Any, old: _Item | None, new: _Item | None, fields: Any) -> str:
        if action == CHANGE and any(f.name == "mode" for f in fields):
            # No role converts a network: peers.yml and the domain plays configure their own mode only.
            return (
                "the mode changes: provision does not convert a network in place; "
                "what the old mode set up on the hosts is not removed"
            )
        return ""

    def note_connection(self, action: str, key: Any, old: _Item | None, new: _Item | None, fields: Any) -> str:
        if action != CHANGE:
            return ""
        text = "how provision reaches the hosts"
        if any(f.name == "port" for f in fields):
            # provision/inventory.py: ansible_port = ssh.port; roles/base/defaults/main.yml:
            # base_firewall_ssh_port is ansible_port. No role writes sshd's Port.
            text += "; the hosts' firewalls then allow SSH on the new port (sshd's own port is not changed)"
        return text

    def note_domain(self, action: str, key: Any, old: _Item | None, new: _Item | None, fields: Any) -> str:
        if action == REMOVE:
            return "the domain is not taken down: its DCs are not demoted and its directory stays"
        if action != CHANGE:
            return ""
        notes = []
        changed = {f.name: f for f in fields}
        if "realm" in changed:
            # playbooks/roles/samba_dc/tasks/state.yml: a DC database of another realm stops the play.
            notes.append(
                "cannot change an existing domain's realm: the DCs refuse a directory of another realm, "
                "so this apply would fail"
            )
        if "netbios" in changed:
            notes.append(
                "cannot change an existing domain's NetBIOS name: the directory keeps the one it was "
                "provisioned with, and the hosts' configuration would no longer match it"
            )
        if "admin_password" in changed:
            f = changed["admin_password"]
            # playbooks/roles/samba_dc/tasks/create.yml: the password is set by the provisioning only.
            notes.append(
                f"password reference changed ({f.before} → {f.after}); the Administrator's password is only "
                "set when the domain is provisioned: the new reference must hold the current one"
            )
        if "mail_domain" in changed:
            notes.append("mail addresses move to the new mail domain; mailboxes keep their mail")
        return "; ".join(notes)

    def note_rollout(self, action: str, key: Any, old: _Item | None, new: _Item | None, fields: Any) -> str:
        return "touches no host of the network: only how the apply runs"

    def note_policy(self, action: str, key: Any, old: _Item | None, new: _Item | None, fields: Any) -> str:
        if action != CHANGE:
            return ""
        changed = {f.name: f for f in fields}
        if key == "password":
            if not self.domain:
                # playbooks/README.md (samba_workgroup): provision_password_policy is not applied yet.
                return "workgroup peers do not apply the password policy yet"
            return "set in the domain by the first DC"
        if key == "smb" and "signing" in changed and self.domain:
            # provision/inventory.py global_vars: provision_smb_signing is "mandatory" in a domain.
            return "domain hosts always require signing, whatever the spec says"
        if key == "firewall" and "enabled" in changed:
            if changed["enabled"].after is False:
                # playbooks/roles/base/templates/nftables.conf.j2: the table is deleted, none defined.
                return "the provision firewall table is removed from every host (other nftables tables stay)"
            return "every host gets the provision firewall"
        if key == "unattended upgrades" and changed["enabled"].after is False:
            # playbooks/roles/base/templates/20auto-upgrades.j2 writes "0"; the package is not removed.
            return "automatic updates are switched off (the package stays installed)"
        if key == "backup":
            return "the controller's backups only, no host changes (a new schedule: provision backup --schedule)"
        if key in ("access rules", "sudo rules") and "source" in changed and changed["source"].after == "defaults":
            return "back to provision's default rules"
        return ""

    def note_group(self, action: str, key: Any, old: _Item | None, new: _Item | None, fields: Any) -> str:
        if action != REMOVE:
            return ""
        if self.was_domain():
            # playbooks/library/provision_ad_directory.py removals(): only marked groups are deleted.
            return "deleted from the directory if provision created it (one that existed before is left in place)"
        # playbooks/roles/samba_workgroup/tasks/remove.yml: groups are never deleted.
        return f"{UNMANAGED}: peers never delete groups"

    def note_user(self, action: str, key: Any, old: _Item | None, new: _Item | None, fields: Any) -> str:
        notes = []
        if action == REMOVE:
            if self.was_domain():
                # playbooks/library/provision_ad_directory.py removals(): only users carrying the
                # marker (created by provision) are deleted; nothing removes home directories.
                notes.append(
                    "deleted from the directory if provision created it (one that existed before is left in "
                    "place); home directories on the members are kept"
                )
            else:
                peers = [h for h, users in self.peers_before.items() if key in users]
                # playbooks/roles/samba_workgroup/tasks/remove.yml: pdbedit -x, userdel without
                # remove (home and mail spool kept), only accounts the role created.
                if peers:
                    notes.append(
                        f"on {_names(peers)}: its Samba account is removed, and its local account if provision "
                        "created it (the home directory is kept)"
                    )
                else:
                    notes.append("no peer had an account for it: nothing changes on the hosts")
        if action == CHANGE:
            for f in fields:
                if f.name != "password":
                    continue
                text = f"password reference changed ({f.before} → {f.after})"
                if self.domain:
                    # provision_ad_directory.py users(): a password is set when the user is created
                    # (or with domain_directory_enforce_passwords, off by default).
                    text += "; a domain password is only set when the account is created: the account keeps its own"
                else:
                    # playbooks/library/provision_samba_passdb.py: NT hashes compared, set where they differ.
                    text += "; peers set the Samba password from it where it differs"
                notes.append(text)
        return "; ".join(notes)

    def note_mailbox(self, action: str, key: Any, old: _Item | None, new: _Item | None, fields: Any) -> str:
        servers = _names(h.name for h in _mail_servers(self.before)) if self.before else ""
        if action == REMOVE:
            # playbooks/roles/mail_server/tasks/steps.yml: the mailbox directory is never emptied;
            # Postfix and Dovecot look mailboxes up in the directory.
            kept = f"the mail in {MAILDIR}/{key} on {servers} is kept"
            if key in self.a["user"]:
                return f"no mail server is left in the spec: the address stops receiving mail; {kept}"
            return f"the address stops receiving mail (the user leaves the directory); {kept}"
        if action == CHANGE:
            return f"the mailbox keeps its mail ({MAILDIR}/{key}: by user name)"
        return ""

    def note_mail_list(self, action: str, key: Any, old: _Item | None, new: _Item | None, fields: Any) -> str:
        if action != REMOVE:
            return ""
        if key in self.a["group"] and self.a["mailbox"]:
            # provision_ad_directory.py groups(): an empty mail removes the group's mail attribute.
            return "the group's address is removed from the directory: mail to it is no longer delivered"
        return "mail to it is no longer delivered; the members' mailboxes are untouched"

    def note_host(self, action: str, key: Any, old: _Item | None, new: _Item | None, fields: Any) -> str:
        if action == REMOVE:
            assert self.before is not None and old is not None
            host = self.before.host(key)
            carried = [
                f"{len(things)} {what}"
                for what, things in (
                    ("share(s)", host.shares),
                    ("printer(s)", host.printers),
                    ("database(s)", host.databases),
                )
                if things
            ]
            stays = f" (its {', '.join(carried)} too)" if carried else ""
            if host.role is Role.DOMAIN_CONTROLLER:
                # playbooks/unjoin.yml refuses DCs; provision_ad_directory.py prunes the DNS names of
                # hosts that left the inventory, but a running DC registers its own again.
                return (
                    "a domain controller is not demoted by leaving the spec: demote it first "
                    "(samba-tool domain demote); its DNS records are deleted, but a DC that still runs "
                    "registers them again"
                )
            if self.was_domain():
                # playbooks/README.md (unjoin.yml): a host removed from the spec loses its account and
                # records at the next apply without being contacted.
                return (
                    f"not contacted: its configuration and data stay{stays}; its computer account and DNS "
                    f"records are removed (listed separately); `provision apply --unjoin {key}` before "
                    "removing it leaves the domain cleanly"
                )
            return f"provision no longer manages it and does not contact it: everything on it stays as it is{stays}"
        if action != CHANGE:
            return ""
        notes = []
        changed = {f.name: f for f in fields}
        if "role" in changed:
            f = changed["role"]
            text = (
                f"the host changes role ({f.before} → {f.after}): it is configured for the new role; "
                "what the old role set up is not removed"
            )
            if f.before == Role.DOMAIN_CONTROLLER.value:
                text += " (a domain controller is not demoted)"
            notes.append(text)
        if "address" in changed and self.domain:
            notes.append("its DNS records change (listed separately)")
        if "requirements" in changed:
            # provision/requirements.py: the minimums preflight judges the machine against.
            notes.append("nothing changes on the host: only the machine size preflight expects")
        if "homes" in changed and changed["homes"].after is False:
            # The smb.conf templates render [homes] from provision_homes; nothing deletes homes.
            notes.append("the [homes] share is no longer offered; home directories are kept")
        return "; ".join(notes)

    def note_computer_account(self, action: str, key: Any, old: _Item | None, new: _Item | None, fields: Any) -> str:
        if action == ADD:
            return f"the host joins the domain into {COMPUTER_OU}"
        if action == REMOVE:
            # playbooks/library/provision_ad_directory.py computers(): accounts in the computer OU
            # whose host left the inventory are deleted, not in a partial (--limit) run.
            return (
                f"deleted from {COMPUTER_OU} by the first DC (not in a --limit run); the host itself is not contacted"
            )
        return ""

    def note_dns_record(self, action: str, key: Any, old: _Item | None, new: _Item | None, fields: Any) -> str:
        rtype = key[0]
        if rtype == "MX":
            # provision_ad_directory.py mx(): only MX records this module added are deleted.
            return "the first DC deletes the MX record it added" if action == REMOVE else ""
        if action == REMOVE:
            # provision_ad_directory.py dns(): names remembered in the first DC's state file that
            # left the inventory lose their A and PTR records (not in a --limit run).
            return "its A and PTR records are deleted by the first DC (not in a --limit run)"
        if action == CHANGE:
            # provision_ad_directory.py dns(): every host has exactly its spec address.
            return "the first DC replaces the A and PTR records of the old address"
        return ""

    def note_share(self, action: str, key: Any, old: _Item | None, new: _Item | None, fields: Any) -> str:
        if action == REMOVE:
            assert old is not None
            # smb.conf is rendered from the inventory alone; directories are never removed:
            # playbooks/roles/samba_workgroup/tasks/remove.yml, roles/domain_member/tasks/shares.yml.
            return f"its section leaves smb.conf; the folder {old.values['path']} and its files are kept"
        if action == CHANGE:
            changed = {f.name: f for f in fields}
            if "path" in changed:
                return (
                    f"the share moves to a new folder {changed['path'].after}; the old folder "
                    f"{changed['path'].before} and its files stay where they are (nothing is moved)"
                )
        return ""

    def note_printer(self, action: str, key: Any, old: _Item | None, new: _Item | None, fields: Any) -> str:
        network = self.after if action != REMOVE else self.before
        if action == REMOVE and network is not None and network.mode is Mode.DOMAIN:
            # playbooks/roles/domain_member/tasks/shares.yml: queues are made, never deleted.
            return "its section leaves smb.conf; its CUPS queue is kept (unshared)"
        if action == REMOVE:
            # playbooks/roles/samba_workgroup/tasks/remove.yml: lpadmin -x (provision_print_queues).
            return "its CUPS queue is deleted and its section leaves smb.conf"
        return ""

    def note_database(self, action: str, key: Any, old: _Item | None, new: _Item | None, fields: Any) -> str:
        if action == REMOVE:
            # playbooks/library/provision_pg_access.py: a database no longer requested is never dropped
            # (reported as unmanaged); roles/database_server/templates/pg_hba.conf.j2 admits
            # network sign-on to the spec's databases only.
            return (
                f"{UNMANAGED}: never dropped, its data kept; pg_hba.conf no longer lets anyone sign on to it "
                "over the network"
            )
        return ""

    # ------------------------------------------------------------ consequences told in notes

    def peer_account_notes(self) -> None:
        """Accounts a peer loses because no share, printer or homes of it needs them any more
        (playbooks/roles/samba_workgroup/tasks/remove.yml removes them; home kept)."""
        if self.before is None or self.before.mode is not Mode.WORKGROUP or self.domain:
            return
        before, after = self.peers_before, peer_accounts(self.after)
        users = set(self.a["user"])
        lost_by_user: dict[str, list[str]] = {}
        for host, had in before.items():
            if host not in after:
                continue
            lost = sorted((had - after[host]) & users)
            if not lost:
                continue
            causes = self.find(("share", "printer", "host"), host=host)
            if causes:
                needs = "needs" if len(lost) == 1 else "need"
                self.append_note(
                    causes[0],
                    f"{_names(lost)} no longer {needs} an account on {host}: the Samba account is removed there, "
                    "and the local account if provision created it (the home directory is kept)",
                )
            else:
                for u in lost:
                    lost_by_user.setdefault(u, []).append(host)
        for user, hosts in lost_by_user.items():
            text = (
                f"no longer needs an account on {_names(hosts)}: its Samba account is removed there, "
                "and its local account if provision created it (the home directory is kept)"
            )
            found = self.find(("user",), name=user)
            if found:
                self.append_note(found[0], text)
            else:
                self.out.append(Change(CHANGE, "user", user, None, (), text))

    def pg_role_notes(self) -> None:
        """PostgreSQL roles no database of a server names any more: dropped there
        (playbooks/library/provision_pg_access.py: REASSIGN OWNED to postgres, DROP OWNED, DROP ROLE)."""
        before, after = pg_roles(self.before), pg_roles(self.after)
        for host, had in before.items():
            if host in self.gone_hosts:
                continue
            for role in sorted(had - after.get(host, frozenset())):
                text = f"its PostgreSQL role on {host} is dropped (what it owned there goes to postgres; data kept)"
                found = self.find(("user", "group"), name=role)
                if found:
                    self.append_note(found[0], text)
                    continue
                named = [
                    i
                    for i in self.find(("database",), host=host)
                    if any(_names_role(f.before, role) for f in self.out[i].fields)
                ]
                if named:
                    self.append_note(
                        named[0],
                        f"the PostgreSQL role {role} is dropped on {host}, no database names it any more "
                        "(what it owned goes to postgres; data kept)",
                    )

    def prune_notes(self) -> None:
        """The first DC deletes at most prune_limit() computer accounts or DNS names in one run;
        beyond that it deletes none and warns (provision_ad_directory.py prune_allowed)."""
        if self.before is None or not self.was_domain():
            return
        accounts = self.find(("computer account",), action=REMOVE)
        total = len(self.b["computer account"])
        if len(accounts) > prune_limit(total):
            for i in accounts:
                self.append_note(
                    i,
                    f"held back: {len(accounts)} of {total} computer accounts leave at once, more than the first "
                    f"DC deletes in one run ({prune_limit(total)}); it deletes none and warns",
                )
        names = [i for i in self.find(("dns record",), action=REMOVE) if " A " in self.out[i].name]
        total = len(set(self.b["host"]) | set(self.a["host"]))
        if len(names) > prune_limit(total):
            for i in names:
                self.append_note(
                    i,
                    f"held back: {len(names)} of {total} DNS names leave at once, more than the first DC "
                    f"deletes in one run ({prune_limit(total)}); it deletes none and warns",
                )


def diff(before: Network | None, after: Network) -> Changes:
    """What applying ``after`` adds, changes and removes, given the model last applied (None: none)."""
    return _Diff(before, after).run()


__all__ = [
    "ADD",
    "CHANGE",
    "KINDS",
    "RECORD_VERSION",
    "REMOVE",
    "UNMANAGED",
    "Change",
    "Changes",
    "FieldChange",
    "diff",
    "summary_line",
]
