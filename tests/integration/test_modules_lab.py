"""The playbooks' modules that need a real Debian 12 with systemd, run by ansible over SSH
(strict host keys) against a lab host: provision_services on a unit of its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from provision.lab import IDENTITY_FILE, KNOWN_HOSTS

pytestmark = pytest.mark.lab

PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"
UNIT = "provision-test.service"


def module(address: str, name: str, args: dict[str, Any], *, check: bool = False) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tree:
        argv = [str(Path(sys.executable).with_name("ansible")), "all", "-i", f"{address},", "-u", "root",
                "--private-key", str(IDENTITY_FILE), "-m", name, "-a", json.dumps(args), "-t", tree,
                "-e", "ansible_python_interpreter=/usr/bin/python3"]
        argv += ["--check"] if check else []
        env = {**os.environ, "ANSIBLE_LIBRARY": str(PLAYBOOKS / "library"),
               "ANSIBLE_MODULE_UTILS": str(PLAYBOOKS / "module_utils"), "ANSIBLE_HOST_KEY_CHECKING": "True",
               "ANSIBLE_SSH_ARGS": f"-o UserKnownHostsFile={KNOWN_HOSTS} -o StrictHostKeyChecking=yes",
               "ANSIBLE_NOCOLOR": "1"}
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, check=False, timeout=180)
        result_file = Path(tree) / address
        assert result_file.exists(), proc.stdout + proc.stderr
        result: dict[str, Any] = json.loads(result_file.read_text())
    result["_stdout"] = proc.stdout
    return result


@pytest.fixture(scope="module")
def host(lab_hosts, lab_ssh) -> str:
    address = lab_hosts[0].address
    unit = "[Unit]\nDescription=provision module test\n[Service]\nExecStart=/bin/sleep infinity\n" \
           "[Install]\nWantedBy=multi-user.target\n"
    res = lab_ssh.run(address, f"cat > /etc/systemd/system/{UNIT} && systemctl daemon-reload", stdin=unit)
    assert res.returncode == 0, res.stderr
    yield address
    lab_ssh.run(address, f"systemctl disable --now {UNIT}; rm -f /etc/systemd/system/{UNIT}; systemctl daemon-reload")


def _pid(lab_ssh, address: str) -> str:
    return lab_ssh.run(address, f"systemctl show -p MainPID --value {UNIT}").stdout.strip()


def test_services_enable_start_then_nothing_to_do(host, lab_ssh) -> None:
    wanted = {"services": [{"name": UNIT, "enabled": True, "state": "started"}]}
    check = module(host, "provision_services", wanted, check=True)
    assert check["changed"] is True and check["actions"] == [f"{UNIT}: enable", f"{UNIT}: start"]
    assert lab_ssh.run(host, f"systemctl is-active {UNIT}").returncode != 0  # check mode did nothing
    done = module(host, "provision_services", wanted)
    assert done["changed"] is True
    assert lab_ssh.run(host, f"systemctl is-enabled {UNIT} && systemctl is-active {UNIT}").returncode == 0
    again = module(host, "provision_services", wanted)
    assert again["changed"] is False and again["actions"] == []


def test_services_restart_only_when_asked_and_not_right_after_a_start(host, lab_ssh) -> None:
    module(host, "provision_services", {"services": [{"name": UNIT, "enabled": True, "state": "started"}]})
    before = _pid(lab_ssh, host)
    restarted = module(host, "provision_services",
                       {"services": [{"name": UNIT, "state": "started", "restart": True}]})
    assert restarted["actions"] == [f"{UNIT}: restart"] and _pid(lab_ssh, host) != before
    lab_ssh.run(host, f"systemctl stop {UNIT}")
    started = module(host, "provision_services", {"services": [{"name": UNIT, "state": "started", "restart": True}]})
    assert started["actions"] == [f"{UNIT}: start"]  # one start, not a start and a restart


def test_services_stop_disable_and_refuse_a_missing_unit(host, lab_ssh) -> None:
    done = module(host, "provision_services", {"services": [{"name": UNIT, "enabled": False, "state": "stopped"}]})
    assert done["changed"] is True
    assert lab_ssh.run(host, f"systemctl is-active {UNIT}").returncode != 0
    missing = module(host, "provision_services", {"services": [{"name": "no-such-unit.service", "state": "started"}]})
    assert "FAILED!" in missing["_stdout"] and "not installed" in missing["msg"]


def test_services_restart_clears_files_and_waits_until_ready(host, lab_ssh) -> None:
    module(host, "provision_services", {"services": [{"name": UNIT, "enabled": True, "state": "started"}]})
    lab_ssh.run(host, "mkdir -p /run/provision-test && touch /run/provision-test/cache_1.ldb /run/provision-test/keep")
    wanted = {"services": [{"name": UNIT, "state": "started", "restart": True,
                            "clear": ["/run/provision-test/cache_*.ldb"],
                            "ready": ["test", "-e", "/run/provision-test/keep"], "ready_timeout": 10}]}
    done = module(host, "provision_services", wanted)
    assert done["actions"] == [f"{UNIT}: stop", f"{UNIT}: clear /run/provision-test/cache_*.ldb", f"{UNIT}: start"]
    assert lab_ssh.run(host, "test ! -e /run/provision-test/cache_1.ldb && test -e /run/provision-test/keep"
                       ).returncode == 0
    # Nothing restarted, nothing waited for: a readiness check that can never pass is not even run.
    never = {"services": [{"name": UNIT, "state": "started", "ready": ["false"], "ready_timeout": 2}]}
    assert module(host, "provision_services", never)["changed"] is False
    # Started by this run and never ready: a clear failure naming the check.
    lab_ssh.run(host, f"systemctl stop {UNIT}")
    failed = module(host, "provision_services", never)
    assert "FAILED!" in failed["_stdout"] and "not ready within 2s" in failed["msg"]


def test_firewall_loads_on_change_and_on_drift_only(lab_hosts, lab_ssh) -> None:
    address = lab_hosts[1].address
    ruleset = ("table inet provision_test\ndelete table inet provision_test\n"
               "table inet provision_test {\n  chain input {\n    type filter hook input priority 10; policy accept;\n"
               "    tcp dport 9999 drop\n  }\n}\n")
    assert lab_ssh.run(address, "apt-get install -y -q nftables >/dev/null 2>&1 || true; "
                                "cat > /root/provision-test.nft; rm -f /root/fw.sha256",
                       stdin=ruleset).returncode == 0
    args = {"path": "/root/provision-test.nft", "table": "inet provision_test", "fingerprint_file": "/root/fw.sha256"}
    try:
        check = module(address, "provision_firewall", args, check=True)
        assert check["changed"] is True and check["reason"] == "no fingerprint"
        assert lab_ssh.run(address, "nft list table inet provision_test").returncode != 0  # check mode loaded nothing
        first = module(address, "provision_firewall", args)
        assert first["changed"] is True and "dport 9999" in lab_ssh.run(
            address, "nft list table inet provision_test").stdout
        assert module(address, "provision_firewall", args)["changed"] is False
        # A rule added by hand is drift: the file is loaded again and the rule is gone.
        lab_ssh.run(address, "nft add rule inet provision_test input tcp dport 8888 drop")
        drift = module(address, "provision_firewall", args)
        assert drift["changed"] is True and drift["reason"] == "live rules changed"
        assert "8888" not in lab_ssh.run(address, "nft list table inet provision_test").stdout
        # A file that does not parse is never loaded: the running table stays.
        lab_ssh.run(address, "echo 'table inet provision_test { nonsense }' > /root/provision-test.nft")
        broken = module(address, "provision_firewall", {**args, "reload": True})
        assert "FAILED!" in broken["_stdout"] and "does not load" in broken["msg"]
        assert "dport 9999" in lab_ssh.run(address, "nft list table inet provision_test").stdout
    finally:
        lab_ssh.run(address, "nft delete table inet provision_test; rm -f /root/provision-test.nft /root/fw.sha256")


def test_firewall_enables_and_starts_the_unit_that_loads_it(lab_hosts, lab_ssh) -> None:
    # The unit plays nftables.service's part: a oneshot that loads the file and stays active.
    address = lab_hosts[1].address
    ruleset = ("table inet provision_unit\ndelete table inet provision_unit\n"
               "table inet provision_unit {\n  chain input {\n    type filter hook input priority 10; policy accept;\n"
               "    tcp dport 9998 drop\n  }\n}\n")
    unit = ("[Unit]\nDescription=provision firewall test\n[Service]\nType=oneshot\nRemainAfterExit=yes\n"
            "ExecStart=/usr/sbin/nft -f /root/provision-unit.nft\n[Install]\nWantedBy=multi-user.target\n")
    put = lab_ssh.run(address, "cat > /root/provision-unit.nft && rm -f /root/fwu.sha256", stdin=ruleset)
    assert put.returncode == 0
    assert lab_ssh.run(address, "cat > /etc/systemd/system/provision-fwtest.service && systemctl daemon-reload",
                       stdin=unit).returncode == 0
    args = {"path": "/root/provision-unit.nft", "table": "inet provision_unit", "fingerprint_file": "/root/fwu.sha256",
            "service": "provision-fwtest.service"}
    try:
        check = module(address, "provision_firewall", args, check=True)
        assert check["changed"] is True and check["reason"] == "service not active"
        assert check["actions"] == ["provision-fwtest.service: enable", "provision-fwtest.service: start"]
        assert lab_ssh.run(address, "systemctl is-enabled provision-fwtest.service").stdout.strip() == "disabled"
        first = module(address, "provision_firewall", args)
        assert first["changed"] is True and first["actions"] == check["actions"]
        state = lab_ssh.run(address, "systemctl is-enabled provision-fwtest.service; "
                                     "systemctl is-active provision-fwtest.service").stdout.split()
        assert state == ["enabled", "active"]
        assert "dport 9998" in lab_ssh.run(address, "nft list table inet provision_unit").stdout
        again = module(address, "provision_firewall", args)
        assert again["changed"] is False and again["actions"] == []
        # Stopped (its table stays): started again, which loads the file again.
        lab_ssh.run(address, "systemctl stop provision-fwtest.service")
        restarted = module(address, "provision_firewall", args)
        assert restarted["reason"] == "service not active"
        assert restarted["actions"] == ["provision-fwtest.service: start"]
        assert module(address, "provision_firewall", args)["changed"] is False
    finally:
        lab_ssh.run(address, "systemctl disable --now provision-fwtest.service; "
                             "rm -f /etc/systemd/system/provision-fwtest.service /root/provision-unit.nft "
                             "/root/fwu.sha256; "
                             "systemctl daemon-reload; nft delete table inet provision_unit")


def test_domain_join_without_a_domain_says_so(lab_hosts, lab_ssh) -> None:
    # No DC here: testjoin fails. Without a password that fails, or in a dry run without secrets
    # is reported; with one, the join is attempted (once: no retries) and fails with the tool's
    # message, masked.
    address = lab_hosts[2].address
    assert lab_ssh.run(address, "apt-get install -y -q adcli >/dev/null 2>&1").returncode == 0
    args = {"client": "sssd", "dns_domain": "nowhere.test", "realm": "NOWHERE.TEST", "computer_name": "LABC",
            "host_fqdn": "lab-c.nowhere.test", "computer_ou": "OU=Provisioned Computers",
            "base_dn": "DC=nowhere,DC=test",
            "domain_controller": "dc.nowhere.test", "retries": 0, "log": "/root/join.log"}
    missing = module(address, "provision_domain_join", args)
    assert "FAILED!" in missing["_stdout"] and "needs the Administrator password" in missing["msg"]
    unknown = module(address, "provision_domain_join", {**args, "no_secrets": True})
    assert unknown["changed"] is False and unknown["join_needed"] is True and unknown["was_joined"] is False
    secret = "Sekr1t-join-pw"
    check = module(address, "provision_domain_join", {**args, "admin_password": secret}, check=True)
    assert check["changed"] is True and check["join_needed"] is True
    assert lab_ssh.run(address, "test -e /root/join.log").returncode != 0  # check mode joined nothing
    failed = module(address, "provision_domain_join", {**args, "admin_password": secret})
    assert "FAILED!" in failed["_stdout"] and "joining nowhere.test at dc.nowhere.test failed" in failed["msg"]
    assert failed["attempts"] == 1
    log = lab_ssh.run(address, "stat -c %a /root/join.log && cat /root/join.log").stdout
    assert log.startswith("600\n") and "adcli join" in log and secret not in log
    assert secret not in json.dumps(failed)
    lab_ssh.run(address, "rm -f /root/join.log")


def test_local_accounts_created_corrected_then_nothing_to_do(lab_hosts, lab_ssh) -> None:
    address = lab_hosts[0].address
    wanted = {"groups": ["pt-staff", "pt-ops"],
              "users": [{"name": "pt-alice", "comment": "Alice L", "shell": "/bin/bash", "groups": ["pt-staff"]},
                        {"name": "pt-bob", "comment": "", "shell": "/bin/sh", "groups": []}]}
    try:
        check = module(address, "provision_local_accounts", wanted, check=True)
        assert check["changed"] is True and check["users_created"] == ["pt-alice", "pt-bob"]
        assert lab_ssh.run(address, "getent passwd pt-alice").returncode != 0  # check mode created nothing
        done = module(address, "provision_local_accounts", wanted)
        assert done["groups_created"] == ["pt-staff", "pt-ops"] and done["users_created"] == ["pt-alice", "pt-bob"]
        ids = lab_ssh.run(address, "getent passwd pt-alice; id -nG pt-alice; test -d /home/pt-alice").stdout
        assert "pt-alice:x:" in ids and ":Alice L:/home/pt-alice:/bin/bash" in ids and "pt-staff" in ids
        assert module(address, "provision_local_accounts", wanted)["changed"] is False
        # Moved to another group and renamed: corrected in place, out of the old group.
        moved = {**wanted, "users": [{**wanted["users"][0], "comment": "Alice Liddell", "groups": ["pt-ops"]}]}
        again = module(address, "provision_local_accounts", moved)
        assert again["users_changed"] == ["pt-alice"] and again["users_created"] == []
        groups = lab_ssh.run(address, "id -nG pt-alice").stdout.split()
        assert "pt-ops" in groups and "pt-staff" not in groups
        assert "Alice Liddell" in lab_ssh.run(address, "getent passwd pt-alice").stdout
    finally:
        lab_ssh.run(address, "userdel -r pt-alice; userdel -r pt-bob; groupdel pt-staff; groupdel pt-ops")
