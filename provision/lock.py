"""One run at a time per network: a lock on the controller and one on the network's anchor host.

``apply``, ``drift`` and ``restore`` change or judge the whole network; two of them
interleaving (two operators, two terminals, a cron job and a human) leave it half one
run's and half the other's. So a run takes two locks:

* on the controller, an ``flock`` on ``<state dir>/run.lock``: the kernel releases it
  when the process dies, however it dies, so a killed run never blocks the next one;
  the holder record written into the file tells the next run who held it, and that
  the holder ended without releasing (killed?);
* on the anchor host (the first DC, or the first peer of a workgroup), a record in
  ``/run/provision-lock/<network>.lock`` (root's, 0600, on a tmpfs: a reboot clears
  it), created and removed under ``flock`` on a guard file, over one SSH connection
  kept for the run, so that two *controllers* cannot interleave either. A background
  thread rewrites the record every 20 s; a record whose heartbeat is older than 90 s
  (by the anchor's own clock, so the controllers' clocks do not matter) is stale.

A stale or dead holder is reported, never silently taken over: ``force_unlock`` breaks
it, and refuses to break a live one (stop that run instead). Release removes the
remote record only if it is still ours (a random token), and happens on exceptions
and Ctrl-C too.
"""

from __future__ import annotations

import fcntl
import getpass
import json
import os
import re
import secrets as token_source
import shlex
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import paramiko

from provision import errors, preflight
from provision.errors import ProvisionError
from provision.model import Host, Mode, Network, Role
from provision.paths import state_dir

REMOTE_DIR = "/run/provision-lock"  # on the anchor host; /run is a tmpfs
POLL_SECONDS = 2.0  # how often a waiting run looks again
HEARTBEAT_SECONDS = 20.0  # how often a holder refreshes its remote record
STALE_SECONDS = 90.0  # a remote record older than this has lost its holder
SCRIPT_TIMEOUT = 30.0  # one lock operation on the anchor host
GUARD_TIMEOUT = 20  # seconds a lock operation waits for another one on the same host
RECORD_VERSION = 1

# Exit codes of the remote script (0: done).
_HELD = 10  # someone else's record is there (printed)
_NOT_OURS = 11  # the record is no longer ours: broken by someone, maybe retaken (printed if any)
_NO_FLOCK = 93


class LockError(ProvisionError):
    """The run lock could not be taken (anchor unreachable, sudo refused); nothing was changed."""

    exit_code = errors.EXIT_PREFLIGHT


class LockedError(LockError):
    """Another run holds the network's lock (or its stale lock is still there)."""

    def __init__(self, message: str, holder: Holder | None, where: str, stale: bool = False) -> None:
        super().__init__(message)
        self.holder = holder
        self.where = where  # "this controller" or the anchor host, e.g. "dc1 (10.0.0.1)"
        self.stale = stale


@dataclass(frozen=True, slots=True)
class Holder:
    """Who holds (or held) a lock: enough to find the run, and to tell a recycled pid from it."""

    network: str
    command: str  # e.g. "apply --limit ws1"
    user: str
    host: str  # the controller's hostname
    pid: int
    pid_start: int | None  # field 22 of /proc/<pid>/stat: a recycled pid has another
    boot_id: str  # /proc/sys/kernel/random/boot_id: pids are only comparable within one boot...
    pid_ns: str  # ...and one pid namespace (two controller containers share the boot id)
    started: str  # UTC ISO, when the lock was taken
    token: str  # random: release and heartbeat touch only the record that carries it
    heartbeat: str = ""  # UTC ISO of the last heartbeat (remote records)
    version: int = RECORD_VERSION

    @classmethod
    def mine(cls, network: str, command: str) -> Holder:
        now = _utc_now()
        return cls(
            network=network,
            command=command,
            user=_user(),
            host=socket.gethostname(),
            pid=os.getpid(),
            pid_start=process_start(os.getpid()),
            boot_id=_boot_id(),
            pid_ns=_pid_ns(),
            started=now,
            token=token_source.token_hex(16),
            heartbeat=now,
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Holder | None:
        """A record read back (possibly damaged or written by another version): None if unusable."""
        try:
            raw = json.loads(text)
        except ValueError:
            return None
        if not isinstance(raw, dict):
            return None

        def text_of(key: str) -> str:
            value = raw.get(key, "")
            return _printable(value) if isinstance(value, str) else ""

        pid = raw.get("pid")
        start = raw.get("pid_start")
        if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
            return None
        return cls(
            network=text_of("network"),
            command=text_of("command"),
            user=text_of("user") or "?",
            host=text_of("host") or "?",
            pid=pid,
            pid_start=start if isinstance(start, int) and not isinstance(start, bool) else None,
            boot_id=text_of("boot_id"),
            pid_ns=text_of("pid_ns"),
            started=text_of("started") or "?",
            token=text_of("token"),
            heartbeat=text_of("heartbeat"),
        )

    def who(self) -> str:
        """``alice@ctl (pid 1234, `apply --limit ws1`)``."""
        return f"{self.user}@{self.host} (pid {self.pid}, `{self.command}`)"

    def on_this_machine(self) -> bool:
        """Whether its pid means the same process here: same boot of the same kernel, same pid namespace."""
        return bool(self.boot_id) and self.boot_id == _boot_id() and self.pid_ns == _pid_ns()

    def alive(self) -> bool | None:
        """True: that run is still running here; False: it certainly is not; None: cannot tell (elsewhere)."""
        if not self.on_this_machine():
            return None
        return process_alive(self.pid, self.pid_start)


@dataclass(frozen=True, slots=True)
class Broken:
    """A lock ``force_unlock`` broke."""

    where: str
    holder: Holder
    heartbeat_age: float | None  # seconds, remote locks

    def describe(self) -> str:
        beat = f", last heartbeat {_ago(self.heartbeat_age)} ago" if self.heartbeat_age is not None else ""
        h = self.holder
        return f"broke the lock of '{h.network}' on {self.where}: {h.who()} since {h.started}{beat}"


@dataclass
class LockInfo:
    """What taking the lock found, and what happened to it during the run.

    ``notes()`` after entering: the dead previous run, the locks broken (print as warnings).
    ``problems`` after leaving: heartbeat failures, a lock broken under us, a failed release.
    """

    network: str
    holder: Holder  # ours
    anchor: str | None = None  # where the remote lock is, e.g. "dc1 (10.0.0.1)"; None: remote=False
    previous: Holder | None = None  # the controller record of a run that ended without releasing
    broken: list[Broken] = field(default_factory=list)
    waited: float = 0.0  # seconds spent waiting for another run
    problems: list[str] = field(default_factory=list)  # appended by the heartbeat thread and the release
    lost: str | None = None  # set when the remote lock stopped being ours during the run

    def notes(self) -> list[str]:
        out = []
        if self.previous is not None:
            p = self.previous
            out.append(
                f"the previous run of '{self.network}' on this controller ({p.user}, pid {p.pid}, "
                f"`{p.command}`, started {p.started}) ended without releasing its lock: killed?"
            )
        out.extend(b.describe() for b in self.broken)
        return out


# --- the remote side ---------------------------------------------------------------------


class Transport(Protocol):
    """Runs a shell script as root on the anchor host: (exit status, stdout, stderr)."""

    label: str  # the host, for messages: "dc1 (10.0.0.1)"

    def run(self, script: str) -> tuple[int, str, str]: ...

    def close(self) -> None: ...


class LocalShell:
    """The remote side run by the local ``sh`` (tests; a controller that is its own anchor)."""

    def __init__(self, label: str = "localhost", timeout: float = SCRIPT_TIMEOUT) -> None:
        self.label = label
        self.timeout = timeout

    def run(self, script: str) -> tuple[int, str, str]:
        proc = subprocess.run(
            ["sh", "-c", script], capture_output=True, text=True, timeout=self.timeout, stdin=subprocess.DEVNULL
        )
        return proc.returncode, proc.stdout, proc.stderr

    def close(self) -> None:
        pass


class SshTransport:
    """Scripts over one SSH connection kept for the run, as root (``sudo -n`` unless logged in as root).

    ``connect`` makes the client; it is called on first use and again after the
    connection broke, so a network blip costs a heartbeat, not the lock.
    """

    def __init__(
        self, connect: Callable[[], paramiko.SSHClient], sudo: bool, label: str, timeout: float = SCRIPT_TIMEOUT
    ) -> None:
        self.connect = connect
        self.sudo = sudo
        self.label = label
        self.timeout = timeout
        self.client: paramiko.SSHClient | None = None
        self.mutex = threading.Lock()  # the heartbeat thread and the main thread

    def command(self, script: str) -> str:
        """The command line the login shell runs."""
        inner = f"sh -c {shlex.quote(script)}"
        return f"sudo -n {inner}" if self.sudo else inner

    def run(self, script: str) -> tuple[int, str, str]:
        with self.mutex:
            if self.client is None:
                self.client = self.connect()
                transport = self.client.get_transport()
                if transport is not None:
                    transport.set_keepalive(15)  # NAT and firewalls drop idle connections
            try:
                stdin, stdout, stderr = self.client.exec_command(self.command(script), timeout=self.timeout)
                stdin.channel.shutdown_write()
                out = stdout.read().decode(errors="replace")
                err = stderr.read().decode(errors="replace")
                return stdout.channel.recv_exit_status(), out, err
            except (OSError, paramiko.SSHException):
                self.client.close()
                self.client = None
                raise

    def close(self) -> None:
        with self.mutex:
            if self.client is not None:
                self.client.close()
                self.client = None


def anchor_host(network: Network) -> Host:
    """The host every run of the network locks: the first DC, or the first peer of a workgroup."""
    if network.mode is Mode.DOMAIN and network.domain is not None and network.domain.dcs:
        with suppress(KeyError):
            return network.host(network.domain.dcs[0])
    for host in network.hosts:
        if host.role is (Role.DOMAIN_CONTROLLER if network.mode is Mode.DOMAIN else Role.PEER):
            return host
    raise LockError(f"network '{network.name}' has no {'DC' if network.mode is Mode.DOMAIN else 'peer'} to lock on")


def ssh_transport(network: Network, timeout: float = 15.0) -> SshTransport:
    """An SSH transport to the anchor host, connected now so an unreachable anchor fails here."""
    host = anchor_host(network)
    user = host.connection.user if host.connection is not None else network.ssh.user
    label = f"{host.name} ({host.address})"

    def connect() -> paramiko.SSHClient:
        return preflight.open_client(network, host.address, host.connection, timeout=timeout)

    out = SshTransport(connect, sudo=user != "root", label=label)
    try:
        out.client = connect()
    except (OSError, paramiko.SSHException) as exc:
        raise LockError(
            f"cannot take the run lock of '{network.name}' on {label}, its anchor host: "
            f"{_printable(str(exc)) or type(exc).__name__}; the lock keeps two controllers from "
            "running on the network at once, so nothing was changed"
        ) from None
    return out


# Runs as root on the anchor host. Every change to a record happens under flock on the
# guard file, so check-then-act (is it ours? then remove) is atomic between runs.
_SCRIPT = r"""
set -u
umask 077
lock="$base/$name.lock"
command -v flock >/dev/null 2>&1 || { echo "flock(1) is not installed (package util-linux)" >&2; exit 93; }
if [ -L "$base" ] || { [ -e "$base" ] && [ ! -d "$base" ]; }; then echo "$base is not a directory" >&2; exit 90; fi
mkdir -p "$base" && chmod 700 "$base" || exit 90
exec 9>>"$base/.guard" || exit 90
flock -w "$guard" 9 || { echo "another lock operation in $base did not finish within $guard s" >&2; exit 91; }
if [ -L "$lock" ] || { [ -e "$lock" ] && [ ! -f "$lock" ]; }; then echo "$lock is not a regular file" >&2; exit 90; fi
show() {
  echo "@@age $(( $(date +%s) - $(stat -c %Y "$lock") ))"
  echo "@@record"
  cat "$lock"
}
has() { grep -qF "\"token\": \"$1\"" "$lock" 2>/dev/null; }
put() { printf '%s\n' "$rec" > "$lock.new" && mv -f "$lock.new" "$lock"; }
case "$op" in
  take) if [ -e "$lock" ]; then show; exit 10; fi; put || exit 92 ;;
  steal) if [ -e "$lock" ] && ! has "$expect"; then show; exit 10; fi; put || exit 92 ;;
  beat) if ! has "$tok"; then if [ -e "$lock" ]; then show; fi; exit 11; fi; put || exit 92 ;;
  release) if ! has "$tok"; then if [ -e "$lock" ]; then show; fi; exit 11; fi; rm -f "$lock" ;;
  *) exit 95 ;;
esac
exit 0
"""


@dataclass(frozen=True, slots=True)
class _Seen:
    holder: Holder | None  # None: a record nobody can read
    age: float  # seconds since its last heartbeat, by the anchor's clock
    raw: str


class RemoteLock:
    """The network's record on the anchor host, kept fresh by a heartbeat thread while held."""

    def __init__(
        self,
        transport: Transport,
        me: Holder,
        directory: str = REMOTE_DIR,
        stale_after: float = STALE_SECONDS,
    ) -> None:
        self.transport = transport
        self.me = me
        self.directory = directory
        self.stale_after = stale_after
        self.held = False
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None

    @property
    def where(self) -> str:
        return self.transport.label

    def script(self, op: str, record: Holder | None = None, expect: str = "") -> str:
        values = {
            "base": self.directory,
            "name": self.me.network,
            "op": op,
            "tok": self.me.token,
            "expect": expect,
            "rec": (record or self.me).to_json(),
            "guard": str(GUARD_TIMEOUT),
        }
        return "".join(f"{k}={shlex.quote(v)}\n" for k, v in values.items()) + _SCRIPT

    def _run(self, op: str, record: Holder | None = None, expect: str = "") -> tuple[int, _Seen | None]:
        try:
            rc, out, err = self.transport.run(self.script(op, record, expect))
        except (OSError, paramiko.SSHException, subprocess.SubprocessError) as exc:
            raise LockError(
                f"cannot reach {self.where} to {op} the run lock of '{self.me.network}': "
                f"{_printable(str(exc)) or type(exc).__name__}"
            ) from None
        if rc not in (0, _HELD, _NOT_OURS):
            detail = _printable(err or out) or f"exit status {rc}"
            if "password is required" in detail or "a terminal is required" in detail:
                detail += " (the lock needs passwordless sudo, as the run does)"
            raise LockError(f"the run lock of '{self.me.network}' on {self.where} failed ({op}): {detail}")
        return rc, _parse_seen(out)

    def acquire(self, deadline: float, poll: float, force: bool) -> list[Broken]:
        """Take the lock, waiting until ``deadline`` (monotonic); break a stale one if ``force``."""
        broken: list[Broken] = []
        while True:
            rc, seen = self._run("take")
            if rc == 0 or (seen is not None and seen.holder is not None and seen.holder.token == self.me.token):
                self.held = True  # the second case: our own record, the first reply was lost
                return broken
            dead = seen is not None and seen.holder is not None and seen.holder.alive() is False
            stale = seen is not None and (seen.age >= self.stale_after or dead or seen.holder is None)
            if force and seen is not None and seen.holder is not None and stale:
                # Break exactly the record judged stale: if it changed hands meanwhile, look again.
                rc, _ = self._run("steal", expect=seen.holder.token)
                if rc == 0:
                    broken.append(Broken(self.where, seen.holder, seen.age))
                    self.held = True
                    return broken
                continue
            if time.monotonic() >= deadline:
                raise self._locked(seen, stale, dead, force)
            time.sleep(max(0.0, min(poll, deadline - time.monotonic())))

    def _locked(self, seen: _Seen | None, stale: bool, dead: bool, force: bool) -> LockedError:
        net = self.me.network
        if seen is None or seen.holder is None:
            # Only a hand-edited record is unreadable (records are written whole, then renamed).
            raw = _printable(seen.raw if seen is not None else "")[:200]
            return LockedError(
                f"network '{net}' is locked on {self.where} by a record that cannot be read "
                f"({self.directory}/{net}.lock: {raw!r}); look at it, remove it by hand and run again",
                None,
                self.where,
                True,
            )
        h, age = seen.holder, seen.age
        head = f"network '{net}' is locked on {self.where} by {h.who()} since {h.started}"
        if force and not stale:
            return LockedError(
                f"--force-unlock refused: {head}, and its heartbeat is {_ago(age)} old: that run is alive; "
                f"stop it on {h.host} (kill {h.pid}) or let it finish",
                h,
                self.where,
            )
        if dead:
            return LockedError(
                f"{head}; last heartbeat {_ago(age)} ago, but that run (pid {h.pid}) is no longer alive "
                "on this controller: killed?; break it with --force-unlock",
                h,
                self.where,
                True,
            )
        if stale:
            return LockedError(
                f"{head}; last heartbeat {_ago(age)} ago: stale (a killed run?); break it with --force-unlock",
                h,
                self.where,
                True,
            )
        return LockedError(f"{head} (heartbeat {_ago(age)} ago)", h, self.where)

    def start_heartbeat(self, interval: float, info: LockInfo) -> None:
        self.thread = threading.Thread(
            target=self._beat, args=(interval, info), name=f"lock-heartbeat-{self.me.network}", daemon=True
        )
        self.thread.start()

    def _beat(self, interval: float, info: LockInfo) -> None:
        failing_since: str | None = None
        while not self.stop.wait(interval):
            try:
                rc, seen = self._run("beat", replace(self.me, heartbeat=_utc_now()))
            except LockError as exc:
                if failing_since is None:
                    failing_since = _utc_now()
                    info.problems.append(
                        f"heartbeat of the run lock on {self.where} failed at {failing_since}: {exc}; "
                        f"after {_ago(self.stale_after)} without one another run may break the lock"
                    )
                continue
            if rc == _NOT_OURS:
                self.held = False
                by = f"; now held by {seen.holder.who()}" if seen is not None and seen.holder is not None else ""
                info.lost = f"the run lock of '{self.me.network}' on {self.where} was broken during this run{by}"
                info.problems.append(info.lost)
                return
            if failing_since is not None:
                info.problems.append(
                    f"heartbeat of the run lock on {self.where} works again (failing since {failing_since})"
                )
                failing_since = None

    def release(self, info: LockInfo) -> None:
        """Stop the heartbeat and remove the record if it is still ours; failures go to ``info.problems``."""
        self.stop.set()
        if self.thread is not None:
            self.thread.join(timeout=SCRIPT_TIMEOUT + 5)
        if not self.held:
            return
        try:
            rc, seen = self._run("release")
        except LockError as exc:
            info.problems.append(
                f"could not release the run lock on {self.where}: {exc}; the next run will find it stale "
                f"after {_ago(self.stale_after)} (break it with --force-unlock)"
            )
            return
        self.held = False
        if rc == _NOT_OURS and info.lost is None:
            by = f" (now held by {seen.holder.who()})" if seen is not None and seen.holder is not None else ""
            info.problems.append(
                f"the run lock of '{self.me.network}' on {self.where} was no longer ours at release{by}; left it"
            )


def _parse_seen(out: str) -> _Seen | None:
    if "@@record\n" not in out:
        return None
    head, raw = out.split("@@record\n", 1)
    found = re.search(r"@@age (-?\d+)", head)
    age = max(0.0, float(found.group(1))) if found else 0.0
    return _Seen(Holder.from_json(raw.strip()), age, raw)


# --- the controller side -----------------------------------------------------------------


class ControllerLock:
    """``flock`` on ``run.lock`` in the network's state dir, with the holder's record in the file.

    The file is never removed (only emptied): removing it would let a second run lock a
    new file while the first still holds the old one.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = None
        self.old = ""  # the record found when taking it

    def acquire(self, me: Holder, deadline: float, poll: float, force: bool) -> Holder | None:
        """Take it, waiting until ``deadline``; returns the record of a run that ended without releasing."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)  # not inherited by ansible
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                if time.monotonic() >= deadline:
                    raise self._locked(me.network, force) from None
                time.sleep(max(0.0, min(poll, deadline - time.monotonic())))
                continue
            try:
                same = os.fstat(fd).st_ino == self.path.stat().st_ino
            except FileNotFoundError:
                same = False
            if not same:  # removed or replaced by hand between open and flock: lock the file that is there
                os.close(fd)
                continue
            break
        old = self.old = _read_fd(fd)
        os.ftruncate(fd, 0)
        os.pwrite(fd, (me.to_json() + "\n").encode(), 0)
        os.fsync(fd)
        self.fd = fd
        previous = Holder.from_json(old) if old.strip() else None
        if previous is not None and previous.alive() is not True:
            return previous
        return None

    def holder(self) -> Holder | None:
        """The record of whoever holds it (a new holder may not have written its record yet)."""
        found: Holder | None = None
        for _ in range(10):
            try:
                found = Holder.from_json(self.path.read_text())
            except OSError:
                found = None
            if found is not None and found.alive() is not False:
                return found
            time.sleep(0.1)
        return found

    def _locked(self, network: str, force: bool) -> LockedError:
        h = self.holder()
        where = "this controller"
        if h is None:
            head = (
                f"network '{network}' is locked on this controller by a run that has not said who it is ({self.path})"
            )
            return LockedError(f"--force-unlock refused: {head}" if force else head, None, where)
        head = f"network '{network}' is locked on this controller by {h.who()} since {h.started}"
        if force:
            return LockedError(
                f"--force-unlock refused: {head}; it is a live process (the kernel releases this lock when "
                f"it ends): stop it (kill {h.pid}) or let it finish",
                h,
                where,
            )
        return LockedError(head, h, where)

    def release(self, ran: bool = True) -> None:
        """Give it back: emptied after a run; with the record found in it when no run happened
        (the remote lock was refused), so the next attempt still reports the dead run."""
        if self.fd is None:
            return
        with suppress(OSError):
            os.ftruncate(self.fd, 0)
            if not ran and self.old:
                os.pwrite(self.fd, self.old.encode(), 0)
        os.close(self.fd)  # closing the last descriptor releases the flock
        self.fd = None


def lock_path(network: Network) -> Path:
    return state_dir(network) / "run.lock"


@contextmanager
def network_lock(
    network: Network,
    command: str,
    *,
    wait: float = 0,
    force_unlock: bool = False,
    remote: bool = True,
    transport: Transport | None = None,
    remote_dir: str = REMOTE_DIR,
    poll: float = POLL_SECONDS,
    heartbeat: float = HEARTBEAT_SECONDS,
    stale_after: float = STALE_SECONDS,
) -> Iterator[LockInfo]:
    """Hold the network's run lock for the ``with`` block: on the controller, and on the anchor host.

    ``wait``: seconds to wait for another run (0: fail at once with LockedError naming it).
    ``force_unlock``: break a stale or dead holder's lock (never a live one's); what was
    broken is in ``LockInfo.broken``. ``remote=False``: the controller lock only.
    ``transport``: how to reach the anchor (default: SSH as preflight does; the caller's
    transport is not closed here). Released on leaving, also on exceptions and Ctrl-C.
    """
    me = Holder.mine(network.name, command)
    info = LockInfo(network.name, me)
    begin = time.monotonic()
    deadline = begin + max(0.0, wait)
    local = ControllerLock(lock_path(network))
    theirs = transport is not None
    far: RemoteLock | None = None
    ran = False
    try:
        info.previous = local.acquire(me, deadline, poll, force_unlock)
        if remote:
            if transport is None:
                transport = ssh_transport(network)
            far = RemoteLock(transport, me, remote_dir, stale_after)
            info.broken = far.acquire(deadline, poll, force_unlock)
            info.anchor = transport.label
            far.start_heartbeat(heartbeat, info)
        info.waited = time.monotonic() - begin
        ran = True
        yield info
    finally:
        try:
            if far is not None:
                far.release(info)
        finally:
            if transport is not None and not theirs:
                transport.close()
            local.release(ran)


# --- processes ----------------------------------------------------------------------------


def process_start(pid: int) -> int | None:
    """When ``pid`` started (clock ticks since boot), or None when /proc does not say."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # "pid (comm) state ppid ...": comm may hold spaces and parentheses; field 22 is starttime.
    fields = stat.rsplit(")", 1)[-1].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def process_alive(pid: int, start: int | None) -> bool:
    """Whether the process ``pid`` that started at ``start`` still runs (a recycled pid does not count)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: it exists
    except (OSError, OverflowError):
        return False
    if start is None:
        return True
    now = process_start(pid)
    return now is None or now == start  # None: /proc hidden (hidepid): it exists, assume it is the one


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _pid_ns() -> str:
    try:
        return str(Path("/proc/self/ns/pid").readlink())
    except OSError:
        return ""


def _user() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    sudo_user = os.environ.get("SUDO_USER")
    return f"{sudo_user} (as {user})" if sudo_user and sudo_user != user else user


def _read_fd(fd: int) -> str:
    chunks = []
    offset = 0
    while chunk := os.pread(fd, 65536, offset):
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks).decode(errors="replace")


def _utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ago(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    s = round(seconds)
    if s < 600:
        return f"{s} s"
    if s < 7200:
        return f"{s // 60} min"
    if s < 172800:
        return f"{s // 3600} h"
    return f"{s // 86400} days"


def _printable(text: Any) -> str:
    """Record fields and remote output fit for a message: no control characters, bounded."""
    out = "".join(c if c.isprintable() else "?" for c in str(text).strip())
    return out if len(out) <= 500 else out[:500] + "..."
