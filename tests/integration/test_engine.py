"""The engine on real lab hosts: preflight, apply, unreachable hosts, retry, reports."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

from provision.cli import cli
from provision.errors import EXIT_APPLY_FAILED, EXIT_PREFLIGHT
from provision.lab import IDENTITY_FILE, KNOWN_HOSTS

pytestmark = pytest.mark.lab

SECRET = "Engine-Test-Secret-9931"


def provision(*args: str) -> tuple[int, str]:
    if args and args[0] == "apply" and "--yes" not in args:  # variants back and forth; the prompt has its own test
        args = (*args, "--yes")
    result = CliRunner().invoke(cli, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def engine_spec(lab_hosts, tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("engine")
    os.environ["XDG_STATE_HOME"] = str(tmp / "state")
    os.environ["ENGINE_TEST_PW"] = SECRET
    hosts = "\n".join(f"  - {{name: {h.name}, address: {h.address}, role: peer}}" for h in lab_hosts)
    path = tmp / "engine.yml"
    path.write_text(
        "network: {name: enginetest, mode: workgroup, subnets: [10.231.0.0/16]}\n"
        f"ssh: {{user: root, identity_file: {IDENTITY_FILE}, known_hosts_file: {KNOWN_HOSTS}}}\n"
        "users: [{name: tester, password: {env: ENGINE_TEST_PW}}]\n"
        f"hosts:\n{hosts}\n"
    )
    return path


def test_preflight_passes_on_lab_hosts(engine_spec, tmp_path) -> None:
    report = tmp_path / "pre.json"
    code, out = provision("preflight", str(engine_spec), "--report-json", str(report))
    assert code == 0, out
    checks = json.loads(report.read_text())["checks"]
    assert {c["status"] for c in checks} <= {"pass", "warn"}
    assert {c["name"] for c in checks} >= {"reachable", "host key", "auth", "sudo", "python3", "os", "clock"}


def test_preflight_rejects_a_changed_host_key(engine_spec, lab_hosts, tmp_path) -> None:
    victim = lab_hosts[1]
    fake = tmp_path / "fake_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(fake)], check=True)
    fake_pub = (tmp_path / "fake_key.pub").read_text().split()
    known = tmp_path / "known_hosts"
    lines = [ln for ln in KNOWN_HOSTS.read_text().splitlines() if victim.address not in ln.split(" ", 1)[0]]
    lines.append(f"{victim.address} {fake_pub[0]} {fake_pub[1]}")
    known.write_text("\n".join(lines) + "\n")
    spec = tmp_path / "changed-key.yml"
    spec.write_text(engine_spec.read_text().replace(str(KNOWN_HOSTS), str(known)))
    code, out = provision("preflight", str(spec))
    assert code == EXIT_PREFLIGHT, out
    assert "CHANGED host key" in out and victim.name in out
    # An unknown key is an error too, unless explicitly accepted.
    known.write_text("\n".join(ln for ln in lines if victim.address not in ln) + "\n")
    code, out = provision("preflight", str(spec), "--limit", victim.name)
    assert code == EXIT_PREFLIGHT and "--accept-new-host-keys" in out
    code, out = provision("preflight", str(spec), "--limit", victim.name, "--accept-new-host-keys")
    assert code == 0, out
    assert victim.address in known.read_text()


def test_apply_smoke_and_no_secret_anywhere(engine_spec, tmp_path, capfd) -> None:
    arts = tmp_path / "arts"
    code, out = provision("apply", str(engine_spec), "--playbook", "smoke.yml", "--keep-artifacts", str(arts),
                          "--report-json", str(tmp_path / "r.json"))
    assert code == 0, out
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["ok"] and all(s["failed"] == 0 for s in data["hosts"].values())
    captured = capfd.readouterr()
    blobs = [out, captured.out, captured.err] + [p.read_text(errors="replace") for p in arts.rglob("*") if p.is_file()]
    assert any("Use the secrets without showing them" in b for b in blobs)
    assert not any(SECRET in b for b in blobs)


def test_stopped_host_is_unreachable_others_finish_then_retry(engine_spec, lab_hosts, tmp_path) -> None:
    from provision import lab, report, results, runner, spec
    from provision.errors import ApplyError

    network = spec.load_network(engine_spec)
    victim = lab_hosts[2]
    result: dict[str, object] = {}

    def run() -> None:
        result["run"] = runner.run(network, runner.RunOptions(playbook="smoke.yml", extra_vars={"smoke_sleep": 8}))

    thread = threading.Thread(target=run)
    thread.start()
    time.sleep(4)  # the play is in its wait task now
    subprocess.run(["ssh", "-i", str(IDENTITY_FILE), "-o", f"UserKnownHostsFile={KNOWN_HOSTS}",
                    "-o", "BatchMode=yes", f"root@{victim.address}", "systemctl poweroff"], check=False,
                   capture_output=True, timeout=30)
    thread.join(timeout=600)
    run_result = result["run"]
    assert isinstance(run_result, results.RunResult)
    with pytest.raises(ApplyError) as excinfo:
        run_result.raise_for_status()
    assert excinfo.value.exit_code == EXIT_APPLY_FAILED
    assert victim.name in str(excinfo.value)
    assert run_result.hosts[victim.name].unreachable >= 1
    for h in lab_hosts[:2]:
        assert run_result.hosts[h.name].failed == 0 and run_result.hosts[h.name].unreachable == 0
        assert run_result.hosts[h.name].ok >= 5  # they finished the play
    junit = tmp_path / "junit.xml"
    report.write_junit(junit, report.run_junit(run_result))
    root = ET.parse(junit).getroot()
    failed = {c.get("classname") for c in root.iter("testcase") if c.find("failure") is not None}
    assert failed == {victim.name}

    lab.up(list(lab_hosts), add=bool(os.environ.get("PROVISION_LAB_KEEP")))  # bring it back
    code, out = provision("apply", str(engine_spec), "--playbook", "smoke.yml", "--retry-failed",
                          "--report-json", str(tmp_path / "retry.json"))
    assert code == 0, out
    assert list(json.loads((tmp_path / "retry.json").read_text())["hosts"]) == [victim.name]


def test_ctrl_c_stops_cleanly_with_summary_and_exit_5(engine_spec, tmp_path) -> None:
    import signal
    import sys

    env = dict(os.environ, XDG_STATE_HOME=str(tmp_path / "state"))
    before_shm = set(Path("/dev/shm").glob("provision-*"))
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "provision"), "apply", str(engine_spec), "--playbook", "smoke.yml",
         "--skip-preflight", "-e", "smoke_sleep=30"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )
    time.sleep(8)  # inside the wait task
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 5, out
    assert "interrupted" in out
    assert "host" in out and "changed" in out  # the per-host summary was printed
    assert not set(Path("/dev/shm").glob("provision-*")) - before_shm  # no secrets file left behind
    assert SECRET not in out
