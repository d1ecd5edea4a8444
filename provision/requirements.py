"""What each host needs of its machine: memory, CPUs and free disk, by role.

Servers run the network, so a machine too small for its role must be caught before a
rollout, not by an out-of-memory kill halfway through a Samba provision. The figures
below are each role's defaults; hosts[].requirements in the spec replaces a minimum
(never the recommendation, which stays the role's unless the minimum is higher).
preflight measures every host and judges it against ``for_host``; plan and show print
``lines`` (text) or ``network_dict`` (JSON).

Units are binary: MB is MiB (as /proc/meminfo's kB are KiB), GB is GiB (df -k).
"""

from __future__ import annotations

import math
import posixpath
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from provision.model import Host, Network, Role

# The kernel and firmware keep part of the installed memory: a machine with 2 GiB shows
# about 1.9 GiB in MemTotal. Preflight accepts this much below a memory figure.
MEMORY_TOLERANCE = 0.9


@dataclass(frozen=True, slots=True)
class Need:
    """A minimum (below it preflight fails) and a recommendation (below it, a warning)."""

    minimum: int
    recommended: int

    def __post_init__(self) -> None:
        if not 0 < self.minimum <= self.recommended:
            raise ValueError(f"a need is 0 < minimum <= recommended, not {self.minimum}/{self.recommended}")


@dataclass(frozen=True, slots=True)
class DiskNeed:
    """Free space (GiB) a path the host fills needs; ``what`` says what fills it."""

    path: str
    gb: Need
    what: str = ""


@dataclass(frozen=True, slots=True)
class Requirements:
    """One role's (or host's) figures: memory in MiB, CPUs, free disk per path."""

    memory_mb: Need
    cpus: Need
    disk: tuple[DiskNeed, ...] = ()


@dataclass(frozen=True, slots=True)
class HostRequirements:
    """What one host needs, after its role's defaults, its shares and the spec's override."""

    host: str
    role: Role
    memory_mb: Need
    cpus: Need
    disk: tuple[DiskNeed, ...]
    overridden: tuple[str, ...] = ()  # hosts[].requirements keys the spec set

    @property
    def figures(self) -> tuple[Need, Need, tuple[DiskNeed, ...]]:
        """Everything but the host's name: hosts with equal figures print as one line."""
        return self.memory_mb, self.cpus, self.disk


_PACKAGES = DiskNeed("/usr", Need(1, 2), "packages the role installs")
# Shares hold the users' files: only the operator knows how much; 1 GiB lets a share be
# created and used at all, the recommendation is room for a small team's documents.
_SHARE = {Role.FILE_SERVER: Need(1, 10), Role.PEER: Need(1, 5)}

DEFAULTS: dict[Role, Requirements] = {
    # Samba AD (LDB databases, KDC, DNS, replication) is the heaviest: Samba's wiki asks
    # 2 GB for a small domain and more as it grows. sam.ldb, sysvol and the tdb files live
    # in /var/lib/samba and grow with objects; 10 GiB leaves room for backups beside them.
    # One core runs it; a second keeps DNS and Kerberos answering during a replication.
    Role.DOMAIN_CONTROLLER: Requirements(
        memory_mb=Need(2048, 4096),
        cpus=Need(1, 2),
        disk=(_PACKAGES, DiskNeed("/var/lib/samba", Need(2, 10), "the directory database, sysvol, tdb files")),
    ),
    # smbd forks a process per client (10-30 MB each) and winbind caches the directory;
    # the shares' own paths are added per host (see _SHARE).
    Role.FILE_SERVER: Requirements(
        memory_mb=Need(1024, 2048),
        cpus=Need(1, 2),
        disk=(_PACKAGES, DiskNeed("/var/lib/samba", Need(1, 2), "winbind and share tdb files")),
    ),
    # Postfix and Dovecot are light; the mailboxes (mail_server_mail_dir in
    # playbooks/roles/mail_server) are what fills the disk. Postfix's queue also refuses
    # mail unless 1.5 times the largest message is free (added per host).
    Role.MAIL_SERVER: Requirements(
        memory_mb=Need(1024, 2048),
        cpus=Need(1, 2),
        disk=(_PACKAGES, DiskNeed("/var/vmail", Need(2, 20), "the mailboxes (Maildir per user)")),
    ),
    # PostgreSQL 15 with Debian's settings runs in 1 GiB; 4 GiB leaves room for its
    # shared buffers and the page cache. The cluster lives in /var/lib/postgresql.
    Role.DATABASE_SERVER: Requirements(
        memory_mb=Need(1024, 4096),
        cpus=Need(1, 2),
        disk=(_PACKAGES, DiskNeed("/var/lib/postgresql", Need(2, 20), "the database cluster")),
    ),
    # A domain member (SSSD or winbind, Kerberos): small; users' homes are created on
    # first login under /home.
    Role.WORKSTATION: Requirements(
        memory_mb=Need(512, 1024),
        cpus=Need(1, 1),
        disk=(_PACKAGES, DiskNeed("/home", Need(1, 5), "users' home directories")),
    ),
    # A standalone Samba server of a workgroup: smbd, its passdb; share paths per host.
    Role.PEER: Requirements(
        memory_mb=Need(512, 1024),
        cpus=Need(1, 1),
        disk=(_PACKAGES, DiskNeed("/var/lib/samba", Need(1, 1), "the passdb and tdb files")),
    ),
}


def _with_minimum(need: Need, minimum: int | None) -> Need:
    if minimum is None:
        return need
    return Need(minimum, max(minimum, need.recommended))


def _postfix_queue(host: Host) -> DiskNeed:
    """smtpd refuses mail unless 1.5 times message_size_limit is free in the queue."""
    largest = host.mail.max_message_mb if host.mail is not None else 25
    gb = max(1, math.ceil(1.5 * largest / 1024))
    return DiskNeed("/var/spool/postfix", Need(gb, max(2, gb)), "Postfix's mail queue")


def for_host(network: Network, host: Host) -> HostRequirements:
    """The role's figures, plus the host's share paths, with the spec's override applied.

    Shares (hosts[].shares and the network-wide ones placed on this host are both in
    ``host.shares``) and the [homes] share add their paths; a path listed twice counts once.
    ``network`` is the spec the host belongs to; the host already carries what it needs of it.
    """
    base = DEFAULTS[host.role]
    disk: dict[str, DiskNeed] = {d.path: d for d in base.disk}

    def add(need: DiskNeed) -> None:
        path = posixpath.normpath(need.path)
        if path not in disk:
            disk[path] = DiskNeed(path, need.gb, need.what)

    if host.role is Role.MAIL_SERVER:
        add(_postfix_queue(host))
    share_need = _SHARE.get(host.role)
    if share_need is not None:
        for share in host.shares:
            add(DiskNeed(share.path, share_need, f"share {share.name}"))
        if host.homes:
            add(DiskNeed("/home", share_need, "the [homes] share"))
    over = host.requirements
    overridden: tuple[str, ...] = ()
    memory, cpus = base.memory_mb, base.cpus
    needs = tuple(disk.values())
    if over is not None:
        overridden = tuple(k for k in ("memory_mb", "cpus", "disk_gb") if getattr(over, k) is not None)
        memory = _with_minimum(memory, over.memory_mb)
        cpus = _with_minimum(cpus, over.cpus)
        needs = tuple(DiskNeed(d.path, _with_minimum(d.gb, over.disk_gb), d.what) for d in needs)
    return HostRequirements(host.name, host.role, memory, cpus, needs, overridden)


def measured_paths(req: HostRequirements) -> tuple[str, ...]:
    """The paths preflight measures, in the order it reports them."""
    return tuple(d.path for d in req.disk)


def describe(req: HostRequirements | Requirements) -> str:
    """One line: 'memory ≥ 2048 MB (4096 recommended), CPUs ≥ 1 (2), /var/lib/samba ≥ 2 GB free (10)'."""
    m, c = req.memory_mb, req.cpus
    parts = [f"memory ≥ {m.minimum} MB ({m.recommended} recommended)", f"CPUs ≥ {c.minimum} ({c.recommended})"]
    parts += [f"{d.path} ≥ {d.gb.minimum} GB free ({d.gb.recommended})" for d in req.disk]
    text = ", ".join(parts)
    overridden = getattr(req, "overridden", ())
    if overridden:
        text += f" [spec sets {', '.join(overridden)}]"
    return text


def _who(hosts: list[Host]) -> str:
    """Host names, a range by its spec name: 'dc1, dc2' or 'ws[001:250]'."""
    names: list[str] = []
    for h in hosts:
        name = h.range_name or h.name
        if name not in names:
            names.append(name)
    if len(names) > 6:
        return f"{', '.join(names[:5])} and {len(names) - 5} more"
    return ", ".join(names)


def lines(network: Network, hosts: Iterable[Host] | None = None) -> list[tuple[str, str, str]]:
    """(hosts, role, describe()) per group of hosts with the same role and figures, in spec order.

    A range of 250 workstations is one line, so plan and show stay short on big fleets.
    """
    groups: dict[tuple[Role, Any, tuple[str, ...]], list[Host]] = {}
    texts: dict[tuple[Role, Any, tuple[str, ...]], str] = {}
    for h in network.hosts if hosts is None else hosts:
        req = for_host(network, h)
        key = (h.role, req.figures, req.overridden)
        groups.setdefault(key, []).append(h)
        texts.setdefault(key, describe(req))
    return [(_who(members), key[0].value, texts[key]) for key, members in groups.items()]


def to_dict(req: HostRequirements) -> dict[str, Any]:
    """JSON form: {"memory_mb": {"minimum", "recommended"}, "cpus": {...}, "disk": [{"path", ...}]}."""
    return {
        "role": req.role.value,
        "memory_mb": {"minimum": req.memory_mb.minimum, "recommended": req.memory_mb.recommended},
        "cpus": {"minimum": req.cpus.minimum, "recommended": req.cpus.recommended},
        "disk": [
            {"path": d.path, "minimum_gb": d.gb.minimum, "recommended_gb": d.gb.recommended, "for": d.what}
            for d in req.disk
        ],
        "overridden": list(req.overridden),
    }


def network_dict(network: Network, hosts: Iterable[Host] | None = None) -> dict[str, dict[str, Any]]:
    """Host name -> ``to_dict`` of its requirements, for plan/show --format json."""
    return {h.name: to_dict(for_host(network, h)) for h in (network.hosts if hosts is None else hosts)}
