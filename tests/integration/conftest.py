"""Fixtures for the lab integration tests: one lab per test run, always torn down.

``lab_factory(hosts)`` brings the lab up for that list of hosts (building the
cached images on first use) and returns its status; asking again with the
same list is free.  At the end of the session the lab is destroyed
(``down --destroy``), cached images stay.  Everything skips, with the reason,
when the machine cannot run the lab: not root, or no systemd-nspawn.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence

import pytest

from provision.lab import IDENTITY_FILE, KNOWN_HOSTS, LabStatus
from provision.model import Host, Role

LabFactory = Callable[[Sequence[Host]], LabStatus]

# Three hosts are enough to show peer traffic; addresses inside the lab network only.
DEFAULT_HOSTS = (
    Host(name="lab-a", address="10.231.2.10", role=Role.PEER),
    Host(name="lab-b", address="10.231.2.11", role=Role.PEER),
    Host(name="lab-c", address="10.231.2.12", role=Role.PEER),
)


def _why_not() -> str | None:
    if os.geteuid() != 0:
        return "the lab needs root (mounts, bridge, cgroups, nspawn)"
    for tool, package in (("systemd-nspawn", "systemd-container"), ("mmdebstrap", "mmdebstrap"),
                          ("apt-ftparchive", "apt-utils")):
        if shutil.which(tool) is None:
            return f"{tool} is unavailable (apt-get install {package})"
    return None


def _progress(message: str) -> None:
    print(f"lab: {message}", file=sys.__stderr__, flush=True)


@pytest.fixture(scope="session")
def lab_factory() -> Iterator[LabFactory]:
    reason = _why_not()
    if reason:
        pytest.skip(reason)
    from provision import lab

    current: dict[str, object] = {}
    # PROVISION_LAB_KEEP=1 (for debugging, or sharing one lab between people): hosts are added
    # beside the lab's other running hosts and the lab is left running at the end.
    keep = bool(os.environ.get("PROVISION_LAB_KEEP"))

    def running() -> set[tuple[str, str]]:
        return {(h.name, h.address) for h in lab.status().hosts if h.state == "running"}

    def start(hosts: Sequence[Host]) -> LabStatus:
        key = tuple(sorted((h.name, h.address) for h in hosts))
        # Tests power hosts off or destroy the lab: trust the lab's state, not a memory of it.
        if current.get("key") != key or not set(key) <= running():
            current["status"] = lab.up(hosts, _progress, add=keep)
            current["key"] = key
        status = current["status"]
        assert isinstance(status, LabStatus)
        return status

    try:
        yield start
    finally:
        if not keep:
            lab.down(destroy=True, progress=_progress)


@pytest.fixture(scope="module")
def lab_hosts(lab_factory: LabFactory) -> tuple[Host, ...]:
    """The default three-host lab, up (checked again for each module: tests destroy it)."""
    lab_factory(DEFAULT_HOSTS)
    return DEFAULT_HOSTS


def ssh(
    address: str, command: str, *, timeout: float = 120, alias: str | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``command`` on a lab host the way a spec's ssh settings would: key + strict known_hosts."""
    argv = [
        "ssh", "-i", str(IDENTITY_FILE), "-o", f"UserKnownHostsFile={KNOWN_HOSTS}",
        "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10",
        "-o", "GlobalKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
    ]
    if alias:
        argv += ["-o", f"HostKeyAlias={alias}"]
    return subprocess.run([*argv, f"root@{address}", command], input=stdin, capture_output=True, text=True,
                          timeout=timeout, check=False)


def wait_ssh(address: str, timeout: float = 60) -> None:
    """Block until a login to ``address`` works (after a reboot, say)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ssh(address, "true", timeout=15).returncode == 0:
            return
        time.sleep(0.5)
    raise AssertionError(f"{address}: no SSH within {timeout}s")


class LabShell:
    """Test helpers for talking to lab hosts, handed out by the ``lab_ssh`` fixture."""

    run = staticmethod(ssh)
    wait = staticmethod(wait_ssh)


@pytest.fixture(scope="session")
def lab_ssh() -> type[LabShell]:
    return LabShell
