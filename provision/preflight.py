"""SSH preflight with paramiko: is every host ready for Ansible?

One connection per host, one remote script per connection, bounded
concurrency so 500 hosts take about as long as a few dozen. Unknown host keys
are an error unless the caller accepts new ones explicitly; a changed key is
always an error. The same script measures the machine (memory, CPUs, free disk
on the paths its role fills) against provision.requirements, and the OS it runs
against the spec's hosts[].os.
"""

from __future__ import annotations

import shlex
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from pathlib import Path

import paramiko

from provision import requirements
from provision.inventory import known_hosts_file
from provision.model import Host, HostConnection, Network, Role, Ssh
from provision.requirements import MEMORY_TOLERANCE, HostRequirements, Need
from provision.results import Check

CLOCK_WARN = 60.0  # seconds; Kerberos tolerates 300
CLOCK_FAIL = 300.0
# hosts[].os (the schema's enum) -> /etc/os-release's ID and VERSION_ID.
OS_RELEASES: dict[str, tuple[str, str]] = {
    "debian12": ("debian", "12"),
    "ubuntu22.04": ("ubuntu", "22.04"),
    "ubuntu24.04": ("ubuntu", "24.04"),
}
SUPPORTED = set(OS_RELEASES.values())
MAX_WORKERS = 64
# How Samba's own DNS server shows in `ss -p` on a provisioned DC (a re-run is fine).
_SAMBA_DNS = ('"samba"', '"dns[', '"dns"')

# What every machine is asked: python3, the OS, the clock (read last, for the offset).
SYSTEM_SCRIPT = r"""
echo "@@python"; command -v python3 || true
echo "@@os"; . /etc/os-release 2>/dev/null && echo "$ID $VERSION_ID"
echo "@@clock"; date +%s.%N
"""
# The facts of a host's own checks; host_script adds its disk paths and SYSTEM_SCRIPT.
# Memory: MemTotal and the cgroup's limit (v2 memory.max, "max" is none; v1's "none" is a
# huge number): a container sees the host's MemTotal but gets only its limit. CPUs: nproc
# (the CPUs this process may run on) and the cgroup's quota ("max"/-1: none).
_SCRIPT = r"""
echo "@@sudo"; if [ "$(id -u)" = 0 ]; then echo root; elif sudo -n true 2>/dev/null; then echo ok; else echo no; fi
echo "@@port53"; ss -Hlnutp 'sport = :53' 2>/dev/null
echo "@@memory"; sed -n 's/^MemTotal:[[:space:]]*\([0-9][0-9]*\) kB$/meminfo \1/p' /proc/meminfo 2>/dev/null
printf 'cgroup2 %s\n' "$(cat /sys/fs/cgroup/memory.max 2>/dev/null)"
printf 'cgroup1 %s\n' "$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null)"
echo "@@cpus"; printf 'nproc %s\n' "$(nproc 2>/dev/null)"
printf 'cgroup2 %s\n' "$(cat /sys/fs/cgroup/cpu.max 2>/dev/null)"
printf 'cgroup1 %s %s\n' "$(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>/dev/null)" \
  "$(cat /sys/fs/cgroup/cpu/cpu.cfs_period_us 2>/dev/null)"
echo "@@disk"
"""


def disk_script(paths: Sequence[str]) -> str:
    """One line per path: 'INDEX AVAIL_KB MOUNT_POINT' of the filesystem it is (or will be) on.

    A path that does not exist yet (a share before the first apply) is measured at its
    nearest existing parent. The paths come from the validated spec; they are quoted anyway.
    """
    out = []
    for i, path in enumerate(paths):
        if not path.startswith("/"):
            raise ValueError(f"not an absolute path: {path!r}")
        out.append(
            f'p={shlex.quote(path)}; while [ ! -e "$p" ] && [ "$p" != / ]; do p=$(dirname -- "$p"); done; '
            f'printf \'{i} %s\\n\' "$(df -k --output=avail,target -- "$p" 2>/dev/null | tail -n 1)"'
        )
    return "\n".join(out)


def host_script(req: HostRequirements) -> str:
    """The whole script of one host: its checks' facts, its disk paths, the system's (clock last)."""
    return _SCRIPT + disk_script(requirements.measured_paths(req)) + SYSTEM_SCRIPT


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


def _login(network: Network, connection: HostConnection | None) -> Ssh:
    """The spec's ssh settings, or a Vagrant machine's own port, user and key."""
    if connection is None:
        return network.ssh
    return replace(network.ssh, user=connection.user, port=connection.port, identity_file=connection.identity_file)


def _connect(
    client: paramiko.SSHClient, ssh: Ssh, address: str, connection: HostConnection | None, timeout: float
) -> None:
    """Log ``client`` in as ``ssh`` says (through the connection's ProxyCommand, if any)."""
    key_file = ssh.identity_file
    proxy = connection.proxy_for_paramiko() if connection is not None else None
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
    ssh = _login(network, connection)
    address = connection.address if connection is not None else report.address
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(known.policy())
    with known.lock:
        for name, keys in known.keys.items():
            for ktype, key in keys.items():
                client.get_host_keys().add(name, ktype, key)
    try:
        _connect(client, ssh, address, connection, timeout)
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
    client = paramiko.SSHClient()
    path = known_hosts_path(network)
    if path.exists():
        client.load_host_keys(str(path))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    _connect(client, _login(network, connection), connection.address if connection else address, connection, timeout)
    return client


def check_host(network: Network, host: Host, known: KnownHosts, timeout: float = 10.0) -> HostReport:
    """Connect to one host and run every check over one session."""
    report = HostReport(host.name, host.address)
    req = requirements.for_host(network, host)
    answer = session(network, report, known, [host_script(req)], timeout, host.connection)
    if answer is not None:
        outputs, now = answer
        facts = sections(outputs[0])
        _judge(report, host, network, facts, now)
        judge_resources(report, req, facts)
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
    judge_system(report, facts, now, expected_os=host.os)
    if host.role is Role.DOMAIN_CONTROLLER:
        _judge_port53(report, facts)


def judge_system(report: HostReport, facts: dict[str, list[str]], now: float, expected_os: str | None = None) -> None:
    """What every machine provision drives needs: python3, a supported OS, a clock in step.

    ``expected_os`` is a host's hosts[].os: the host must run exactly that release (the
    playbooks' package names and versions follow it). Execution nodes pass None: any
    supported release does.
    """
    python = [p for p in facts.get("python", []) if p]
    report.add("python3", "pass" if python else "fail", python[0] if python else "python3 is not installed")
    _judge_os(report, facts, expected_os)
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


def _judge_os(report: HostReport, facts: dict[str, list[str]], expected: str | None) -> None:
    os_line = (facts.get("os") or [""])[0].split()
    os_id = (os_line[0], os_line[1]) if len(os_line) >= 2 else ("unknown", "")
    running = " ".join(os_line) or "unknown"
    supported = "provision supports Debian 12, Ubuntu 22.04/24.04"
    if expected is None:
        if os_id in SUPPORTED:
            report.add("os", "pass", running)
        else:
            report.add("os", "fail", f"{running} is not supported ({supported})")
    elif OS_RELEASES.get(expected) == os_id:
        report.add("os", "pass", f"{running} (spec: {expected})")
    elif os_id in SUPPORTED:
        spec_value = next(k for k, v in OS_RELEASES.items() if v == os_id)
        report.add("os", "fail", f"spec says {expected}, host runs {running}; set os: {spec_value} or reinstall it")
    else:
        report.add("os", "fail", f"spec says {expected}, host runs {running} ({supported})")


def _mb(kib: float) -> str:
    return f"{kib / 1024:.0f} MB"


def _gb(kib: float) -> str:
    return f"{kib / 1024 / 1024:.1f} GB"


def _status(have: float, need: Need, tolerance: float = 1.0) -> str:
    if have < need.minimum * tolerance:
        return "fail"
    return "warn" if have < need.recommended * tolerance else "pass"


def memory_kib(lines: Sequence[str]) -> tuple[int, str] | None:
    """Usable memory in KiB from the @@memory section, and where it comes from; None: unreadable.

    The smaller of MemTotal and the cgroup's limit (v2 'max' and v1's near-2**63 mean none).
    """
    total: int | None = None
    limit: int | None = None
    for line in lines:
        key, _, value = line.partition(" ")
        value = value.strip()
        if not value.isdigit():
            continue
        if key == "meminfo":
            total = int(value)
        elif key in ("cgroup2", "cgroup1"):
            kib = int(value) // 1024
            limit = kib if limit is None else min(limit, kib)
    if total is None:
        return None
    if limit is not None and limit < total:
        return limit, "cgroup limit"
    return total, "MemTotal"


def cpu_count(lines: Sequence[str]) -> tuple[float, str] | None:
    """CPUs the host's processes may use, from the @@cpus section; None: unreadable.

    nproc (online CPUs in the affinity mask), capped by a cgroup CPU quota (quota/period,
    which may be fractional: 150000/100000 is 1.5 CPUs).
    """
    count: float | None = None
    quota: float | None = None
    for line in lines:
        key, *values = line.split()
        if key == "nproc" and values and values[0].isdigit():
            count = float(values[0])
        elif key in ("cgroup2", "cgroup1") and len(values) == 2 and all(v.isdigit() for v in values):
            period = int(values[1])  # "max 100000" and "-1 100000" are not digits: no quota
            q = int(values[0]) / period if period > 0 else None
            if q is not None:
                quota = q if quota is None else min(quota, q)
    if count is None or count < 1:
        return None
    if quota is not None and quota < count:
        return quota, "cgroup CPU quota"
    return count, "nproc"


def judge_resources(report: HostReport, req: HostRequirements, facts: dict[str, list[str]]) -> None:
    """The memory, cpus and disk checks of a host: fail below the minimum, warn below the recommendation.

    Memory counts with MEMORY_TOLERANCE: a machine with the minimum installed shows a little
    less in MemTotal.
    """
    memory = memory_kib(facts.get("memory", []))
    if memory is None:
        report.add("memory", "fail", "could not read the host's memory (/proc/meminfo)")
    else:
        kib, source = memory
        seen = _mb(kib) + ("" if source == "MemTotal" else f" ({source})")
        status = _status(kib / 1024, req.memory_mb, MEMORY_TOLERANCE)
        report.add("memory", status, _figures(req, "memory_mb", seen, req.memory_mb, " MB", status))
    cpus = cpu_count(facts.get("cpus", []))
    if cpus is None:
        report.add("cpus", "fail", "could not count the host's CPUs (nproc)")
    else:
        count, source = cpus
        seen = f"{count:g} CPU(s)" + ("" if source == "nproc" else f" ({source})")
        status = _status(count, req.cpus)
        report.add("cpus", status, _figures(req, "cpus", seen, req.cpus, "", status))
    _judge_disk(report, req, facts.get("disk", []))


def _figures(req: HostRequirements, key: str, seen: str, need: Need, unit: str, status: str) -> str:
    """'1024 MB: below the 2048 MB a domain_controller needs (4096 recommended); ...'."""
    whose = "the spec's hosts[].requirements" if key in req.overridden else f"a {req.role.value}"
    if status == "fail":
        return (
            f"{seen}: below the {need.minimum}{unit} minimum of {whose} ({need.recommended}{unit} recommended); "
            f"add more, or lower hosts[].requirements.{key}"
        )
    if status == "warn":
        return f"{seen}: below the {need.recommended}{unit} recommended for {whose} (minimum {need.minimum}{unit})"
    return f"{seen} (minimum {need.minimum}{unit}, recommended {need.recommended}{unit} for {whose})"


def free_space(lines: Sequence[str]) -> dict[int, tuple[int, str]]:
    """The @@disk section: path index -> (free KiB, mount point); unmeasured paths are missing."""
    out: dict[int, tuple[int, str]] = {}
    for line in lines:
        parts = line.split(None, 2)
        if len(parts) == 3 and parts[0].isdigit() and parts[1].isdigit():
            out[int(parts[0])] = (int(parts[1]), parts[2])
    return out


def _judge_disk(report: HostReport, req: HostRequirements, lines: Sequence[str]) -> None:
    """One check for every path; paths on one filesystem add up (they fill the same space)."""
    measured = free_space(lines)
    unmeasured = [d.path for i, d in enumerate(req.disk) if i not in measured]
    by_fs: dict[str, tuple[int, list[str], int, int]] = {}  # mount -> free KiB, paths, min GB, rec GB
    for i, d in enumerate(req.disk):
        if i not in measured:
            continue
        free, mount = measured[i]
        _, paths, low, rec = by_fs.get(mount, (free, [], 0, 0))
        by_fs[mount] = (free, [*paths, d.path], low + d.gb.minimum, rec + d.gb.recommended)
    gib = 1024 * 1024
    short: list[str] = []
    worst = "pass"
    texts: list[str] = []
    for mount, (free, paths, low, rec) in by_fs.items():
        status = _status(free / gib, Need(low, rec))
        text = f"{', '.join(paths)} on {mount}: {_gb(free)} free, needs {low} GB ({rec} recommended)"
        texts.append(text)
        if status != "pass":
            short.append(text)
            if worst != "fail":
                worst = status
    if unmeasured:
        report.add("disk", "fail", "; ".join([f"could not measure free space of {', '.join(unmeasured)}", *short]))
    elif worst == "fail":
        report.add(
            "disk",
            "fail",
            "too little free disk: " + "; ".join(short) + "; free space or lower hosts[].requirements.disk_gb",
        )
    elif worst == "warn":
        report.add("disk", "warn", "below the recommended free disk: " + "; ".join(short))
    else:
        report.add("disk", "pass", "; ".join(texts))


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
