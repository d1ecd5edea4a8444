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
