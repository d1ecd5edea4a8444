"""The lab's local apt repository: indexed once, served on the bridge.

Hosts never see the real mirror.  The .debs are the ones mmdebstrap downloaded
to build the lab image (image.py), so the repository holds exactly what the
image contains, indexed with apt-ftparchive as a flat repository and served by
a small HTTP server bound to the bridge address only.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

from provision.errors import LabError

from . import cgroups
from .packages import SUITE
from .paths import BRIDGE_ADDR, REPO_CGROUP, REPO_DIR, REPO_LOG, REPO_PORT
from .util import atomic_write, cmdline, pid_alive, run


def index() -> None:
    """Write Packages and Release for the flat repository ``deb ... ./``."""
    proc = run(["apt-ftparchive", "packages", "pool"], cwd=REPO_DIR)
    atomic_write(REPO_DIR / "Packages", proc.stdout)
    (REPO_DIR / "Release").unlink(missing_ok=True)
    proc = run(
        [
            "apt-ftparchive",
            "-o",
            "APT::FTPArchive::Release::Origin=provision-lab",
            "-o",
            f"APT::FTPArchive::Release::Suite={SUITE}",
            "release",
            ".",
        ],
        cwd=REPO_DIR,
    )
    atomic_write(REPO_DIR / "Release", proc.stdout)


# --- the HTTP server -------------------------------------------------------


def _answers(timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((BRIDGE_ADDR, REPO_PORT), timeout=timeout):
            return True
    except OSError:
        return False


def is_server(pid: int | None) -> bool:
    """True when ``pid`` is our repository server (not a recycled pid)."""
    if not pid or not pid_alive(pid):
        return False
    argv = cmdline(pid)
    return "http.server" in argv and str(REPO_DIR) in argv


def server_pids() -> set[int]:
    return cgroups.pids(REPO_CGROUP)


def ensure_server(pid: int | None) -> int:
    """Reuse a live server or start a new one in its own cgroup; returns its pid."""
    if is_server(pid) and _answers():
        return pid  # type: ignore[return-value]
    stop_server()
    cgroups.create(REPO_CGROUP)
    log = REPO_LOG.open("a")
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "http.server", str(REPO_PORT), "--bind", BRIDGE_ADDR, "--directory", str(REPO_DIR)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=lambda: cgroups.enter(REPO_CGROUP),
            cwd="/",
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONDONTWRITEBYTECODE": "1"},
        )
    finally:
        log.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise LabError(f"the repository server exited with status {proc.returncode}; see {REPO_LOG}")
        if _answers(0.2):
            return proc.pid
        time.sleep(0.05)
    raise LabError(f"the repository server did not answer on {BRIDGE_ADDR}:{REPO_PORT}; see {REPO_LOG}")


def stop_server() -> None:
    """Stop the server, whoever started it, and remove its cgroup."""
    cgroups.kill(REPO_CGROUP)
    cgroups.remove(REPO_CGROUP)
