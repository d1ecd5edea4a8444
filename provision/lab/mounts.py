"""Overlay mounts for host roots and build chroots, and finding stale ones."""

from __future__ import annotations

import re
import time
from pathlib import Path

from .util import run

_ESCAPE = re.compile(r"\\([0-7]{3})")


def _unescape(field: str) -> str:
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), field)


def mount_points() -> list[str]:
    """Every mount point in this mount namespace, in mount order."""
    out = []
    with Path("/proc/self/mountinfo").open() as fh:
        for line in fh:
            out.append(_unescape(line.split()[4]))
    return out


def is_mounted(path: Path) -> bool:
    return str(path) in mount_points()


def below(path: Path) -> list[str]:
    """Mount points at or under ``path``, deepest first."""
    prefix = str(path).rstrip("/")
    found = [m for m in mount_points() if m == prefix or m.startswith(prefix + "/")]
    return sorted(set(found), key=lambda m: m.count("/"), reverse=True)


def unmount(point: str) -> None:
    """Unmount, retrying briefly, then lazily so a busy mount never blocks us."""
    for _ in range(20):
        if run(["umount", point], check=False).returncode == 0 or point not in mount_points():
            return
        time.sleep(0.1)
    run(["umount", "--lazy", point], check=False)


def unmount_below(path: Path) -> None:
    for point in below(path):
        unmount(point)


def mount_overlay(lower: str, upper: Path, work: Path, target: Path) -> None:
    """Mount ``target`` as a writable overlay of ``lower`` (colon-separated layers, top first)."""
    for d in (upper, work, target):
        d.mkdir(parents=True, exist_ok=True)
    run(["mount", "-t", "overlay", "overlay", "-o", f"lowerdir={lower},upperdir={upper},workdir={work}", str(target)])
