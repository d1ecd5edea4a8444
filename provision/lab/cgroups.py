"""Per-host cgroups on pure cgroup2, hybrid and legacy layouts.

Every lab process (nspawn, its restart loop, the repo server) is started
inside ``lab/...`` so that stopping a host can kill exactly its processes,
even after the tool itself was killed, and so leaks are easy to see.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

CGROUP_FS = Path("/sys/fs/cgroup")


def _mounts() -> dict[str, str]:
    """Mount point -> filesystem type, from /proc/self/mountinfo."""
    out: dict[str, str] = {}
    with Path("/proc/self/mountinfo").open() as fh:
        for line in fh:
            left, _, right = line.partition(" - ")
            fields = left.split()
            out[fields[4]] = right.split()[0]
    return out


def hierarchies() -> list[Path]:
    """The hierarchy roots a lab cgroup must exist in.

    Pure cgroup2: ``/sys/fs/cgroup``.  Hybrid: ``unified`` (cgroup2) and the
    named ``systemd`` v1 hierarchy, both of which a booting systemd inside
    nspawn looks at.  Legacy: the named ``systemd`` hierarchy only.
    """
    mounts = _mounts()
    root = str(CGROUP_FS)
    if mounts.get(root) == "cgroup2":
        return [CGROUP_FS]
    found = []
    if mounts.get(f"{root}/unified") == "cgroup2":
        found.append(CGROUP_FS / "unified")
    if mounts.get(f"{root}/systemd") == "cgroup":
        found.append(CGROUP_FS / "systemd")
    return found


def layout() -> str:
    """'unified', 'hybrid', 'legacy' or 'none', for status output and tests."""
    roots = hierarchies()
    if roots == [CGROUP_FS]:
        return "unified"
    if len(roots) == 2:
        return "hybrid"
    return "legacy" if roots else "none"


def paths(rel: str) -> list[Path]:
    """The directories of cgroup ``rel`` in every hierarchy in use."""
    return [root / rel for root in hierarchies()]


def create(rel: str) -> None:
    """Create cgroup ``rel`` (and parents) in every hierarchy."""
    for path in paths(rel):
        path.mkdir(parents=True, exist_ok=True)


def enter(rel: str) -> None:
    """Move the calling process into ``rel``; used in a child before exec."""
    for path in paths(rel):
        (path / "cgroup.procs").write_text("0")


def pids(rel: str) -> set[int]:
    """Every process in ``rel`` or below it, in any hierarchy."""
    found: set[int] = set()
    for top in paths(rel):
        if not top.is_dir():
            continue
        for dirpath, _dirs, _files in os.walk(top):
            with contextlib.suppress(OSError):
                found.update(int(x) for x in (Path(dirpath) / "cgroup.procs").read_text().split())
    return found


def exists(rel: str) -> bool:
    """True when ``rel`` exists in any hierarchy."""
    return any(p.is_dir() for p in paths(rel))


def kill(rel: str, timeout: float = 10.0) -> bool:
    """SIGKILL everything in ``rel``; True when it is empty afterwards.

    Uses ``cgroup.kill`` where the kernel has it (atomic against forks), and a
    repeated sweep of the pid lists otherwise.
    """
    deadline = time.monotonic() + timeout
    while True:
        for path in paths(rel):
            kill_file = path / "cgroup.kill"
            if kill_file.exists():
                with contextlib.suppress(OSError):
                    kill_file.write_text("1")
        left = pids(rel)
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if not left:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def remove(rel: str, timeout: float = 5.0) -> bool:
    """Remove ``rel`` and its children bottom-up; True when gone everywhere."""
    deadline = time.monotonic() + timeout
    while True:
        busy = False
        for top in paths(rel):
            if not top.is_dir():
                continue
            for dirpath, _dirs, _files in os.walk(top, topdown=False):
                try:
                    Path(dirpath).rmdir()
                except FileNotFoundError:
                    pass
                except OSError:
                    busy = True
        if not busy:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def children(rel: str) -> set[str]:
    """Names of the direct child cgroups of ``rel`` in any hierarchy."""
    names: set[str] = set()
    for top in paths(rel):
        if top.is_dir():
            names.update(e.name for e in top.iterdir() if e.is_dir())
    return names


def memory_pss(rel: str) -> int | None:
    """Proportional set size of every process in ``rel``, in bytes (shared pages counted once
    across the processes that share them), or None when nothing runs there.

    Read from /proc/PID/smaps_rollup, which works whatever the cgroup layout; a hybrid
    layout has no memory controller in the cgroup2 hierarchy to ask instead.
    """
    total, seen = 0, False
    for pid in pids(rel):
        with contextlib.suppress(OSError, ValueError):
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) * 1024
                    seen = True
                    break
    return total if seen else None


def cpu_seconds(rel: str) -> float | None:
    """CPU time used so far by every process that ever ran in ``rel`` (its children too), in
    seconds, or None where no hierarchy keeps accounting for it (the legacy layout's named
    hierarchy has no cpu.stat). The scale bench splits a rollout's CPU between the controller and
    the lab's hosts with it: on one machine they share the same cores."""
    for top in paths(rel):
        stat = top / "cpu.stat"
        if not stat.is_file():
            continue
        for line in stat.read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "usage_usec":
                return int(value) / 1e6
    return None
