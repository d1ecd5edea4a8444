"""The engine end to end over ansible_connection=local (loopback only): events, stats,
reports, --retry-failed state, and no secret in the artifacts or the output."""

from __future__ import annotations

import os
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from provision import report, runner, secrets, spec
from provision.errors import ApplyError

ROOT = Path(__file__).resolve().parent.parent
SECRETS = {"LAB_ALICE_PW": "Al1ce-s3cret-XyZ", "LAB_BOB_PW": "B0b-s3cret-QwE", "LAB_CAROL_PW": "C4rol-s3cret-RtY"}


@pytest.fixture
def network(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    for k, v in SECRETS.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return spec.load_network(ROOT / "inventories" / "lab-workgroup.yml")


def _local(tmp_path: Path, **extra):
    return {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
            "smoke_marker": str(tmp_path / "marker-{{ inventory_hostname }}"), **extra}


def test_run_reports_failures_by_host_and_task_and_leaks_no_secret(network, tmp_path: Path, capfd) -> None:
    arts = tmp_path / "artifacts"
    seen = []
    result = runner.run(
        network,
        runner.RunOptions(playbook="smoke.yml", keep_artifacts=arts,
                          extra_vars=_local(tmp_path, smoke_fail_hosts=["peer2"])),
        progress=seen.append,
    )
    assert result.status == "failed" and not result.ok
    assert result.failed_hosts() == ["peer2"]
    (failure,) = result.failures()
    assert (failure.host, failure.task) == ("peer2", "Fail where asked to")
    assert "smoke failure requested" in failure.message
    assert result.hosts["peer1"].changed == 1 and result.hosts["peer1"].failed == 0
    assert any(p.play == "Smoke test" for p in seen)
    with pytest.raises(ApplyError, match="peer2: Fail where asked to"):
        result.raise_for_status()

    junit = tmp_path / "junit.xml"
    report.write_junit(junit, report.run_junit(result))
    root = ET.parse(junit).getroot()
    failed_cases = [c for c in root.iter("testcase") if c.find("failure") is not None]
    assert [c.get("classname") for c in failed_cases] == ["peer2"]

    # The secrets were usable by the play (assert task passed) but appear nowhere.
    out, err = capfd.readouterr()
    blobs = [out, err] + [p.read_text(errors="replace") for p in arts.rglob("*") if p.is_file()]
    for value in SECRETS.values():
        assert not any(value in b for b in blobs), "a secret leaked"
    assert any("Use the secrets without showing them" in b for b in blobs)  # the artifacts are real
    # The secrets file and its folder on the tmpfs are gone.
    assert not list(secrets.SECRETS_BASE.glob(f"provision-secrets-{os.getpid()}-*"))

    # --retry-failed remembers exactly the failed host.
    assert runner.last_failed(network) == ["peer2"]
    again = runner.run(network, runner.RunOptions(playbook="smoke.yml", limit=["peer2"], extra_vars=_local(tmp_path)))
    assert again.ok and list(again.hosts) == ["peer2"]
    assert runner.last_failed(network) == []


def test_second_run_changes_nothing(network, tmp_path: Path) -> None:
    opts = runner.RunOptions(playbook="smoke.yml", extra_vars=_local(tmp_path))
    first = runner.run(network, opts)
    assert first.ok and sum(s.changed for s in first.hosts.values()) == 3
    second = runner.run(network, opts)
    assert second.ok and sum(s.changed for s in second.hosts.values()) == 0
    text = report.run_summary(second)
    assert "3 host(s), 0 change(s), 0 host(s) failed" in text


def test_missing_secret_is_a_clear_error(network, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from provision.errors import SecretError

    monkeypatch.delenv("LAB_BOB_PW")
    with pytest.raises(SecretError, match="LAB_BOB_PW is not set"):
        runner.run(network, runner.RunOptions(playbook="smoke.yml", extra_vars=_local(tmp_path)))


def test_a_failed_loop_is_reported_with_what_its_items_said() -> None:
    """Ansible's "One or more items failed" says nothing: the report names each item's failure."""
    from provision.runner import LOOP_FAILED, _message

    res = {"msg": LOOP_FAILED, "results": [
        {"failed": False, "msg": "fine"},
        {"failed": True, "msg": "DC1 is this DC itself"},
        {"failed": True, "censored": "the output has been hidden"},
    ]}
    assert _message(res) == "DC1 is this DC itself; the output has been hidden"
    assert _message({"msg": LOOP_FAILED, "results": [{"failed": True}]}) == LOOP_FAILED
    assert _message({"msg": "plain"}) == "plain"
