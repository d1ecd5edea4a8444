"""Bringing the lab up, reporting on it and tearing it down.

Every entry point takes the lab lock, then reconciles what is really there
(cgroups, mounts, links, processes) with what is wanted, so a run after a
crash or kill -9 cleans up or reuses what it finds instead of failing.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import paramiko

from provision.errors import LabError

from . import cgroups, container, image, limits, mounts, net, repo, sshkeys, state
from .container import FALLBACK, NSPAWN, LabHost
from .paths import (
    BRIDGE,
    CGROUP_ROOT,
    GOLDEN_DIR,
    HOSTS_DIR,
    IDENTITY_FILE,
    KNOWN_HOSTS,
    LOCK_FILE,
    REPO_DIR,
    REPO_URL,
)
from .util import Progress, file_lock, quiet

RUNNER_ENV = "PROVISION_LAB_RUNNER"  # "nspawn" or "unshare" forces a runner


class HostLike(Protocol):
    """What the lab needs of a host: ``provision.model.Host`` fits."""

    @property
    def name(self) -> str: ...

    @property
    def address(self) -> str: ...


@dataclass(frozen=True, slots=True)
class HostStatus:
    name: str
    address: str
    state: str  # running, starting, stopped, stale
    boot_seconds: float | None
    runner: str
    memory: int | None = None  # bytes (PSS) of the host's processes while it runs


@dataclass(slots=True)
class LabStatus:
    runner: str
    fallback_reason: str
    cgroup_layout: str
    bridge: bool
    repo_running: bool
    repo_url: str
    hosts: list[HostStatus] = field(default_factory=list)
    built: dict[str, float] = field(default_factory=dict)  # images built by this run, seconds

    @property
    def fallback(self) -> bool:
        return self.runner == FALLBACK


def _require_root() -> None:
    if os.geteuid() != 0:
        raise LabError("the lab needs root (mounts, bridges, cgroups, nspawn)")


def _lab_hosts(hosts: Iterable[HostLike]) -> list[LabHost]:
    out: list[LabHost] = []
    names: set[str] = set()
    addrs: set[str] = set()
    for h in hosts:
        container.check_name(h.name)
        net.check_address(h.name, h.address)
        if h.name in names:
            raise LabError(f"host {h.name} appears twice")
        if h.address in addrs:
            raise LabError(f"address {h.address} is given to two hosts")
        names.add(h.name)
        addrs.add(h.address)
        out.append(LabHost(h.name, h.address))
    if not out:
        raise LabError("the spec has no hosts")
    return sorted(out, key=lambda h: ipaddress.IPv4Address(h.address))


def _known_names(st: state.LabState) -> set[str]:
    """Every host that may have left something behind: state, dirs, cgroups."""
    names = set(st.hosts)
    if HOSTS_DIR.is_dir():
        names.update(p.name for p in HOSTS_DIR.iterdir() if p.is_dir())
    names.update(n for n in cgroups.children(CGROUP_ROOT) if not n.startswith("_"))
    return names


def _as_lab_host(name: str, st: state.LabState) -> LabHost:
    hs = st.hosts.get(name)
    # An unknown leftover gets a placeholder address in the lab network; it
    # is only used to name ARP entries and fallback veths, never contacted.
    return LabHost(name, hs.address if hs else "10.231.255.254")


def _ssh_port_open(address: str, timeout: float = 0.3) -> bool:
    try:
        with socket.create_connection((address, 22), timeout=timeout):
            return True
    except OSError:
        return False


def _ssh_login(address: str, patience: float = 5.0) -> None:
    """One real SSH login with the lab key and strict host key checking.

    ``patience`` bounds the banner and the authentication: a host still
    booting beside many others may need longer than an idle one.
    """
    client = paramiko.SSHClient()
    client.load_host_keys(str(KNOWN_HOSTS))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        client.connect(
            address,
            username="root",
            key_filename=str(IDENTITY_FILE),
            timeout=3,
            banner_timeout=patience,
            auth_timeout=patience,
            allow_agent=False,
            look_for_keys=False,
        )
    finally:
        client.close()


def _wait_one(host: LabHost, started: float, deadline: float) -> float | str:
    """Seconds from start to a successful login, or why it never came."""
    last = "sshd never answered"
    patience = 5.0
    while time.monotonic() < deadline:
        if not container.alive(host):
            return "its runner exited before sshd answered"
        if _ssh_port_open(host.address):
            try:
                _ssh_login(host.address, min(patience, max(1.0, deadline - time.monotonic())))
                return time.monotonic() - started
            except paramiko.BadHostKeyException as exc:
                return f"wrong host key: {exc}"
            except (paramiko.SSHException, OSError) as exc:
                last = f"ssh: {exc}"
                # A loaded machine answers slowly: wait longer each time rather
                # than give up at the same point over and over.
                patience = min(patience * 2, 40.0)
        time.sleep(0.1)
    return last


def _wait_ssh(hosts: Sequence[LabHost], started: dict[str, float], timeout: float) -> dict[str, float | str]:
    deadline = time.monotonic() + timeout
    with ThreadPoolExecutor(max_workers=min(32, len(hosts))) as pool:
        futures = {h.name: pool.submit(_wait_one, h, started[h.name], deadline) for h in hosts}
        return {name: f.result() for name, f in futures.items()}


def _console_tail(host: LabHost, lines: int = 12) -> str:
    try:
        text = host.console_log.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])


def _failure(host: LabHost, why: str) -> str:
    """Why a host did not come up: the known cause its console names, then the console's tail."""
    tail = _console_tail(host, lines=200)
    known = limits.cause(tail)
    short = "\n".join(tail.splitlines()[-12:])
    return f"{host.name}: {why}" + (f"; {known}" if known else "") + f"\n{short}"


def _start(hosts: Sequence[LabHost], runner: str) -> dict[str, float]:
    started: dict[str, float] = {}
    for host in hosts:
        started[host.name] = time.monotonic()
        if runner == NSPAWN:
            container.start_nspawn(host)
        else:
            container.start_fallback(host)
    return started


def up(
    hosts: Iterable[HostLike],
    progress: Progress = quiet,
    *,
    spec: str = "",
    ssh_timeout: float = 120.0,
    add: bool = False,
) -> LabStatus:
    """Build what is missing, start every host, return once all accept SSH logins.

    Hosts of the lab that are not in ``hosts`` are stopped, unless ``add`` is set:
    then they keep running beside the new ones (two specs in one lab).
    """
    _require_root()
    wanted = _lab_hosts(hosts)
    with file_lock(LOCK_FILE):
        st = state.load()
        forced = os.environ.get(RUNNER_ENV, "")
        if forced not in ("", NSPAWN, FALLBACK):
            raise LabError(f"{RUNNER_ENV} must be '{NSPAWN}' or '{FALLBACK}', not {forced!r}")
        # A fallback chosen because nspawn failed here sticks while its hosts
        # live; a forced one lasts only as long as the variable is set.
        in_use = any(container.alive(_as_lab_host(n, st)) for n in st.hosts)
        runner = forced or (FALLBACK if st.runner == FALLBACK and st.fallback_reason and in_use else NSPAWN)
        golden_id = image.golden_id()
        by_name = {h.name: h for h in wanted}

        # 1. Keep hosts that are alive and unchanged; stop everything else.
        #    An image rebuild replaces the hosts' lower layers: nothing is kept then.
        rebuild = image.needs_build()
        keep: list[LabHost] = []
        stop: list[LabHost] = []
        others: list[LabHost] = []  # with add: running hosts of another spec, left alone
        for name in sorted(_known_names(st)):
            hs, want = st.hosts.get(name), by_name.get(name)
            if add and want is None and hs is not None and not rebuild:
                other = _as_lab_host(name, st)
                if hs.golden == golden_id and hs.runner == runner and container.alive(other):
                    others.append(other)
                    continue
            if (
                not rebuild
                and want is not None
                and hs is not None
                and hs.address == want.address
                and hs.golden == golden_id
                and hs.runner == runner
                and container.alive(want)
                and _ssh_port_open(want.address)
            ):
                keep.append(want)
            else:
                stop.append(want or _as_lab_host(name, st))
        if stop:
            progress(f"cleaning up {len(stop)} stopped or stale host(s): {', '.join(h.name for h in stop)}")
            container.stop(stop)
        for host in wanted:
            hs = st.hosts.get(host.name)
            if host not in keep and (hs is None or hs.golden != golden_id or hs.address != host.address):
                # A new image or address: the old upper layer does not belong to it.
                for d in (host.upper, host.work):
                    container.destroy_files(d)
        other_names = {h.name for h in others}
        for name in list(st.hosts):
            if name in other_names:
                continue
            if name not in by_name or by_name[name] not in keep:
                del st.hosts[name]
        image.stop_stale_builds()

        # 2. Images, keys, network, repository.
        images = image.ensure_images(progress)
        pub = sshkeys.ensure_controller_key()
        known = [(h.name, h.address, sshkeys.ensure_host_key(h.key_dir, h.name)) for h in [*others, *wanted]]
        sshkeys.write_known_hosts(known)
        net.ensure_bridge()
        st.repo_pid = repo.ensure_server(st.repo_pid)
        st.raised = limits.ensure(len(others) + len(wanted), st.raised, progress)
        state.save(st)

        # 3. Boot what is not running yet.
        todo = [h for h in wanted if h not in keep]
        if todo:
            progress(f"starting {len(todo)} host(s) with {runner}")
        for host in todo:
            container.prepare(host, wanted, images.lower, pub)
        started = _start(todo, runner)
        for host in keep:
            started[host.name] = time.monotonic()
        # Many hosts booting at once share the CPUs: give each its time.
        ssh_timeout = max(ssh_timeout, 2.0 * len(todo))
        results = _wait_ssh(wanted, started, ssh_timeout)
        failed = {n: r for n, r in results.items() if isinstance(r, str)}
        # A host whose console shows a login prompt booted: nspawn works here.
        booted_somewhere = any(" login:" in _console_tail(by_name[n], lines=40) for n in failed)
        if (
            failed
            and runner == NSPAWN
            and not forced
            and not keep
            and len(failed) == len(todo)
            and not booted_somewhere
        ):
            reason = f"systemd-nspawn could not boot {todo[0].name}: {failed[todo[0].name]}\n{_console_tail(todo[0])}"
            progress("systemd-nspawn cannot boot containers here; falling back to unshare + chroot running sshd only")
            container.stop(todo, timeout=5)
            runner, st.fallback_reason = FALLBACK, reason
            for host in todo:
                container.prepare(host, wanted, images.lower, pub)
            started = _start(todo, runner)
            results = _wait_ssh(wanted, started, ssh_timeout)
            failed = {n: r for n, r in results.items() if isinstance(r, str)}
        if failed:
            # One more try for the hosts that did not make it (a slow machine, a
            # leftover of an old container): a real failure fails twice.
            again = [by_name[n] for n in sorted(failed)]
            progress(f"{len(again)} host(s) did not come up ({', '.join(h.name for h in again)}); starting them again")
            container.stop(again, timeout=10)
            for host in again:
                container.prepare(host, wanted, images.lower, pub)
            started.update(_start(again, runner))
            results.update(_wait_ssh(again, started, ssh_timeout))
            failed = {n: r for n, r in results.items() if isinstance(r, str)}
        st.runner = runner
        if runner == NSPAWN or forced:
            st.fallback_reason = ""
        st.spec = spec
        now = time.time()
        for host in wanted:
            old = st.hosts.get(host.name)
            result = results[host.name]
            boot = result if isinstance(result, float) else None
            if host in keep and old is not None:
                boot = old.boot_seconds
            st.hosts[host.name] = state.HostState(
                host.name,
                host.address,
                host.mac,
                golden_id,
                runner,
                old.started_at if (host in keep and old) else now,
                boot,
            )
        state.save(st)
        if failed:
            details = "\n".join(_failure(by_name[name], why) for name, why in sorted(failed.items()))
            raise LabError(f"{len(failed)} host(s) did not come up:\n{details}")
        result_status = _status(st)
        result_status.hosts = [h for h in result_status.hosts if h.name in by_name]
        result_status.built = images.built
        return result_status


def _status(st: state.LabState) -> LabStatus:
    rows = []
    for name in sorted(_known_names(st)):
        host = _as_lab_host(name, st)
        hs = st.hosts.get(name)
        if container.alive(host):
            condition = "running" if _ssh_port_open(host.address) else "starting"
        elif mounts.below(host.root):
            condition = "stale"
        else:
            condition = "stopped"
        memory = cgroups.memory_pss(host.cgroup) if condition in ("running", "starting") else None
        rows.append(
            HostStatus(
                name,
                host.address if hs else "-",
                condition,
                hs.boot_seconds if hs else None,
                hs.runner if hs else "-",
                memory,
            )
        )
    rows.sort(key=lambda r: ipaddress.IPv4Address(r.address) if r.address != "-" else ipaddress.IPv4Address(0))
    return LabStatus(
        runner=st.runner,
        fallback_reason=st.fallback_reason,
        cgroup_layout=cgroups.layout(),
        bridge=net.link_exists(BRIDGE),
        repo_running=repo.is_server(st.repo_pid),
        repo_url=REPO_URL,
        hosts=rows,
    )


def status() -> LabStatus:
    """What is running now, read from the system with the state file as a guide."""
    return _status(state.load())


def down(destroy: bool = False, progress: Progress = quiet) -> list[str]:
    """Stop every host; with ``destroy`` also remove host dirs, bridge and repo server.

    Returns the names of hosts that had to be killed instead of powering off.
    Cached images and the controller key always stay.
    """
    _require_root()
    with file_lock(LOCK_FILE):
        st = state.load()
        hosts = [_as_lab_host(n, st) for n in sorted(_known_names(st))]
        if hosts:
            progress(f"stopping {len(hosts)} host(s)")
        killed = container.stop(hosts)
        for port in net.bridge_ports():
            net.delete_link(port)
        image.stop_stale_builds()
        if destroy:
            progress("removing host directories, the bridge and the repository server")
            repo.stop_server()
            mounts.unmount_below(HOSTS_DIR)
            for host in hosts:
                container.destroy_files(host.dir)
            net.remove_bridge()
            cgroups.remove(CGROUP_ROOT)
            KNOWN_HOSTS.unlink(missing_ok=True)
            limits.restore(st.raised, progress)
            state.remove()
        else:
            state.save(st)
        return killed


def wipe(names: Sequence[str], progress: Progress = quiet) -> list[str]:
    """Stop these hosts and delete their disks and host keys, as if each machine had been replaced by
    a new one (a restore drill): the next ``lab up`` boots them fresh from the image, with new host
    keys in the lab's known_hosts. Returns the names that had to be killed."""
    _require_root()
    with file_lock(LOCK_FILE):
        st = state.load()
        known = _known_names(st)
        unknown = [n for n in names if n not in known]
        if unknown:
            raise LabError(f"no lab host named {', '.join(unknown)} (hosts: {', '.join(sorted(known)) or 'none'})")
        hosts = [_as_lab_host(n, st) for n in names]
        progress(f"wiping {len(hosts)} host(s): {', '.join(names)}")
        killed = container.stop(hosts)
        for host in hosts:
            container.destroy_files(host.dir)
            st.hosts.pop(host.name, None)
        state.save(st)
        return killed


def ssh_argv(name: str, command: Sequence[str] = ()) -> list[str]:
    """The ssh command line that logs into lab host ``name`` as root."""
    st = state.load()
    hs = st.hosts.get(name)
    if hs is None:
        known = ", ".join(sorted(st.hosts)) or "none"
        raise LabError(f"no lab host named {name!r} (hosts: {known})")
    if not IDENTITY_FILE.is_file() or not KNOWN_HOSTS.is_file():
        raise LabError("the lab key or known_hosts is missing; run 'provision lab up' first")
    return [
        "ssh",
        "-i",
        str(IDENTITY_FILE),
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        f"UserKnownHostsFile={KNOWN_HOSTS}",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "PasswordAuthentication=no",
        "-o",
        "LogLevel=ERROR",
        f"root@{hs.address}",
        *command,
    ]


def image_paths() -> dict[str, Path]:
    """Where the cached images live, for benchmarks and docs."""
    return {"repo": REPO_DIR, "golden": GOLDEN_DIR}
