"""The lab's state file, /var/lib/provision/lab/state.json.

It records what ``up`` built and started so ``status``, ``down`` and ``ssh``
need no spec.  It is a hint, never the truth: liveness always comes from the
cgroups and mounts, so a stale or damaged file (kill -9 mid-write cannot
produce one, writes are atomic) only costs a cleanup.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field

from .paths import STATE_FILE
from .util import atomic_write

VERSION = 1


@dataclass(slots=True)
class HostState:
    name: str
    address: str
    mac: str
    golden: str  # id of the golden image its upper layer was made on
    runner: str
    started_at: float = 0.0
    boot_seconds: float | None = None


@dataclass(slots=True)
class LabState:
    runner: str = "nspawn"
    fallback_reason: str = ""
    repo_pid: int | None = None
    spec: str = ""
    hosts: dict[str, HostState] = field(default_factory=dict)
    updated: float = 0.0
    # Kernel limits the lab raised (see limits): /proc/sys path -> [original, value set].
    raised: dict[str, list[int]] = field(default_factory=dict)


def load() -> LabState:
    """Read the state; a missing or unreadable file is an empty lab."""
    try:
        raw = json.loads(STATE_FILE.read_text())
    except (OSError, ValueError):
        return LabState()
    if not isinstance(raw, dict) or raw.get("version") != VERSION:
        return LabState()
    try:
        hosts = {name: HostState(**h) for name, h in raw.get("hosts", {}).items()}
        return LabState(
            runner=str(raw.get("runner", "nspawn")),
            fallback_reason=str(raw.get("fallback_reason", "")),
            repo_pid=raw.get("repo_pid"),
            spec=str(raw.get("spec", "")),
            hosts=hosts,
            updated=float(raw.get("updated", 0.0)),
            raised={str(k): [int(v[0]), int(v[1])] for k, v in (raw.get("raised") or {}).items()},
        )
    except (TypeError, ValueError):
        return LabState()


def save(state: LabState) -> None:
    state.updated = time.time()
    data = {"version": VERSION, **asdict(state)}
    atomic_write(STATE_FILE, json.dumps(data, indent=2, sort_keys=True) + "\n")


def remove() -> None:
    STATE_FILE.unlink(missing_ok=True)
