"""Integration tests of ``provision lab`` on real systemd-nspawn containers.

Tests marked ``lab`` need root; they share one three-host lab per run (see
conftest.py) and run in file order: the destructive ones (kill -9, fallback,
down --destroy) come last.  No test sends a packet outside 10.231.0.0/16.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from provision.errors import LabError
from provision.lab import BRIDGE, LAB_NET, cgroups, net, sources
from provision.lab.packages import BASE_PACKAGES, LAB_PACKAGES
from provision.lab.paths import CGROUP_ROOT, HOSTS_DIR, STATE_DIR, STATE_FILE

REPO_ROOT = Path(__file__).resolve().parents[2]


def _cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "provision.cli_lab", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO_ROOT, check=False)


# --------------------------------------------------------------------------- no root needed


def test_deb822_and_one_line_sources_are_parsed(tmp_path):
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb deb-src\n# a comment\nURIs: file:///srv/mirror/debian/\nSuites: bookworm bookworm-updates\n"
        "Components: main contrib\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n"
        "Types: deb\nURIs: file:///srv/mirror/debian-security\nSuites: bookworm-security\nComponents: main\n\n"
        "Types: deb\nURIs: file:///srv/off\nSuites: bookworm\nComponents: main\nEnabled: no\n"
    )
    (tmp_path / "sources.list").write_text("deb [signed-by=/k.gpg] file:///srv/other trixie main\n# deb x y z\n")
    found = sources.debian_sources("bookworm", tmp_path)
    assert [s.uri for s in found] == ["file:///srv/mirror/debian", "file:///srv/mirror/debian-security"]
    assert found[0].suites == ("bookworm", "bookworm-updates")
    assert found[0].line("bookworm") == (
        "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] file:///srv/mirror/debian bookworm main"
    )
    assert sources.parse_one_line((tmp_path / "sources.list").read_text())[0].signed_by == "/k.gpg"


def test_missing_bookworm_source_is_a_lab_error(tmp_path):
    (tmp_path / "sources.list").write_text("deb file:///srv/other trixie main\n")
    with pytest.raises(LabError, match="bookworm"):
        sources.debian_sources("bookworm", tmp_path)


def test_addresses_macs_and_names_are_checked():
    assert net.mac_for("10.231.2.10") == "02:00:0a:e7:02:0a"
    net.check_address("a", "10.231.200.7")
    for bad in ("10.232.0.5", "10.231.0.1", "10.231.255.255", "nonsense"):
        with pytest.raises(LabError):
            net.check_address("a", bad)


def test_package_lists_are_single_constants_without_duplicates():
    assert len(set(LAB_PACKAGES)) == len(LAB_PACKAGES)
    assert len(set(BASE_PACKAGES)) == len(BASE_PACKAGES)
    assert {"samba", "sssd", "realmd", "cups", "openssh-server"} <= set(LAB_PACKAGES) | set(BASE_PACKAGES)


# --------------------------------------------------------------------------- the lab


@pytest.mark.lab
def test_hosts_boot_and_status_lists_them(lab_hosts):
    result = _cli("status")
    assert result.returncode == 0, result.stderr
    for host in lab_hosts:
        assert re.search(rf"^{host.name}\s+{re.escape(host.address)}\s+running\s", result.stdout, re.M), result.stdout
    assert "runner: systemd-nspawn" in result.stdout
    state = json.loads(STATE_FILE.read_text())
    assert sorted(state["hosts"]) == sorted(h.name for h in lab_hosts)


@pytest.mark.lab
def test_ssh_with_lab_key_and_strict_host_keys_by_address_and_name(lab_hosts, lab_ssh):
    for host in lab_hosts:
        by_address = lab_ssh.run(host.address, "hostname")
        assert by_address.returncode == 0, by_address.stderr
        assert by_address.stdout.strip() == host.name
        # The known_hosts entry also matches the host's name.
        by_name = lab_ssh.run(host.address, "true", alias=host.name)
        assert by_name.returncode == 0, by_name.stderr


@pytest.mark.lab
def test_wrong_host_key_is_refused(lab_hosts, lab_ssh, tmp_path):
    a, b = lab_hosts[0], lab_hosts[1]
    # Connecting to a while presenting b's identity must fail under strict checking.
    result = lab_ssh.run(a.address, "true", alias=b.name)
    assert result.returncode != 0


@pytest.mark.lab
def test_hostnames_addresses_and_macs_match(lab_hosts, lab_ssh):
    for host in lab_hosts:
        out = lab_ssh.run(host.address, "hostname; ip -4 -o addr show dev host0; cat /sys/class/net/host0/address")
        assert out.returncode == 0, out.stderr
        lines = out.stdout.splitlines()
        assert lines[0] == host.name
        assert f"inet {host.address}/16" in lines[1]
        assert lines[2] == net.mac_for(host.address)


@pytest.mark.lab
def test_systemd_is_running_or_degraded(lab_hosts, lab_ssh):
    for host in lab_hosts:
        out = lab_ssh.run(host.address, "timeout 60 systemctl is-system-running --wait")
        assert out.stdout.strip() in ("running", "degraded"), (out.stdout, out.stderr)


@pytest.mark.lab
def test_a_package_installs_from_the_local_repository(lab_hosts, lab_ssh):
    host = lab_hosts[0]
    out = lab_ssh.run(
        host.address,
        "apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y --reinstall wsdd && "
        "apt-cache policy wsdd && cat /etc/apt/sources.list",
        timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Get:1 http://10.231.0.1:8231 ./ wsdd" in out.stdout
    assert "Setting up wsdd" in out.stdout
    sources_lines = [ln for ln in out.stdout.splitlines() if ln.startswith("deb ")]
    assert sources_lines == ["deb [trusted=yes] http://10.231.0.1:8231/ ./"]


@pytest.mark.lab
def test_hosts_reach_each_other(lab_hosts, lab_ssh):
    a, b, c = lab_hosts
    out = lab_ssh.run(a.address, f"ping -c1 -W2 {b.address} && ping -c1 -W2 {c.name} && "
                                 f"timeout 5 bash -c 'exec 3<>/dev/tcp/{c.address}/22 && head -c 7 <&3'")
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.rstrip().endswith("SSH-2.0")


@pytest.mark.lab
def test_nothing_can_reach_outside_the_lab(lab_hosts, lab_ssh):
    # Checked without sending a single packet outside the lab: routes and forwarding only.
    for host in lab_hosts:
        out = lab_ssh.run(host.address, "ip -4 route show table all type unicast; echo ---; ip -6 route show")
        assert out.returncode == 0, out.stderr
        v4, _, v6 = out.stdout.partition("---")
        routes = [ln for ln in v4.splitlines() if ln.strip()]
        assert routes, "no IPv4 route at all"
        for line in routes:
            dest = line.split()[0]
            assert dest != "default", line
            assert ipaddress.ip_network(dest, strict=False).subnet_of(LAB_NET), line
        assert "default" not in v6
    assert net.forwarding_disabled()
    for tool in (["nft", "list", "ruleset"], ["iptables-save", "-t", "nat"]):
        try:
            ruleset = subprocess.run(tool, capture_output=True, text=True, timeout=30, check=False).stdout
        except FileNotFoundError:
            continue
        assert "10.231." not in ruleset, f"{tool[0]} has a rule for the lab network"


@pytest.mark.lab
def test_lab_ssh_command_runs_and_returns_status(lab_hosts):
    host = lab_hosts[1]
    ok = _cli("ssh", host.name, "hostname")
    assert ok.returncode == 0 and ok.stdout.strip() == host.name, ok.stderr
    failed = _cli("ssh", host.name, "exit", "3")
    assert failed.returncode == 3
    unknown = _cli("ssh", "no-such-host", "true")
    assert unknown.returncode == 7 and "no lab host" in unknown.stderr


@pytest.mark.lab
def test_reboot_inside_restarts_the_container(lab_hosts, lab_ssh):
    host = lab_hosts[2]
    before = lab_ssh.run(host.address, "cat /proc/sys/kernel/random/boot_id").stdout.strip()
    lab_ssh.run(host.address, "systemctl reboot", timeout=30)
    deadline = time.monotonic() + 90
    after = before
    while time.monotonic() < deadline and after in ("", before):
        time.sleep(1)
        after = lab_ssh.run(host.address, "cat /proc/sys/kernel/random/boot_id", timeout=15).stdout.strip()
    assert after and after != before, "the container did not come back with a new boot id"


@pytest.mark.lab
def test_fallback_runner_serves_ssh_and_says_so(lab_factory, lab_hosts, lab_ssh, monkeypatch):
    from provision import lab

    monkeypatch.setenv("PROVISION_LAB_RUNNER", "unshare")
    pair = lab_hosts[:2]
    status = lab.up(pair)
    assert status.fallback and all(h.state == "running" for h in status.hosts if h.name in {p.name for p in pair})
    out = lab_ssh.run(pair[0].address, f"hostname && ping -c1 -W2 {pair[1].address} >/dev/null && echo ok")
    assert out.stdout.split() == [pair[0].name, "ok"], out.stderr
    assert "FALLBACK runner in use" in _cli("status").stdout
    monkeypatch.delenv("PROVISION_LAB_RUNNER")
    status = lab.up(lab_hosts)  # back to systemd-nspawn for the tests after this one
    assert not status.fallback


@pytest.mark.lab
def test_down_powers_hosts_off_cleanly_and_keeps_bridge_and_repo(lab_hosts):
    from provision import lab

    lab.up(lab_hosts)
    assert lab.down() == []  # nobody had to be killed
    for host in lab_hosts:
        console = (HOSTS_DIR / host.name / "console.log").read_text(errors="replace")
        assert "Halting system" in console, console[-500:]
        assert "terminated by signal KILL" not in console
    status = lab.status()
    names = {h.name for h in lab_hosts}
    assert {h.name: h.state for h in status.hosts if h.name in names} == {n: "stopped" for n in names}
    assert status.bridge and status.repo_running
    assert not [m for m in Path("/proc/self/mounts").read_text().splitlines() if str(HOSTS_DIR) in m]


def _lab_pids() -> set[int]:
    return cgroups.pids(CGROUP_ROOT)


@pytest.mark.lab
def test_kill_9_then_up_recovers(lab_factory, lab_hosts, lab_ssh):
    from provision import lab

    lab_factory(lab_hosts)
    # Kill every lab process (supervisors, nspawn, containers, repo server) without warning.
    for _ in range(3):
        for pid in _lab_pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)
    assert not _lab_pids()
    names = {h.name for h in lab_hosts}
    assert all(h.state != "running" for h in lab.status().hosts if h.name in names)
    # A tool killed mid-write leaves at most a stray temp file; the state stays readable.
    (STATE_DIR / ".state.json.999999.tmp").write_text("{half")
    status = lab.up(lab_hosts)
    assert [(h.name, h.state) for h in status.hosts] == [(h.name, "running") for h in lab_hosts]
    for host in lab_hosts:
        assert lab_ssh.run(host.address, "hostname").stdout.strip() == host.name
    mounts = Path("/proc/self/mounts").read_text()
    for host in lab_hosts:
        assert mounts.count(f" {HOSTS_DIR / host.name / 'root'} ") == 1
    (STATE_DIR / ".state.json.999999.tmp").unlink()


@pytest.mark.lab
def test_down_destroy_leaves_nothing_behind(lab_factory, lab_hosts):
    from provision import lab

    lab_factory(lab_hosts)
    result = _cli("down", "--destroy", timeout=300)
    assert result.returncode == 0, result.stderr
    assert str(STATE_DIR) not in Path("/proc/self/mounts").read_text()
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    assert BRIDGE not in links
    assert not re.search(r"\b(vb-lab|plab)", links)
    assert not any(p.exists() for p in cgroups.paths(CGROUP_ROOT))
    leftovers = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                argv = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if "systemd-nspawn" in argv or "provision/lab/supervisor.py" in argv or "http.server 8231" in argv:
                leftovers.append(argv)
    assert not leftovers
    assert not HOSTS_DIR.exists() or not any(HOSTS_DIR.iterdir())
    assert not lab.status().hosts
