"""The controller key and the hosts' SSH host keys, all made on this machine.

Host keys are generated here before a host boots, so ``known_hosts`` is
complete before any connection and strict host key checking works from the
first login.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from .paths import IDENTITY_FILE, KNOWN_HOSTS
from .util import atomic_write, run


def _keygen(path: Path, comment: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    Path(f"{path}.pub").unlink(missing_ok=True)
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)])


def _pair_ok(path: Path) -> bool:
    pub = Path(f"{path}.pub")
    return path.is_file() and pub.is_file() and pub.read_text().startswith("ssh-ed25519 ")


def ensure_controller_key() -> str:
    """Create the lab's login key once; returns the public key line."""
    if not _pair_ok(IDENTITY_FILE):
        _keygen(IDENTITY_FILE, "provision-lab")
    IDENTITY_FILE.chmod(0o600)
    return Path(f"{IDENTITY_FILE}.pub").read_text().strip()


def ensure_host_key(key_dir: Path, name: str) -> str:
    """Create a host's ed25519 host key once; returns 'ssh-ed25519 AAAA...'."""
    path = key_dir / "ssh_host_ed25519_key"
    if not _pair_ok(path):
        _keygen(path, f"root@{name}")
    kind, blob = Path(f"{path}.pub").read_text().split()[:2]
    return f"{kind} {blob}"


def write_known_hosts(entries: Iterable[tuple[str, str, str]]) -> None:
    """One line per host, matching both its name and its address."""
    lines = [f"{name},{address} {key}\n" for name, address, key in sorted(entries)]
    atomic_write(KNOWN_HOSTS, "".join(lines))
