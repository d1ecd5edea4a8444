"""A workgroup grown into a domain (issue 20): what the migration does to every user, group, share and host.

``provision grow`` writes the domain spec; ``provision plan NEW-SPEC --from-workgroup SPEC`` shows,
before anything happens, the fate of each object of the workgroup: users and groups move into the
directory (users keep their passwords: the NT hashes of the peers' password databases are carried,
the newest where peers disagree), each share stays where it is or moves to the file server that
now carries it (owners mapped from the peers' local IDs to the domain's by name, ACLs rewritten for
the domain's groups), each peer joins the domain, and the peers' local accounts are retired
(disabled, never deleted; homes kept). Nothing of the workgroup is deleted.

Only the plan is built here; the migration run itself (``apply --from-workgroup``) is not built yet.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from provision import changes
from provision.errors import EXIT_INVALID_SPEC, ProvisionError
from provision.model import Host, Mode, Network, Role


class MigrationError(ProvisionError):
    """The two specs are not a workgroup and the domain grown from it."""

    exit_code = EXIT_INVALID_SPEC


@dataclass(frozen=True)
class Step:
    kind: str  # user, group, share, printer, host
    name: str
    where: str  # host(s), or "directory"
    action: str


@dataclass(frozen=True)
class Migration:
    workgroup: str
    domain: str
    realm: str
    steps: tuple[Step, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "workgroup": self.workgroup,
            "domain": self.domain,
            "realm": self.realm,
            "steps": [{"kind": s.kind, "name": s.name, "where": s.where, "action": s.action} for s in self.steps],
        }

    def text(self) -> str:
        from provision import report

        rows = [(s.kind, s.name, s.where, s.action) for s in self.steps]
        head = f"migration of workgroup '{self.workgroup}' into the domain {self.realm} ('{self.domain}'):"
        tail = "nothing of the workgroup is deleted: local accounts are disabled, homes and files stay"
        return "\n".join([head, report.table(("kind", "name", "where", "what happens"), rows), tail])


def _names(items: list[str] | tuple[str, ...] | set[str] | frozenset[str]) -> str:
    return ", ".join(sorted(items)) or "-"


def _share_homes(domain: Network) -> dict[str, Host]:
    """Share name -> the domain host that carries it."""
    return {s.name.lower(): h for h in domain.hosts for s in h.shares}


def plan(workgroup: Network, domain: Network) -> Migration:
    """What migrating ``workgroup`` into ``domain`` does, object by object."""
    if workgroup.mode is not Mode.WORKGROUP:
        raise MigrationError(f"--from-workgroup names a {workgroup.mode.value} spec, not a workgroup")
    if domain.mode is not Mode.DOMAIN or domain.domain is None:
        raise MigrationError("the spec to migrate into is not a domain spec (provision grow writes one)")
    peers = [h for h in workgroup.hosts if h.role is Role.PEER]
    missing = [p.name for p in peers if p.name not in {h.name for h in domain.hosts}]
    if missing:
        raise MigrationError(
            f"peer(s) {', '.join(missing)} of the workgroup are not hosts of the domain spec: "
            "every peer must stay (as a workstation or a file server); remove it from the workgroup first"
        )
    accounts = changes.peer_accounts(workgroup)
    holders: dict[str, set[str]] = {}
    for peer_name, names in accounts.items():
        for name in names:
            holders.setdefault(name, set()).add(peer_name)
    steps: list[Step] = []
    dom_users = {u.name for u in domain.users}
    for u in workgroup.users:
        held = holders.get(u.name, set())
        if u.name not in dom_users:
            steps.append(Step("user", u.name, _names(held), "not in the domain spec: local accounts stay, disabled"))
            continue
        if held:
            how = f"password carried from the Samba database of {_names(held)}"
            how += " (the most recently set where they differ)" if len(held) > 1 else ""
            how += f"; local account retired on {_names(held)} (disabled, home kept)"
        else:
            how = "no peer has an account: created with the spec's password"
        steps.append(Step("user", u.name, "directory", f"directory user; {how}"))
    steps += [
        Step("user", u.name, "directory", "new directory user (the spec's password)")
        for u in domain.users
        if u.name not in {w.name for w in workgroup.users}
    ]
    dom_groups = {g.name for g in domain.groups}
    for g in workgroup.groups:
        action = (
            "directory group, same members" if g.name in dom_groups else "not in the domain spec: local groups stay"
        )
        steps.append(Step("group", g.name, "directory" if g.name in dom_groups else "peers", action))
    carried = _share_homes(domain)
    for peer in peers:
        for s in peer.shares:
            target = carried.get(s.name.lower())
            if target is None:
                action = f"no longer shared; {s.path} stays on {peer.name} as it is"
            elif target.name == peer.name:
                action = f"stays in {s.path}; owners mapped to the domain's users and groups by name, ACLs rewritten"
            else:
                action = (
                    f"copied to {target.name}:{_path(target, s.name)}; owners mapped by name, ACLs rewritten; "
                    f"the copy on {peer.name} stays"
                )
            steps.append(Step("share", s.name, peer.name, action))
        if peer.homes:
            target = next((h for h in domain.hosts if h.homes), None)
            where = (
                "stay"
                if target is not None and target.name == peer.name
                else (f"copied to {target.name}" if target is not None else "no longer shared")
            )
            steps.append(Step("share", "homes", peer.name, f"home directories {where}; owners mapped by name"))
        for p in peer.printers:
            target = next((h for h in domain.hosts if any(q.name == p.name for q in h.printers)), None)
            action = (
                "stays"
                if target is not None and target.name == peer.name
                else (f"moves to {target.name}" if target is not None else "no longer shared")
            )
            steps.append(Step("printer", p.name, peer.name, action))
    for h in domain.hosts:
        before = workgroup.host(h.name) if h.name in {w.name for w in workgroup.hosts} else None
        if before is None:
            steps.append(Step("host", h.name, h.address, f"new {h.role.value.replace('_', ' ')}"))
            continue
        users = accounts.get(h.name, frozenset())
        action = f"peer joins the domain as a {h.role.value.replace('_', ' ')}"
        if h.role is Role.WORKSTATION:
            action += f" ({h.client})"
        action += f"; local accounts {_names(users)} retired" if users else ""
        steps.append(Step("host", h.name, h.address, action))
    return Migration(workgroup.name, domain.name, domain.domain.realm, tuple(steps))


def _path(host: Host, share: str) -> str:
    return next((s.path for s in host.shares if s.name.lower() == share.lower()), "?")
