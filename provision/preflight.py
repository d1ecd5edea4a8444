"""SSH preflight with paramiko: is every host ready for Ansible?

One connection per host, one remote script per connection, bounded
concurrency so 500 hosts take about as long as a few dozen. Unknown host keys
are an error unless the caller accepts new ones explicitly; a changed key is
always an error.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from pathlib import Path

import paramiko

from provision.inventory import known_hosts_file
from provision.model import Host, HostConnection, Network, Role
from provision.results import Check

CLOCK_WARN = 60.0  # seconds; Kerberos tolerates 300
CLOCK_FAIL = 300.0
SUPPORTED = {("debian", "12"), ("ubuntu", "22.04"), ("ubuntu", "24.04")}
MAX_WORKERS = 64
# How Samba's own DNS server shows in `ss -p` on a provisioned DC (a re-run is fine).
_SAMBA_DNS = ('"samba"', '"dns[', '"dns"')

# What every machine is asked: python3, the OS, the clock (read last, for the offset).
SYSTEM_SCRIPT = r"""
echo "@@python"; command -v python3 || true
echo "@@os"; . /etc/os-release 2>/dev/null && echo "$ID $VERSION_ID"
echo "@@clock"; date +%s.%N
"""
# One round trip: every fact a host's checks need, in sections (the system's last).
_SCRIPT = (
    r"""
echo "@@sudo"; if [ "$(id -u)" = 0 ]; then echo root; elif sudo -n true 2>/dev/null; then echo ok; else echo no; fi
echo "@@port53"; ss -Hlnutp 'sport = :53' 2>/dev/null"""
    + SYSTEM_SCRIPT
)


@dataclass
class HostReport:
    host: str
    address: str
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.status != "fail" for c in self.checks)

    def add(self, name: str, status: str, detail: str = "") -> None:
        self.checks.append(Check(self.host, name, status, detail))


@dataclass
class PreflightResult:
    reports: list[HostReport]
    seconds: float

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.reports)

    def failed_hosts(self) -> list[str]:
        return [r.host for r in self.reports if not r.ok]

    def checks(self) -> list[Check]:
        return [c for r in self.reports for c in r.checks]


class KnownHosts:
    """known_hosts shared by all workers; new keys are appended only when accepted."""

    def __init__(self, path: Path, accept_new: bool) -> None:
        self.path = path
        self.accept_new = accept_new
        self.keys = paramiko.HostKeys()
        if path.exists():
            self.keys.load(str(path))
        self.lock = threading.Lock()

    def policy(self) -> paramiko.MissingHostKeyPolicy:
        outer = self

        class Policy(paramiko.MissingHostKeyPolicy):
            def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
                if not outer.accept_new:
                    raise _UnknownKey(f"host key {key.get_name()} {key.fingerprint} is not in {outer.path}")
                with outer.lock:
                    outer.keys.add(hostname, key.get_name(), key)
                    outer.path.parent.mkdir(parents=True, exist_ok=True)
                    with outer.path.open("a") as fh:
                        fh.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")

        return Policy()


class _UnknownKey(Exception):
    pass


def known_hosts_path(network: Network) -> Path:
    """The known_hosts file host keys are checked against (the spec's, or the user's)."""
    return Path(known_hosts_file(network))


def host_label(address: str, port: int) -> str:
    return address if port == 22 else f"[{address}]:{port}"


def session(
    network: Network,
    report: HostReport,
    known: KnownHosts,
    scripts: Sequence[str],
    timeout: float = 10.0,
    connection: HostConnection | None = None,
) -> tuple[list[str], float] | None:
    """Connect as the spec's ssh settings say (or ``connection``) and run ``scripts``, one exec each.

    The connection checks (reachable, host key, auth) go into ``report``; returns each
    script's output and the clock reading's midpoint, or None when no session was made.
    """
    ssh = network.ssh
    if connection is not None:  # a Vagrant machine: its own port, user, key, maybe a proxy
        ssh = replace(ssh, user=connection.user, port=connection.port, identity_file=connection.identity_file)
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(known.policy())
    with known.lock:
        for name, keys in known.keys.items():
            for ktype, key in keys.items():
                client.get_host_keys().add(name, ktype, key)
    key_file = ssh.identity_file
    address = connection.address if connection is not None else report.address
    proxy = connection.proxy_for_paramiko() if connection is not None else None
    try:
        client.connect(
            address,
            port=ssh.port,
            username=ssh.user,
            key_filename=key_file,
            timeout=timeout,
            banner_timeout=timeout,
            auth_timeout=timeout,
            allow_agent=key_file is None,
            look_for_keys=key_file is None,
            sock=paramiko.ProxyCommand(proxy) if proxy else None,
        )
    except _UnknownKey as exc:
        report.add("reachable", "pass")
        report.add("host key", "fail", f"{exc}; verify it, then rerun with --accept-new-host-keys")
        return None
    except paramiko.BadHostKeyException as exc:
        report.add("reachable", "pass")
        report.add(
            "host key",
            "fail",
            f"CHANGED host key for {address} (got {exc.key.get_name()} "
            f"{exc.key.fingerprint}); possible man-in-the-middle, or the host was rebuilt",
        )
        return None
    except paramiko.AuthenticationException as exc:
        report.add("reachable", "pass")
        report.add("host key", "pass")
        report.add("auth", "fail", f"authentication as {ssh.user} failed: {exc}")
        return None
    except (TimeoutError, OSError, paramiko.SSHException) as exc:
        report.add("reachable", "fail", f"{address}:{ssh.port}: {exc or type(exc).__name__}")
        return None
    try:
        report.add("reachable", "pass")
        report.add("host key", "pass")
        report.add("auth", "pass", ssh.user)
        outputs: list[str] = []
        before = time.time()
        for script in scripts:
            _, stdout, _ = client.exec_command(script, timeout=timeout)
            outputs.append(stdout.read().decode(errors="replace"))
            if not outputs[-1]:
                break
        after = time.time()
        return outputs, (before + after) / 2
    except (TimeoutError, OSError, paramiko.SSHException) as exc:
        report.add("remote checks", "fail", str(exc) or type(exc).__name__)
        return None
    finally:
        client.close()


def open_client(
    network: Network, address: str, connection: HostConnection | None = None, timeout: float = 15.0
) -> paramiko.SSHClient:
    """An SSH client to a machine preflight has accepted: its key must be in known_hosts already."""
    ssh = network.ssh
    if connection is not None:
        ssh = replace(ssh, user=connection.user, port=connection.port, identity_file=connection.identity_file)
        address = connection.address
    proxy = connection.proxy_for_paramiko() if connection is not None else None
    client = paramiko.SSHClient()
    path = known_hosts_path(network)
    if path.exists():
        client.load_host_keys(str(path))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    key_file = ssh.identity_file
    client.connect(
        address,
        port=ssh.port,
        username=ssh.user,
        key_filename=key_file,
        timeout=timeout,
        banner_timeout=timeout,
        auth_timeout=timeout,
        allow_agent=key_file is None,
        look_for_keys=key_file is None,
        sock=paramiko.ProxyCommand(proxy) if proxy else None,
    )
    return client


def check_host(network: Network, host: Host, known: KnownHosts, timeout: float = 10.0) -> HostReport:
    """Connect to one host and run every check over one session."""
    report = HostReport(host.name, host.address)
    answer = session(network, report, known, [_SCRIPT], timeout, host.connection)
    if answer is not None:
        outputs, now = answer
        _judge(report, host, network, sections(outputs[0]), now)
    return report


def sections(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    current = ""
    for line in text.splitlines():
        if line.startswith("@@"):
            current = line[2:]
            out[current] = []
        elif current:
            out[current].append(line.strip())
    return out


def _judge(report: HostReport, host: Host, network: Network, facts: dict[str, list[str]], now: float) -> None:
    sudo = (facts.get("sudo") or ["no"])[0]
    if sudo == "root":
        report.add("sudo", "pass", "logged in as root")
    elif sudo == "ok":
        report.add("sudo", "pass", "passwordless sudo without a tty")
    else:
        report.add("sudo", "fail", "sudo needs a password or a tty; allow NOPASSWD for the provisioning user")
    judge_system(report, facts, now)
    if host.role is Role.DOMAIN_CONTROLLER:
        _judge_port53(report, facts)


def judge_system(report: HostReport, facts: dict[str, list[str]], now: float) -> None:
    """What every machine provision drives needs: python3, a supported OS, a clock in step."""
    python = [p for p in facts.get("python", []) if p]
    report.add("python3", "pass" if python else "fail", python[0] if python else "python3 is not installed")
    os_line = (facts.get("os") or [""])[0].split()
    os_id = tuple(os_line[:2]) if len(os_line) >= 2 else ("unknown", "")
    if os_id in SUPPORTED:
        report.add("os", "pass", " ".join(os_id))
    else:
        report.add("os", "fail", f"{' '.join(os_id)} is not supported (Debian 12, Ubuntu 22.04/24.04)")
    try:
        offset = float((facts.get("clock") or ["nan"])[0]) - now
    except ValueError:
        offset = float("nan")
    if offset != offset:  # NaN
        report.add("clock", "fail", "could not read the host's clock")
    elif abs(offset) >= CLOCK_FAIL:
        report.add("clock", "fail", f"clock off by {offset:+.0f} s; Kerberos fails past 300 s")
    elif abs(offset) >= CLOCK_WARN:
        report.add("clock", "warn", f"clock off by {offset:+.0f} s")
    else:
        report.add("clock", "pass", f"{offset:+.1f} s")


def _judge_port53(report: HostReport, facts: dict[str, list[str]]) -> None:
    # ss -p lines end in users:(("name",pid=..)); Samba's own DNS (a re-run) is fine.
    lines = [line for line in facts.get("port53", []) if line and not any(n in line for n in _SAMBA_DNS)]
    others = sorted({line.split("users:")[-1] for line in lines})
    if others:
        report.add("port 53", "fail", f"port 53 is taken by {', '.join(others)}; Samba's DNS server needs it")
    else:
        report.add("port 53", "pass")


def preflight(
    network: Network,
    hosts: Sequence[Host] | None = None,
    accept_new_host_keys: bool = False,
    progress: Callable[[int, int, HostReport], None] | None = None,
    workers: int = MAX_WORKERS,
) -> PreflightResult:
    """Check every host concurrently (at most ``workers`` at once)."""
    targets = list(network.hosts if hosts is None else hosts)
    known = KnownHosts(known_hosts_path(network), accept_new_host_keys)
    start = time.monotonic()
    reports: list[HostReport] = []
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(targets)))) as pool:
        futures = {pool.submit(check_host, network, h, known): h for h in targets}
        for done, future in enumerate(as_completed(futures), 1):
            report = future.result()
            reports.append(report)
            if progress is not None:
                progress(done, len(targets), report)
    order = {h.name: i for i, h in enumerate(targets)}
    reports.sort(key=lambda r: order[r.host])
    return PreflightResult(reports, time.monotonic() - start)
