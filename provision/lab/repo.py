"""The lab's local apt repository: fetched once, indexed, served on the bridge.

Hosts never see the real mirror.  The .debs are downloaded once on this
machine (apt ``--download-only`` in a throwaway overlay of the base image, so
apt resolves dependencies against exactly what the images contain), indexed
with apt-ftparchive as a flat repository, and served by a small HTTP server
bound to the bridge address only.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from provision.errors import LabError

from . import cgroups, mounts
from .image import APT_OPTS, POOL, chroot, clean_build_dir, drop_stamp, move_debs, repo_id, upgradable, write_stamp
from .packages import LAB_PACKAGES, SUITE
from .paths import BASE_DIR, BRIDGE_ADDR, BUILD_DIR, LOG_DIR, REPO_CGROUP, REPO_DIR, REPO_LOG, REPO_PORT
from .sources import debian_sources
from .util import Progress, atomic_write, cmdline, pid_alive, run, write_file


def _host_resolv_conf() -> str:
    try:
        return Path("/etc/resolv.conf").read_text()
    except OSError:
        return ""


def download(progress: Progress) -> int:
    """Fetch LAB_PACKAGES and their dependencies into the pool; returns how many .debs."""
    clean_build_dir()
    log = LOG_DIR / "repo.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("")
    work = BUILD_DIR / "download"
    root = work / "root"
    mounts.mount_overlay(str(BASE_DIR), work / "upper", work / "work", root)
    try:
        write_file(root / "etc/resolv.conf", _host_resolv_conf())
        lines = []
        for src in debian_sources(SUITE):
            if src.signed_by and Path(src.signed_by).is_file() and not (root / src.signed_by.lstrip("/")).exists():
                dest = root / src.signed_by.lstrip("/")
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src.signed_by, dest)
            lines += [src.line(suite) for suite in src.suites]
        write_file(root / "etc/apt/sources.list", "\n".join(lines) + "\n")
        progress(f"repository: downloading {len(LAB_PACKAGES)} packages and their dependencies (log: {log})")
        chroot(root, ["apt-get", "update"], log)
        chroot(root, ["apt-get", "-y", "--download-only", *APT_OPTS, "install", *LAB_PACKAGES, *upgradable(root)], log)
    finally:
        mounts.unmount_below(work)
    return move_debs(work / "upper/var/cache/apt/archives")


def index() -> None:
    """Write Packages and Release for the flat repository ``deb ... ./``."""
    proc = run(["apt-ftparchive", "packages", "pool"], cwd=REPO_DIR)
    atomic_write(REPO_DIR / "Packages", proc.stdout)
    (REPO_DIR / "Release").unlink(missing_ok=True)
    proc = run(
        ["apt-ftparchive", "-o", "APT::FTPArchive::Release::Origin=provision-lab",
         "-o", f"APT::FTPArchive::Release::Suite={SUITE}", "release", "."],
        cwd=REPO_DIR,
    )
    atomic_write(REPO_DIR / "Release", proc.stdout)


def build_repo(progress: Progress) -> float:
    """Download and index; returns seconds taken."""
    start = time.monotonic()
    drop_stamp("repo")
    count = download(progress)
    index()
    seconds = time.monotonic() - start
    write_stamp("repo", repo_id(), seconds)
    total = len(list(POOL.glob("*.deb")))
    progress(f"repository: {count} new .debs, {total} in the pool, built in {seconds:.1f}s")
    return seconds


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
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=lambda: cgroups.enter(REPO_CGROUP), cwd="/",
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
