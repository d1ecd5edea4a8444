"""provision.lock: one run at a time per network, on the controller and on the anchor host.

The controller lock is a real flock in tmp_path (XDG_STATE_HOME); other runs are real
processes (python -c), killed with SIGKILL where a killed run is the point. The remote
lock runs its real script through the local ``sh`` on a lock directory in tmp_path.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from provision import lock
from provision.errors import EXIT_PREFLIGHT, ProvisionError
from provision.lock import (
    Holder,
    LocalShell,
    LockedError,
    LockError,
    SshTransport,
    anchor_host,
    network_lock,
    process_alive,
    process_start,
    ssh_transport,
)
from provision.model import Domain, Host, HostConnection, Mode, Network, Role, SecretRef, Ssh

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import sys, time
from provision.lock import LocalShell, network_lock
from provision.model import Host, Mode, Network, Role
net = Network(name="acme", mode=Mode.WORKGROUP, subnets=("10.0.0.0/24",), hosts=(Host("pc1", "10.0.0.1", Role.PEER),))
remote_dir, hold = sys.argv[1], float(sys.argv[2])
kw = {"transport": LocalShell(), "remote_dir": remote_dir} if remote_dir else {"remote": False}
with network_lock(net, "apply --limit pc1", **kw):
    print("ready", flush=True)
    time.sleep(hold)
"""


def workgroup() -> Network:
    return Network(
        name="acme",
        mode=Mode.WORKGROUP,
        subnets=("10.0.0.0/24",),
        hosts=(Host("pc1", "10.0.0.1", Role.PEER), Host("pc2", "10.0.0.2", Role.PEER)),
    )


@pytest.fixture
def net(own_state: Path) -> Network:
    return workgroup()


@pytest.fixture
def rdir(tmp_path: Path) -> str:
    return str(tmp_path / "remote" / "provision-lock")


def start_holder(remote_dir: str = "", hold: float = 60.0) -> subprocess.Popen[str]:
    """Another run, in another process, that holds the lock until it ends (or is killed)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, remote_dir, str(hold)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if line.strip() != "ready":
        proc.kill()
        _, err = proc.communicate()
        pytest.fail(f"the holder did not start: {line!r} {err}")
    return proc


def kill(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)


def other_record(network: str = "acme", **changes: object) -> Holder:
    """A record of a run on another controller (its pid means nothing here)."""
    base = Holder(
        network=network,
        command="drift",
        user="bob",
        host="ctl2",
        pid=4242,
        pid_start=1000,
        boot_id="00000000-0000-0000-0000-000000000000",
        pid_ns="pid:[1]",
        started="2030-01-01T00:00:00Z",
        token="f" * 32,
        heartbeat="2030-01-01T00:00:00Z",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def ages(message: str) -> tuple[str, list[int]]:
    """The message with its heartbeat ages as N, and the ages (a second may tick during a test)."""
    found = [int(n) for n in re.findall(r"(\d+) s (?:ago|old)", message)]
    return re.sub(r"\d+ s (ago|old)", r"N s \1", message), found


def plant(rdir: str, holder: Holder, age: float = 0.0) -> Path:
    path = Path(rdir) / f"{holder.network}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(holder.to_json() + "\n")
    then = time.time() - age
    os.utime(path, (then, then))
    return path


# --- the controller lock ------------------------------------------------------------------


def test_second_run_in_the_same_process_is_refused_naming_the_first(net: Network) -> None:
    with network_lock(net, "apply --limit pc1", remote=False) as info:
        assert info.holder.pid == os.getpid()
        with pytest.raises(LockedError) as caught, network_lock(net, "drift", remote=False):
            pytest.fail("the second run got the lock")
    message = str(caught.value)
    assert f"pid {os.getpid()}, `apply --limit pc1`" in message
    assert "network 'acme' is locked on this controller by" in message
    assert caught.value.holder is not None and caught.value.holder.command == "apply --limit pc1"
    assert caught.value.exit_code == EXIT_PREFLIGHT
    assert isinstance(caught.value, ProvisionError)


def test_second_run_in_another_process_is_refused_naming_its_pid(net: Network) -> None:
    proc = start_holder()
    try:
        started = time.monotonic()
        with pytest.raises(LockedError) as caught, network_lock(net, "drift", remote=False):
            pytest.fail("the second run got the lock")
        assert time.monotonic() - started < 1.5  # wait=0: at once
        assert f"(pid {proc.pid}, `apply --limit pc1`) since " in str(caught.value)
    finally:
        kill(proc)


def test_wait_gets_the_lock_when_the_first_run_releases(net: Network) -> None:
    proc = start_holder(hold=1.0)
    try:
        with network_lock(net, "drift", wait=3, remote=False) as info:
            assert proc.wait(5) == 0  # it ended, having released
            assert 0.5 <= info.waited <= 3.5
            assert info.previous is None  # it released cleanly: nothing to report
    finally:
        proc.kill()
        proc.wait()


def test_wait_runs_out_and_names_the_holder(net: Network) -> None:
    proc = start_holder()
    try:
        started = time.monotonic()
        with pytest.raises(LockedError, match=f"pid {proc.pid}"), network_lock(
            net, "drift", wait=1, poll=0.2, remote=False
        ):
            pass
        assert 0.9 <= time.monotonic() - started < 3
    finally:
        kill(proc)


def test_a_killed_run_does_not_block_and_is_reported(net: Network) -> None:
    proc = start_holder()
    kill(proc)
    with network_lock(net, "apply", remote=False) as info:
        assert info.previous is not None
        assert info.previous.pid == proc.pid
        assert info.previous.command == "apply --limit pc1"
        [note] = info.notes()
        assert note.startswith("the previous run of 'acme' on this controller (")
        assert f"pid {proc.pid}, `apply --limit pc1`, started " in note
        assert note.endswith("ended without releasing its lock: killed?")
    # This run released cleanly: the next one has nothing to report.
    with network_lock(net, "apply", remote=False) as info:
        assert info.previous is None and info.notes() == []


def test_force_unlock_refuses_a_live_run_on_this_controller(net: Network) -> None:
    proc = start_holder()
    try:
        with pytest.raises(LockedError) as caught, network_lock(net, "apply", force_unlock=True, remote=False):
            pytest.fail("broke a live lock")
        message = str(caught.value)
        assert message.startswith("--force-unlock refused: network 'acme' is locked on this controller by ")
        assert f"stop it (kill {proc.pid}) or let it finish" in message
        assert proc.poll() is None  # untouched
    finally:
        kill(proc)


def test_released_on_exceptions_and_ctrl_c(net: Network, rdir: str) -> None:
    for exc in (RuntimeError("boom"), KeyboardInterrupt()):
        with pytest.raises(type(exc)), network_lock(net, "apply", transport=LocalShell(), remote_dir=rdir):
            assert (Path(rdir) / "acme.lock").exists()
            raise exc
        assert not (Path(rdir) / "acme.lock").exists()
        with network_lock(net, "apply", transport=LocalShell(), remote_dir=rdir) as info:
            assert info.previous is None
    assert (lock.lock_path(net)).read_text() == ""  # emptied, not removed


# --- the remote lock ----------------------------------------------------------------------


def test_remote_record_is_ours_private_and_removed_on_release(net: Network, rdir: str) -> None:
    with network_lock(net, "apply --limit pc1", transport=LocalShell("pc1 (10.0.0.1)"), remote_dir=rdir) as info:
        path = Path(rdir) / "acme.lock"
        record = json.loads(path.read_text())
        assert record["token"] == info.holder.token
        assert record["pid"] == os.getpid() and record["command"] == "apply --limit pc1"
        assert record["network"] == "acme" and record["started"].endswith("Z")
        assert path.stat().st_mode & 0o777 == 0o600
        assert Path(rdir).stat().st_mode & 0o777 == 0o700
        assert info.anchor == "pc1 (10.0.0.1)"
    assert not path.exists()
    assert info.problems == []


def test_remote_live_lock_is_refused(net: Network, rdir: str) -> None:
    plant(rdir, other_record(), age=5)
    with pytest.raises(LockedError) as caught, network_lock(net, "apply", transport=LocalShell("dc1"), remote_dir=rdir):
        pytest.fail("took a live lock")
    text, [age] = ages(str(caught.value))
    assert text == (
        "network 'acme' is locked on dc1 by bob@ctl2 (pid 4242, `drift`) since 2030-01-01T00:00:00Z (heartbeat N s ago)"
    )
    assert 5 <= age <= 7
    assert not caught.value.stale
    # The controller lock was given back: a run on this controller is not blocked by the failure.
    with network_lock(net, "apply", remote=False):
        pass


def test_remote_live_lock_is_not_broken_by_force_unlock(net: Network, rdir: str) -> None:
    path = plant(rdir, other_record(), age=5)
    with pytest.raises(LockedError) as caught, network_lock(
        net, "apply", force_unlock=True, transport=LocalShell("dc1"), remote_dir=rdir
    ):
        pytest.fail("broke a live lock")
    assert str(caught.value).startswith("--force-unlock refused: network 'acme' is locked on dc1 by bob@ctl2")
    text, [age] = ages(str(caught.value))
    assert text.endswith("its heartbeat is N s old: that run is alive; stop it on ctl2 (kill 4242) or let it finish")
    assert 5 <= age <= 7
    assert json.loads(path.read_text())["token"] == "f" * 32


def test_remote_stale_lock_is_refused_then_broken_with_force_unlock(net: Network, rdir: str) -> None:
    path = plant(rdir, other_record(), age=300)
    with pytest.raises(LockedError) as caught, network_lock(net, "apply", transport=LocalShell("dc1"), remote_dir=rdir):
        pytest.fail("took a stale lock silently")
    text, [age] = ages(str(caught.value))
    assert text == (
        "network 'acme' is locked on dc1 by bob@ctl2 (pid 4242, `drift`) since 2030-01-01T00:00:00Z; "
        "last heartbeat N s ago: stale (a killed run?); break it with --force-unlock"
    )
    assert 300 <= age <= 302
    assert caught.value.stale
    assert json.loads(path.read_text())["token"] == "f" * 32  # still there
    with network_lock(net, "apply", force_unlock=True, transport=LocalShell("dc1"), remote_dir=rdir) as info:
        assert json.loads(path.read_text())["token"] == info.holder.token
        [broken] = info.broken
        assert broken.holder.pid == 4242 and broken.holder.host == "ctl2"
        [note] = info.notes()
        assert ages(note)[0] == (
            "broke the lock of 'acme' on dc1: bob@ctl2 (pid 4242, `drift`) since 2030-01-01T00:00:00Z, "
            "last heartbeat N s ago"
        )
    assert not path.exists()


def test_remote_lock_of_a_killed_run_on_this_controller(net: Network, rdir: str) -> None:
    proc = start_holder(rdir)
    kill(proc)
    path = Path(rdir) / "acme.lock"
    assert json.loads(path.read_text())["pid"] == proc.pid  # left behind, heartbeat fresh
    with pytest.raises(LockedError) as caught, network_lock(net, "apply", transport=LocalShell("pc1"), remote_dir=rdir):
        pytest.fail("took the lock of a killed run silently")
    message = str(caught.value)
    assert f"but that run (pid {proc.pid}) is no longer alive on this controller: killed?" in message
    assert message.endswith("break it with --force-unlock")
    with network_lock(net, "apply", force_unlock=True, transport=LocalShell("pc1"), remote_dir=rdir) as info:
        assert [b.holder.pid for b in info.broken] == [proc.pid]
        assert info.previous is not None and info.previous.pid == proc.pid  # the controller record, too


def test_release_removes_only_our_own_record(net: Network, rdir: str) -> None:
    path = Path(rdir) / "acme.lock"
    with network_lock(net, "apply", transport=LocalShell("dc1"), remote_dir=rdir, heartbeat=3600) as info:
        plant(rdir, other_record())  # broken and retaken by another controller meanwhile
    assert json.loads(path.read_text())["token"] == "f" * 32
    assert info.problems == [
        "the run lock of 'acme' on dc1 was no longer ours at release "
        "(now held by bob@ctl2 (pid 4242, `drift`)); left it"
    ]


def test_heartbeat_refreshes_the_record_and_notices_a_broken_lock(net: Network, rdir: str) -> None:
    path = Path(rdir) / "acme.lock"
    with network_lock(net, "apply", transport=LocalShell("dc1"), remote_dir=rdir, heartbeat=0.2) as info:
        old = time.time() - 300
        os.utime(path, (old, old))
        first = json.loads(path.read_text())["heartbeat"]
        deadline = time.monotonic() + 10
        while path.stat().st_mtime < time.time() - 60 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert path.stat().st_mtime > time.time() - 60  # beaten again: no longer stale
        assert json.loads(path.read_text())["token"] == info.holder.token
        time.sleep(1.1)
        assert json.loads(path.read_text())["heartbeat"] > first
        plant(rdir, other_record())
        while info.lost is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert info.lost == (
            "the run lock of 'acme' on dc1 was broken during this run; now held by bob@ctl2 (pid 4242, `drift`)"
        )
    assert json.loads(path.read_text())["token"] == "f" * 32  # not removed at release
    assert info.problems == [info.lost]


def test_wait_gets_a_remote_lock_when_it_is_released(net: Network, rdir: str) -> None:
    path = plant(rdir, other_record())
    timer = threading.Timer(1.0, path.unlink)
    timer.start()
    try:
        with network_lock(net, "apply", wait=3, transport=LocalShell("dc1"), remote_dir=rdir) as info:
            assert 0.5 <= info.waited <= 3.5
            assert json.loads(path.read_text())["token"] == info.holder.token
    finally:
        timer.cancel()


def test_networks_have_their_own_locks(own_state: Path, rdir: str) -> None:
    other = replace(workgroup(), name="branch")
    with (
        network_lock(workgroup(), "apply", transport=LocalShell(), remote_dir=rdir),
        network_lock(other, "apply", transport=LocalShell(), remote_dir=rdir),
    ):
        assert sorted(p.name for p in Path(rdir).glob("*.lock")) == ["acme.lock", "branch.lock"]


def test_unreadable_remote_record_is_reported_not_taken(net: Network, rdir: str) -> None:
    path = Path(rdir) / "acme.lock"
    path.parent.mkdir(parents=True)
    path.write_text("garbage\x1b[31m")
    for force in (False, True):
        with pytest.raises(LockedError, match=r"cannot be read .*remove it by hand") as caught, network_lock(
            net, "apply", force_unlock=force, transport=LocalShell("dc1"), remote_dir=rdir
        ):
            pytest.fail("took an unreadable lock")
        assert "\x1b" not in str(caught.value)
    assert path.read_text() == "garbage\x1b[31m"


class Refusing(LocalShell):
    """An anchor whose sudo wants a password: the real refusal text, from a real shell."""

    def run(self, script: str) -> tuple[int, str, str]:
        return super().run("echo 'sudo: a password is required' >&2; exit 1")


def test_sudo_refusal_is_a_lock_error_and_frees_the_controller(net: Network, rdir: str) -> None:
    with pytest.raises(LockError) as caught, network_lock(net, "apply", transport=Refusing("dc1"), remote_dir=rdir):
        pytest.fail("no lock, yet the run went on")
    assert not isinstance(caught.value, LockedError)
    assert str(caught.value) == (
        "the run lock of 'acme' on dc1 failed (take): sudo: a password is required "
        "(the lock needs passwordless sudo, as the run does)"
    )
    with network_lock(net, "apply", remote=False):
        pass


# --- the SSH transport and the anchor ------------------------------------------------------


def test_ssh_transport_constructs_without_connecting() -> None:
    made: list[int] = []

    def connect():
        made.append(1)
        raise AssertionError("must not connect yet")

    as_admin = SshTransport(connect, sudo=True, label="dc1 (10.0.0.1)")
    assert as_admin.command("echo 'x'") == "sudo -n sh -c 'echo '\"'\"'x'\"'\"''"
    as_root = SshTransport(connect, sudo=False, label="dc1 (10.0.0.1)")
    assert as_root.command("true") == "sh -c true"
    as_root.close()
    assert made == [] and as_admin.client is None


def test_unreachable_anchor_is_a_clear_error(own_state: Path, tmp_path: Path) -> None:
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    known = tmp_path / "known_hosts"
    known.write_text("")
    base = workgroup()
    pc1 = replace(base.hosts[0], connection=HostConnection("127.0.0.1", port=port, user="vagrant"))
    net = replace(base, hosts=(pc1, base.hosts[1]), ssh=Ssh(known_hosts_file=str(known)))
    with pytest.raises(LockError) as caught:
        ssh_transport(net, timeout=5)
    assert str(caught.value).startswith("cannot take the run lock of 'acme' on pc1 (10.0.0.1), its anchor host: ")
    assert str(caught.value).endswith("so nothing was changed")
    with pytest.raises(LockError), network_lock(net, "apply"):
        pytest.fail("ran without the remote lock")
    with network_lock(net, "apply", remote=False):  # the controller lock was given back
        pass


def test_anchor_is_the_first_dc_or_the_first_peer() -> None:
    assert anchor_host(workgroup()).name == "pc1"
    domain = Network(
        name="corp",
        mode=Mode.DOMAIN,
        subnets=("10.0.0.0/24",),
        hosts=(
            Host("ws1", "10.0.0.10", Role.WORKSTATION),
            Host("dc2", "10.0.0.2", Role.DOMAIN_CONTROLLER),
            Host("dc1", "10.0.0.1", Role.DOMAIN_CONTROLLER),
        ),
        domain=Domain("CORP.TEST", "CORP", SecretRef(env="X"), dcs=("dc1", "dc2")),
    )
    assert anchor_host(domain).name == "dc1"
    with pytest.raises(LockError, match="no peer"):
        anchor_host(replace(workgroup(), hosts=()))


# --- records and processes -----------------------------------------------------------------


def test_process_identity_survives_pid_reuse() -> None:
    me = process_start(os.getpid())
    assert me is not None
    assert process_alive(os.getpid(), me)
    assert not process_alive(os.getpid(), me + 1)  # same pid, another start: a recycled pid
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert not process_alive(proc.pid, None)
    assert not process_alive(0, None) and not process_alive(-1, None)


def test_hostile_records_are_sanitised_or_refused() -> None:
    raw = json.loads(other_record().to_json())
    raw["command"] = "apply\x1b]0;pwned\x07"
    raw["user"] = "bob\nroot"
    parsed = Holder.from_json(json.dumps(raw))
    assert parsed is not None
    assert parsed.command == "apply?]0;pwned?" and parsed.user == "bob?root"
    for bad in ("", "[]", "{}", '{"pid": "12"}', '{"pid": 0}', '{"pid": true}'):
        assert Holder.from_json(bad) is None
    # A record from another machine: its pid says nothing here.
    assert other_record().alive() is None
