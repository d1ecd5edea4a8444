"""What an apply would configure, computed from the model without contacting any host."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from provision import policy, requirements
from provision.advise import advise
from provision.changes import Changes, diff
from provision.errors import Problem
from provision.model import Host, Mode, Network, Role


@dataclass(frozen=True)
class Batch:
    """One step of the rollout: hosts configured together (of one stage's roles)."""

    roles: tuple[Role, ...]
    hosts: tuple[str, ...]

    @property
    def role(self) -> str:
        """The stage's roles as one label: 'workstation', 'file_server+mail_server'."""
        return "+".join(r.value for r in self.roles)


@dataclass(frozen=True)
class Plan:
    network: Network
    batches: tuple[Batch, ...]
    advice: tuple[Problem, ...] = field(default=())
    warnings: tuple[Problem, ...] = field(default=())  # the spec's validation warnings
    changes: Changes = field(default_factory=Changes)  # against the last applied model
    recorded: str | None = None  # when that model was applied; None: no apply recorded

    def to_dict(self) -> dict[str, Any]:
        n = self.network
        return {
            "network": n.name,
            "mode": n.mode.value,
            "subnets": list(n.subnets),
            "hosts": len(n.hosts),
            "roles": {role.value: [h.name for h in hosts] for role, hosts in n.hosts_by_role().items()},
            "domain": (
                {
                    "realm": n.domain.realm,
                    "netbios": n.domain.netbios,
                    "dns_domain": n.domain.dns_domain,
                    "dcs": list(n.domain.dcs),
                }
                if n.domain
                else None
            ),
            "workgroup": n.workgroup if n.mode is Mode.WORKGROUP else None,
            "users": [{"name": u.name, "groups": list(u.groups)} for u in n.users],
            "groups": [{"name": g.name, "description": g.description, "mail": g.mail} for g in n.groups],
            "shares": [
                {
                    "host": h.name,
                    "share": s.name,
                    "path": s.path,
                    "read_only": s.read_only,
                    "users": list(s.users),
                    "groups": list(s.groups),
                }
                for h in _share_hosts(n)
                for s in h.shares
            ],
            "printers": [{"host": h.name, "printer": p.name} for h in n.hosts for p in h.printers],
            "mail": mail_summary(n),
            # Peers and winbind members enforce it with their own files, sssd members from the directory.
            "policy": {
                "access": "spec" if n.policies.access is not None else "default",
                "sudo": "spec" if n.policies.sudo is not None else "default",
                "effective": policy.effective(n),
            },
            "databases": [
                {
                    "host": h.name,
                    "database": d.name,
                    "owner": d.owner,
                    "read_write": [*d.read_write_users, *("@" + g for g in d.read_write_groups)],
                    "read_only": [*d.read_only_users, *("@" + g for g in d.read_only_groups)],
                }
                for h in n.hosts
                for d in h.databases
            ],
            "rollout": {
                "batch": n.rollout.batch,
                "max_fail_percent": n.rollout.max_fail_percent,
                "steps": [
                    {"role": b.role, "roles": [r.value for r in b.roles], "hosts": list(b.hosts)} for b in self.batches
                ],
                "execution_nodes": node_slices(n),
            },
            "advice": [{"severity": a.severity, "path": a.path, "message": a.message} for a in self.advice],
            "requirements": requirements.network_dict(n),
            "last_applied": self.recorded,
            "summary": dict(zip(("add", "change", "remove"), self.changes.counts(), strict=True)),
            "changes": self.changes.to_records(),
            "warnings": [
                {"severity": w.severity, "path": w.path, "line": w.line, "message": w.message} for w in self.warnings
            ],
        }


def node_slices(n: Network) -> list[dict[str, Any]]:
    """Which hosts each execution node runs, and how many at once."""
    slices = split(n, n.hosts, len(n.rollout.execution_nodes))[1]
    sliced = sum(len(s) for s in slices)
    return [
        {
            "node": node.name,
            "address": node.address,
            "hosts": [h.name for h in hosts],
            "batch": slice_batch(n.rollout.batch, len(hosts), sliced),
        }
        for node, hosts in zip(n.rollout.execution_nodes, slices, strict=False)
    ]


def mail_summary(n: Network) -> dict[str, Any] | None:
    """Who gets mail where: the mail domain, its servers, mailboxes and lists, and who keeps the MX."""
    servers = [h for h in n.hosts if h.role is Role.MAIL_SERVER]
    if n.domain is None or not servers:
        return None
    d = n.domain
    return {
        "domain": d.mail_domain,
        "servers": [f"{h.name}.{d.dns_domain}" for h in servers],
        "mailboxes": [f"{u.name}@{d.mail_domain}" for u in n.users],
        "lists": {
            f"{g.name}@{d.mail_domain}": [u.name for u in n.users if g.name in u.groups] for g in n.groups if g.mail
        },
        "mx": "added to the domain's DNS"
        if d.mail_in_zone
        else f"outside the domain's zone: publish it in {d.mail_domain}",
        "lookups": {h.name: n.mail_bind_account(h) for h in servers},
    }


def _share_hosts(n: Network) -> list[Host]:
    return [h for h in n.hosts if h.shares]


def batch_size(batch: int | str, total: int) -> int:
    """Hosts per batch: a number, or a percentage of ``total`` (at least 1)."""
    if isinstance(batch, str):
        return max(1, total * int(batch.rstrip("%")) // 100)
    return batch


def slice_batch(batch: int | str, slice_size: int, sliced: int) -> int | str:
    """A slice's share of ``rollout.batch``: the slices run side by side, so a number is split
    between them by size (the DCs see no more hosts at once than without nodes); a percentage
    of each slice is that percentage of them all."""
    if isinstance(batch, str) or sliced <= 0:
        return batch
    return max(1, batch * slice_size // sliced)


# The roles execution nodes run; every other role runs from the controller, first.
SLICED_ROLES = (Role.WORKSTATION, Role.PEER)


def split(network: Network, targets: Sequence[Host], nodes: int) -> tuple[list[Host], list[list[Host]]]:
    """The controller's hosts, and the rest in ``nodes`` slices of near-equal size.

    Slices are runs of the spec's order, so a range of workstations stays together.
    """
    local = [h for h in targets if h.role not in SLICED_ROLES]
    sliced = [h for h in targets if h.role in SLICED_ROLES]
    count = max(1, min(nodes, len(sliced)))
    size, extra = divmod(len(sliced), count)
    slices: list[list[Host]] = []
    start = 0
    for i in range(count):
        end = start + size + (1 if i < extra else 0)
        if end > start:
            slices.append(sliced[start:end])
        start = end
    return local, slices


def rollout_batches(network: Network) -> list[Batch]:
    """DCs one at a time, then each stage of the spec's order in batches.

    A stage's roles share one play, so its batches mix them, in the stage's order.
    """
    by_role = network.hosts_by_role()
    out: list[Batch] = []
    for stage in network.rollout.order:
        hosts = [h.name for role in stage for h in by_role.get(role, [])]
        if not hosts:
            continue
        present = tuple(r for r in stage if by_role.get(r))  # the label names only roles with hosts
        size = 1 if stage == (Role.DOMAIN_CONTROLLER,) else batch_size(network.rollout.batch, len(hosts))
        out.extend(Batch(present, tuple(hosts[i : i + size])) for i in range(0, len(hosts), size))
    return out


def make_plan(
    network: Network,
    warnings: Sequence[Problem] = (),
    before: Network | None = None,
    recorded: str | None = None,
) -> Plan:
    """The plan of ``network``; its changes are against ``before``, the model last applied
    (None: nothing recorded, so everything is an addition)."""
    return Plan(
        network,
        tuple(rollout_batches(network)),
        tuple(advise(network)),
        tuple(warnings),
        diff(before, network),
        recorded,
    )


def _family(name: str) -> str:
    """The part of a name before its number: hosts of one range share it."""
    return name.rstrip("0123456789")


def summarize_names(hosts: Sequence[Host] | Sequence[str], limit: int = 6) -> str:
    """'dc1, dc2', or runs of one family folded: 'lab0001 … lab0600 (600 hosts), staff001 … staff400
    (400 hosts)', so plans stay short for big fleets without folding different ranges into one."""
    names = [h if isinstance(h, str) else h.name for h in hosts]
    if len(names) <= limit:
        return ", ".join(names)
    runs: list[list[str]] = []
    for name in names:
        if runs and _family(runs[-1][-1]) == _family(name) and _family(name) != name:
            runs[-1].append(name)
        else:
            runs.append([name])
    parts = [", ".join(run) if len(run) <= 2 else f"{run[0]} … {run[-1]} ({len(run)} hosts)" for run in runs[:limit]]
    more = sum(len(run) for run in runs[limit:])
    return ", ".join(parts) + (f" and {more} more" if more else "")
