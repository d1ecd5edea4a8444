"""Kernel limits a lab of many hosts needs, raised when they are too low and put back after.

Every lab host runs its own systemd, journald, logind, networkd and sshd as root of
the host kernel (no user namespace), and each of them holds inotify instances and
watches counted against root's per-user limits. Debian's default of 128 inotify
instances stops the 21st host or so: its systemd cannot watch its unit files and the
boot stalls after network.target. ``ensure`` raises what the wanted number of hosts
needs and says so; ``restore`` puts back only what the lab raised, and only while the
value is still the one the lab set (a change made since by someone else is kept).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .util import Progress, quiet

PROC_SYS = Path("/proc/sys")


def _instances(hosts: int) -> int:
    # About 6 per host measured (systemd 3, journald, logind, networkd); 16 leaves room
    # for the services the roles add (sssd, winbind, samba) and the host's own use.
    return 256 + 16 * hosts


def _watches(hosts: int) -> int:
    return 65536 + 8192 * hosts


# sysctl path (under /proc/sys) -> what N hosts need at least.
NEEDS: dict[str, Callable[[int], int]] = {
    "fs/inotify/max_user_instances": _instances,
    "fs/inotify/max_user_watches": _watches,
}


def _read(path: str, root: Path) -> int | None:
    try:
        return int((root / path).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def ensure(
    hosts: int, raised: dict[str, list[int]], progress: Progress = quiet, root: Path = PROC_SYS
) -> dict[str, list[int]]:
    """Raise each limit to what ``hosts`` hosts need; ``raised`` records [original, set] per path."""
    out = {k: list(v) for k, v in raised.items()}
    for path, need in NEEDS.items():
        wanted = need(hosts)
        current = _read(path, root)
        if current is None or current >= wanted:
            continue
        (root / path).write_text(f"{wanted}\n")
        original = out[path][0] if path in out else current
        out[path] = [original, wanted]
        name = path.replace("/", ".")
        progress(f"raising {name} from {current} to {wanted} for {hosts} host(s) (put back by 'lab down --destroy')")
    return out


def restore(raised: dict[str, list[int]], progress: Progress = quiet, root: Path = PROC_SYS) -> list[str]:
    """Put back the originals of what the lab raised, where the value is still the lab's."""
    done = []
    for path, (original, wanted) in sorted(raised.items()):
        if _read(path, root) == wanted:
            (root / path).write_text(f"{original}\n")
            progress(f"{path.replace('/', '.')} back to {original}")
            done.append(path)
    return done


# Console lines that say why a host did not boot, and what that means.
CAUSES = (
    ("Too many open files", "the kernel's inotify or file limits are exhausted (fs.inotify.max_user_instances)"),
    ("Failed to allocate manager object", "systemd could not start: a kernel limit (inotify, memory) ran out"),
    ("Cannot allocate memory", "the machine is out of memory for another host"),
    ("No space left on device", "the disk (or inotify watches) is full"),
)


def cause(console: str) -> str | None:
    """What a host's console says went wrong, in a sentence, if it is something known."""
    for needle, meaning in CAUSES:
        if needle in console:
            return f"{meaning} ({needle!r} on its console)"
    return None
