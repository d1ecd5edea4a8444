"""One lab host: its overlay root, identity files, runner process and teardown.

The normal runner is ``systemd-nspawn -b`` under a restart loop; the
fallback (only when nspawn cannot boot here) is an ``unshare`` + ``chroot``
running sshd alone.  Either way every process of host NAME lives in cgroup
``lab/NAME``, which is what stop, status and leak checks look at.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from provision.errors import LabError

from . import cgroups, mounts, net
from .paths import BRIDGE, CGROUP_ROOT, HOSTS_DIR, LAB_NET
from .util import cmdline, remove_tree, run, write_file

NSPAWN = "nspawn"
FALLBACK = "unshare"
SUPERVISOR = Path(__file__).with_name("supervisor.py")
NSPAWN_PROPAGATE = Path("/run/systemd/nspawn/propagate")


@dataclass(frozen=True, slots=True)
class LabHost:
    """A host's name and address, and where its files live."""

    name: str
    address: str

    @property
    def dir(self) -> Path:
        return HOSTS_DIR / self.name

    @property
    def root(self) -> Path:
        return self.dir / "root"

    @property
    def upper(self) -> Path:
        return self.dir / "upper"

    @property
    def work(self) -> Path:
        return self.dir / "work"

    @property
    def key_dir(self) -> Path:
        return self.dir / "keys"

    @property
    def console_log(self) -> Path:
        return self.dir / "console.log"

    @property
    def cgroup(self) -> str:
        return f"{CGROUP_ROOT}/{self.name}"

    @property
    def mac(self) -> str:
        return net.mac_for(self.address)

    @property
    def nspawn_veth(self) -> str | None:
        """The host-side veth systemd-nspawn makes for --network-bridge (it hashes long names)."""
        return f"vb-{self.name}" if len(self.name) <= 12 else None

    @property
    def fallback_veth(self) -> str:
        """Deterministic host-side veth name for the fallback runner."""
        return f"plab{int(ipaddress.IPv4Address(self.address)) & 0xFFFF:04x}"


def check_name(name: str) -> None:
    """Host names become hostnames, machine names and cgroup names."""
    ok = 0 < len(name) <= 63 and name[0].isalnum() and all(c.isalnum() or c == "-" for c in name)
    if not ok:
        raise LabError(f"host name {name!r} is not a valid hostname (letters, digits, '-'; at most 63)")


# --- preparing the root ----------------------------------------------------


def _network_unit(host: LabHost) -> str:
    return (
        "# provision lab: static address on the lab bridge, no gateway, no DNS.\n"
        "[Match]\nName=host0\n\n"
        f"[Link]\nMACAddress={host.mac}\n\n"
        f"[Network]\nAddress={host.address}/{LAB_NET.prefixlen}\n"
        "LinkLocalAddressing=no\nIPv6AcceptRA=no\nLLMNR=no\nMulticastDNS=no\n"
    )


def _hosts_file(host: LabHost, everyone: Sequence[LabHost]) -> str:
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
    lines += [f"{h.address}\t{h.name}" for h in sorted(everyone, key=lambda h: ipaddress.IPv4Address(h.address))]
    return "\n".join(lines) + "\n"


def prepare(host: LabHost, everyone: Sequence[LabHost], lower: str, authorized_key: str) -> None:
    """Mount the overlay root and write the host's identity into its upper layer."""
    mounts.unmount_below(host.root)
    mounts.mount_overlay(lower, host.upper, host.work, host.root)
    root = host.root
    write_file(root / "etc/hostname", f"{host.name}\n")
    write_file(root / "etc/hosts", _hosts_file(host, everyone))
    write_file(root / "etc/machine-id", uuid.uuid5(uuid.NAMESPACE_DNS, f"{host.name}.provision-lab").hex + "\n", 0o444)
    write_file(root / "etc/systemd/network/10-provision-lab.network", _network_unit(host))
    for suffix, mode in (("", 0o600), (".pub", 0o644)):
        src = host.key_dir / f"ssh_host_ed25519_key{suffix}"
        write_file(root / f"etc/ssh/ssh_host_ed25519_key{suffix}", src.read_text(), mode)
    ssh_dir = root / "root/.ssh"
    ssh_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_file(ssh_dir / "authorized_keys", authorized_key + "\n", 0o600)
    (root / "run/sshd").mkdir(parents=True, exist_ok=True)


# --- starting --------------------------------------------------------------


def _spawn_detached(argv: list[str], cgroup_rel: str, log: Path) -> None:
    """Start ``argv`` in ``cgroup_rel``, in its own session, re-parented away from us.

    ``setsid --fork`` makes the real process a child of init, so the tool can
    exit (or be killed) without the lab noticing, and no zombie is left in a
    long-lived caller such as a test run.
    """
    cgroups.create(cgroup_rel)
    with log.open("a") as out:
        proc = subprocess.Popen(
            ["setsid", "--fork", *argv],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=lambda: cgroups.enter(cgroup_rel),
            cwd="/",
            close_fds=True,
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8"},
        )
    if proc.wait(timeout=10) != 0:
        raise LabError(f"could not start {argv[0]} (setsid exited {proc.returncode}); see {log}")


def nspawn_argv(host: LabHost) -> list[str]:
    return [
        "systemd-nspawn",
        "--quiet",
        "-b",
        "-D",
        str(host.root),
        "--register=no",
        "--keep-unit",
        "-M",
        host.name,
        f"--network-bridge={BRIDGE}",
        "--resolv-conf=off",
        "--timezone=off",
        "--link-journal=no",
        "--console=read-only",
    ]


def start_nspawn(host: LabHost) -> None:
    """Boot the host with systemd-nspawn under the restart loop."""
    host.console_log.write_text("")
    net.forget_neighbour(host.address)
    runner_cg, ns_cg = f"{host.cgroup}/runner", f"{host.cgroup}/ns"
    cgroups.create(ns_cg)
    argv = [sys.executable, "-I", str(SUPERVISOR)]
    for path in cgroups.paths(ns_cg):
        argv += ["--cgroup", str(path)]
    _spawn_detached([*argv, "--", *nspawn_argv(host)], runner_cg, host.console_log)


def _ns_init(pid: int) -> bool:
    """True when ``pid`` is process 1 of its own pid namespace (sshd renames itself)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    for line in status.splitlines():
        if line.startswith("NSpid:"):
            ids = line.split()[1:]
            return len(ids) > 1 and ids[-1] == "1"
    return False


def start_fallback(host: LabHost) -> None:
    """Run sshd alone in fresh namespaces, wired to the bridge by hand."""
    host.console_log.write_text("")
    net.forget_neighbour(host.address)
    net.delete_link(host.fallback_veth)
    ns_cg = f"{host.cgroup}/ns"
    argv = [
        "unshare",
        "--mount",
        "--uts",
        "--ipc",
        "--net",
        "--pid",
        "--fork",
        f"--mount-proc={host.root}/proc",
        "chroot",
        str(host.root),
        "/usr/sbin/sshd",
        "-D",
        "-e",
    ]
    _spawn_detached(argv, ns_cg, host.console_log)
    pid = 0
    deadline = time.monotonic() + 10
    while not pid:
        for candidate in cgroups.pids(ns_cg):
            if _ns_init(candidate):
                pid = candidate
        if not pid:
            if time.monotonic() > deadline:
                raise LabError(f"{host.name}: fallback sshd did not start; see {host.console_log}")
            time.sleep(0.05)
    ns = ["nsenter", "-t", str(pid)]
    run(["ip", "link", "add", host.fallback_veth, "type", "veth", "peer", "name", "host0", "netns", str(pid)])
    run(["ip", "link", "set", host.fallback_veth, "master", BRIDGE, "up"])
    run([*ns, "--uts", "hostname", host.name])
    run([*ns, "--net", "sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1"])
    run([*ns, "--net", "ip", "link", "set", "lo", "up"])
    run([*ns, "--net", "ip", "link", "set", "host0", "address", host.mac])
    run([*ns, "--net", "ip", "addr", "add", f"{host.address}/{LAB_NET.prefixlen}", "dev", "host0"])
    run([*ns, "--net", "ip", "link", "set", "host0", "up"])


# --- inspecting and stopping -----------------------------------------------


def alive(host: LabHost) -> bool:
    """True while any process of the host exists."""
    return bool(cgroups.pids(host.cgroup))


def _runners(host: LabHost) -> list[int]:
    """The process to SIGTERM for a clean poweroff: the restart loop, else nspawn.

    Exactly one of them: a second SIGTERM makes nspawn kill the container
    instead of halting it.
    """
    supervisors, nspawns = [], []
    for pid in cgroups.pids(host.cgroup):
        argv = cmdline(pid)
        if len(argv) > 2 and argv[2] == str(SUPERVISOR):
            supervisors.append(pid)
        elif argv and Path(argv[0]).name == "systemd-nspawn":
            nspawns.append(pid)
    return supervisors or nspawns


def stop(hosts: Iterable[LabHost], timeout: float = 30.0) -> list[str]:
    """Power hosts off and clean up after them; returns names that had to be killed.

    SIGTERM to the restart loop and nspawn makes nspawn halt the container's
    systemd cleanly; whatever is still there after ``timeout`` is killed
    through the cgroup.  Then the root is unmounted, the cgroup removed and
    any veth and ARP entry left on the bridge dropped.
    """
    hosts = list(hosts)
    pending = []
    for host in hosts:
        signalled = False
        for pid in _runners(host):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
                signalled = True
        if signalled:  # a bare sshd (fallback) has nothing to power off: kill it below
            pending.append(host)
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        time.sleep(0.1)
        pending = [h for h in pending if alive(h)]
    killed = [h.name for h in pending if alive(h)]
    for host in hosts:
        if not cgroups.kill(host.cgroup):
            raise LabError(f"{host.name}: processes in cgroup {host.cgroup} survive SIGKILL")
    for host in hosts:
        mounts.unmount_below(host.root)
        cgroups.remove(host.cgroup)
        net.delete_link(host.fallback_veth)
        _drop_nspawn_veth(host)
        net.forget_neighbour(host.address)
        leftover = NSPAWN_PROPAGATE / host.name
        if leftover.is_dir():
            with contextlib.suppress(OSError):
                leftover.rmdir()
    return killed


def _drop_nspawn_veth(host: LabHost, wait: float = 5.0) -> None:
    """Make sure nspawn's old veth is gone, or the next start fails with "File exists".

    The kernel removes it when the container's network namespace dies, in the
    background and, on a loaded machine, seconds later.
    """
    name = host.nspawn_veth
    if name is None:
        return
    deadline = time.monotonic() + wait
    while net.link_exists(name) and time.monotonic() < deadline:
        time.sleep(0.1)
    net.delete_link(name)


def destroy_files(host_dir: Path) -> None:
    """Remove a host's directory (upper layer, keys, logs) after it is stopped."""
    mounts.unmount_below(host_dir)
    remove_tree(host_dir)
