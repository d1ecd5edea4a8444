"""Execution nodes on the lab (inventories/lab-nodes.yml): slices of the fleet run elsewhere.

node1 and node2 are lab hosts that get ansible-runner and ansible-core from the
controller's wheelhouse (``provision nodes setup``). ``provision apply`` runs the DC
from the controller, then streams one slice of the workstations to each node's
worker, and shows it all as one run. Real clients check a workstation of each
slice; then node2 is powered off in the middle of a run (only its slice fails) and
``--retry-failed`` finishes its hosts on node1. No secret may be left in a file on
a node, nor on the controller outside its RAM folder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from provision import wheelhouse
from provision.spec import load_network

pytestmark = [pytest.mark.lab]

REPO = Path(__file__).resolve().parents[2]
SPEC = REPO / "inventories" / "lab-nodes.yml"
REALM = "NODES.LAB.TEST"
SECRETS = {"LAB_ADMIN_PW": "Lab-Admin-Pw-2026!", "LAB_ALICE_PW": "Alice-Pw-2026!x"}
DECOY = {"PROVISION_TEST_DECOY_TOKEN": "decoy-" + os.urandom(8).hex()}
SLICES = {"nws1": "node1", "nws2": "node1", "nws3": "node2", "nws4": "node2"}
# Where a run could leave something on a node: everything but the read-only system.
WRITABLE = "/etc /root /home /opt /run /tmp /var"


def _secrets() -> dict[str, str]:
    return {k: os.environ.get(k) or v for k, v in SECRETS.items()}


def provision(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    if args and args[0] == "apply" and "--yes" not in args:  # variants back and forth; the prompt has its own test
        args = (*args, "--yes")
    env = {**os.environ, **_secrets(), **DECOY}
    return subprocess.run([sys.executable, "-m", "provision.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO, env=env, check=False)


@pytest.fixture(scope="module")
def network():
    return load_network(SPEC)


@pytest.fixture(scope="module")
def addresses(network):
    return {h.name: h.address for h in [*network.hosts, *network.rollout.execution_nodes]}


@pytest.fixture(scope="module")
def applied(lab_factory, network, tmp_path_factory):
    """The lab up with the nodes, the nodes set up, one apply through them."""
    lab_factory([*network.hosts, *network.rollout.execution_nodes])
    out = tmp_path_factory.mktemp("nodes")
    setup = provision("nodes", "setup", str(SPEC))
    assert setup.returncode == 0, setup.stdout + setup.stderr
    start = time.monotonic()
    proc = provision("apply", str(SPEC), "--report-json", str(out / "first.json"), "--junit", str(out / "first.xml"),
                     "--keep-artifacts", str(out / "artifacts"))
    seconds = time.monotonic() - start
    print(f"\nfirst apply through 2 nodes: {seconds:.1f} s", file=sys.__stderr__)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-6000:]
    return {"dir": out, "setup": setup, "first": proc, "report": json.loads((out / "first.json").read_text())}


def test_nodes_setup_installs_the_controller_versions(applied, lab_ssh, addresses):
    want = wheelhouse.controller_versions()
    for node in ("node1", "node2"):
        assert f"{node}: ansible-core {want['ansible-core']}, ansible-runner {want['ansible-runner']}" in \
            applied["setup"].stdout
        out = lab_ssh.run(addresses[node], "/opt/provision-node/current/bin/ansible-runner --version; "
                                           "/opt/provision-node/current/bin/ansible-playbook --version | head -1")
        assert out.returncode == 0, out.stderr
        assert want["ansible-runner"] in out.stdout and f"core {want['ansible-core']}" in out.stdout


def test_one_summary_names_the_node_of_every_host(applied):
    rep = applied["report"]
    assert rep["ok"], rep
    nodes = {h: s["node"] for h, s in rep["hosts"].items()}
    assert nodes == {"ndc1": "controller", **SLICES}
    assert not [h for h, s in rep["hosts"].items() if s["failed"] or s["unreachable"]]
    # The live summary is one table of every host, each with its node.
    table = applied["first"].stdout
    for host, node in nodes.items():
        assert any(line.split()[:2] == [host, node] for line in table.splitlines()), table
    junit = ET.parse(applied["dir"] / "first.xml")
    props = {case.get("classname"): case.find("properties/property").get("value")
             for case in junit.iter("testcase")}
    assert props == nodes
    # The slices' events came back: each node's artifacts hold its own hosts' events.
    for node in ("node1", "node2"):
        hosts = set()
        for path in (applied["dir"] / "artifacts" / node).glob("**/job_events/*.json"):
            hosts.add(json.loads(path.read_text()).get("event_data", {}).get("host"))
        assert {h for h, n in SLICES.items() if n == node} <= hosts, (node, hosts)


@pytest.mark.parametrize("ws", ["nws1", "nws3"])  # one workstation of each slice
def test_real_clients_on_a_workstation_of_each_slice(applied, lab_ssh, addresses, ws):
    pw = _secrets()["LAB_ALICE_PW"]
    got = lab_ssh.run(addresses[ws], "getent passwd alice")
    assert got.returncode == 0 and got.stdout.startswith("alice:"), got.stdout + got.stderr
    cc = f"/tmp/krb5cc_nodes_{ws}"
    out = lab_ssh.run(addresses[ws], f"KRB5CCNAME=FILE:{cc} kinit alice@{REALM} >/dev/null && "
                                     f"KRB5CCNAME=FILE:{cc} klist; kdestroy -c {cc}", stdin=pw + "\n")
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"Default principal: alice@{REALM}" in out.stdout


def _secret_values() -> list[str]:
    return [*_secrets().values(), *DECOY.values()]


def test_no_secret_left_on_the_nodes(applied, lab_ssh, addresses):
    patterns = "\n".join(_secret_values()) + "\n"
    for node in ("node1", "node2"):
        out = lab_ssh.run(addresses[node], f"grep -rlsF -f /dev/stdin {WRITABLE}; echo rc=$?", stdin=patterns)
        assert out.stdout.strip().endswith("rc=1"), f"{node}: secret found in: {out.stdout}"
        # The slices' folders on the tmpfs are gone with them.
        left = lab_ssh.run(addresses[node], "ls -A /run/provision-node 2>/dev/null")
        assert left.stdout.strip() == "", left.stdout


def test_no_secret_on_the_controller_outside_its_ram_folder(applied, tmp_path_factory):
    home = Path.home()
    # The tool's state and caches, every test's files (reports, kept artifacts), its run folders.
    places = [home / ".local" / "state" / "provision", home / ".cache" / "provision",
              tmp_path_factory.getbasetemp(), *Path("/tmp").glob("provision-*"), *Path("/var/tmp").glob("provision-*")]
    found = []
    for place in places:
        if not place.exists():
            continue
        for path in place.rglob("*"):
            if not path.is_file() or path.is_symlink():
                continue
            try:
                data = path.read_bytes()
            except OSError:
                continue
            found += [str(path) for value in _secret_values() if value.encode() in data]
    assert not found, found
    assert not list(Path("/dev/shm").glob("provision-secrets-*")), "the run's RAM folder was not removed"


def test_a_node_of_another_version_is_refused(applied, lab_ssh, addresses):
    node = addresses["node1"]
    fake = ("mkdir -p /opt/provision-node/fake/bin && printf '#!/bin/sh\\necho 2.3.0\\n' "
            "> /opt/provision-node/fake/bin/ansible-runner && chmod 755 /opt/provision-node/fake/bin/ansible-runner && "
            "cp /opt/provision-node/current/bin/ansible-playbook /opt/provision-node/fake/bin/ && "
            "mv -T /opt/provision-node/current /opt/provision-node/current.real && "
            "ln -s fake /opt/provision-node/current")
    assert lab_ssh.run(node, fake).returncode == 0
    try:
        proc = provision("apply", str(SPEC))
        assert proc.returncode == 3, proc.stdout + proc.stderr
        assert "node1" in proc.stderr and "nothing was changed" in proc.stderr
        assert "ansible-runner 2.3.0" in proc.stdout and "differ from the controller's" in proc.stdout
    finally:
        restore = lab_ssh.run(node, "rm /opt/provision-node/current && mv -T /opt/provision-node/current.real "
                                    "/opt/provision-node/current && rm -rf /opt/provision-node/fake")
        assert restore.returncode == 0, restore.stderr


def test_a_lost_node_fails_only_its_slice_and_retry_finishes_on_the_other(applied, lab_ssh, addresses, tmp_path):
    from provision.lab import container

    env = {**os.environ, **_secrets(), **DECOY}
    lost = tmp_path / "lost.json"
    # --full: every role runs in full, so node2's slice is still running when it goes away.
    proc = subprocess.Popen([sys.executable, "-m", "provision.cli", "apply", str(SPEC), "--full",
                             "--report-json", str(lost)], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            # The slice has started once its folder is on node2's tmpfs.
            if lab_ssh.run(addresses["node2"], "ls /run/provision-node/ 2>/dev/null", timeout=15).stdout.strip():
                break
            time.sleep(0.5)
        else:
            raise AssertionError("node2's slice never started")
        time.sleep(3)
        container.stop([container.LabHost("node2", addresses["node2"])], timeout=10)
        stdout, stderr = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 4, stdout[-4000:] + stderr[-4000:]
    rep = json.loads(lost.read_text())
    failed = {h for h, s in rep["hosts"].items() if s["failed"] or s["unreachable"]}
    assert failed == {"nws3", "nws4"}, rep["hosts"]
    assert all(rep["hosts"][h]["unreachable"] for h in failed)
    messages = [o["message"] for o in rep["outcomes"] if o["host"] in failed and o["status"] == "unreachable"]
    assert messages and all("execution node node2" in m for m in messages), messages
    assert "nws3" in stderr and "nws4" in stderr

    retry = tmp_path / "retry.json"
    again = provision("apply", str(SPEC), "--retry-failed", "--report-json", str(retry))
    assert again.returncode == 0, again.stdout[-6000:] + again.stderr[-4000:]
    assert "left out, not answering: node2" in again.stderr
    rep = json.loads(retry.read_text())
    assert {h: s["node"] for h, s in rep["hosts"].items()} == {"nws3": "node1", "nws4": "node1"}
    got = lab_ssh.run(addresses["nws4"], "getent passwd alice")
    assert got.returncode == 0 and got.stdout.startswith("alice:"), got.stdout + got.stderr
