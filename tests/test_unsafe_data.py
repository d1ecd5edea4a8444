"""Layer 1 of the trust boundary, without the lab: Ansible never evaluates spec data.

A model that bypasses validation carries a template payload in every string field,
the secrets too; real ansible-playbook runs (over ansible_connection=local) render
every variable, and the payload's command must not have run: no marker file, and the
literal text where it is rendered. The lab test does the same with the real roles.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from provision import inventory, runner, secrets, spec
from provision.model import Network, SecretRef

ROOT = Path(__file__).resolve().parent.parent
RENDER = ROOT / "tests" / "data" / "playbooks" / "render.yml"
# Fields that are keys or names in the inventory (validated as [a-z0-9_.-]); not poisoned here.
STRUCTURAL = {"name", "source", "base_dir", "env", "file", "range_name", "users", "groups", "dcs", "owner", "group"}


def payload(marker: Path) -> str:
    """Each way a value could turn into code or a line break if Ansible templated it."""
    return (
        f"{{{{ lookup('ansible.builtin.pipe', 'touch {marker}') }}}}"
        "{{ '%c' | format(10) }}{% if true %}x{% endif %}{# c #}"
    )


def poison(value: Any, text: str) -> Any:
    """A copy of a frozen model with ``text`` in every free string field."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {}
        for f in dataclasses.fields(value):
            current = getattr(value, f.name)
            if isinstance(current, tuple) and current and dataclasses.is_dataclass(current[0]):
                changes[f.name] = tuple(poison(v, text) for v in current)  # hosts, users, shares...
            elif dataclasses.is_dataclass(current):
                changes[f.name] = poison(current, text)
            elif f.name in STRUCTURAL:
                continue
            elif isinstance(current, str) and not hasattr(current, "value"):  # not an enum
                changes[f.name] = text
            elif isinstance(current, tuple):
                changes[f.name] = tuple(poison(v, text) for v in current)
        return dataclasses.replace(value, **changes)
    if isinstance(value, str):
        return text  # subnets, forwarders, allow_from...
    return value


@pytest.fixture
def hostile(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> tuple[Network, Path, str]:
    marker = tmp_path / "MARKER"
    text = payload(marker)
    net = spec.load_network(ROOT / "inventories" / "lab-workgroup.yml")
    net = poison(net, text)
    net = dataclasses.replace(net, users=tuple(dataclasses.replace(u, password=SecretRef(env="HOSTILE_PW"))
                                               for u in net.users))
    monkeypatch.setenv("HOSTILE_PW", text)  # a password is a password, not a template
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return net, marker, text


def _check_rendered(out: Path, marker: Path, text: str) -> None:
    assert not marker.exists(), "a spec value ran as a template on the controller"
    files = sorted(out.glob("*.json"))
    assert files, "the playbook rendered nothing"
    for f in files:
        rendered = json.loads(f.read_text())
        blob = json.dumps(rendered)
        assert "\\n" not in blob.replace("\\\\n", ""), f"a template became a line break in {f.name}"
        assert text in rendered["provision_users"][0]["full_name"]
        assert "{{ lookup(" in rendered["ansible_ssh_common_args"]  # shell-quoted, but literal
        if "provision_shares" in rendered:
            assert rendered["provision_shares"][0]["comment"] == text


def test_engine_hands_ansible_spec_data_and_secrets_as_unsafe(hostile, tmp_path: Path) -> None:
    net, marker, text = hostile
    out = tmp_path / "out"
    out.mkdir()
    opts = runner.RunOptions(
        playbook=str(RENDER),
        extra_vars={"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                    "render_dir": str(out)},
    )
    result = runner.run(net, opts)
    assert result.ok, result.to_dict()
    _check_rendered(out, marker, text)
    rendered = json.loads((out / "peer1.json").read_text())
    assert rendered["provision_user_passwords"]["alice"] == text


def test_written_inventory_is_unsafe_for_plain_ansible_playbook(hostile, tmp_path: Path) -> None:
    net, marker, text = hostile
    inv = tmp_path / "inv"
    inventory.write_inventory(net, inv)
    out = tmp_path / "out"
    out.mkdir()
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(inv), str(RENDER),
         "-e", "ansible_connection=local", "-e", f"ansible_python_interpreter={sys.executable}",
         "-e", f"render_dir={out}"],
        capture_output=True, text=True, check=False,
        env={**os.environ, "ANSIBLE_CONFIG": str(inv / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"},
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    _check_rendered(out, marker, text)
    assert f"comment={text}" in proc.stdout  # the literal text where Ansible renders it


def test_inventory_header_cannot_be_injected_through_the_file_name(tmp_path: Path) -> None:
    net = spec.load_network(ROOT / "inventories" / "lab-workgroup.yml")
    net = dataclasses.replace(net, source="evil\nprovision_injected: yes\n# x.yml")
    inventory.write_inventory(net, tmp_path)
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("!unsafe", lambda loader, node: loader.construct_scalar(node))
    data = yaml.load((tmp_path / "group_vars" / "all.yml").read_text(), Loader=Loader)
    assert data["provision_network_name"] == "labwg"
    assert "provision_injected" not in data
    header = (tmp_path / "group_vars" / "all.yml").read_text().splitlines()[1]
    assert header.startswith("# Generated by provision from \"evil\\nprovision_injected")


def test_secrets_file_refuses_a_disk_and_cleans_up_after_killed_runs(tmp_path: Path) -> None:
    from provision.errors import SecretError

    with pytest.raises(SecretError, match="not a RAM filesystem"), secrets.secrets_file({"x": "y"}, base=tmp_path):
        pass
    # A folder left by a run that was killed (its pid is gone) is removed by the next run.
    proc = subprocess.Popen(["true"])
    proc.wait()
    stale = secrets.SECRETS_BASE / f"provision-secrets-{proc.pid}-abc"
    stale.mkdir(mode=0o700)
    (stale / "secrets.yml").write_text("x: y")
    live = secrets.SECRETS_BASE / f"provision-secrets-{os.getpid()}-live"
    live.mkdir(mode=0o700)
    try:
        with secrets.secrets_file({"a": "b"}) as path:
            assert path.parent.name.startswith(f"provision-secrets-{os.getpid()}-")
            assert not stale.exists()
            assert live.exists()  # a running process's folder is left alone
    finally:
        live.rmdir()


def test_artifacts_hold_no_environment_variable_outside_the_allow_list(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    decoy = "decoy-ci-token-8c1f0e"
    monkeypatch.setenv("UNRELATED_CI_TOKEN", decoy)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    for k, v in {"LAB_ALICE_PW": "Al1ce-pw-1", "LAB_BOB_PW": "B0b-pw-2", "LAB_CAROL_PW": "C4rol-pw-3"}.items():
        monkeypatch.setenv(k, v)
    net = spec.load_network(ROOT / "inventories" / "lab-workgroup.yml")
    arts = tmp_path / "artifacts"
    result = runner.run(net, runner.RunOptions(
        playbook="smoke.yml", keep_artifacts=arts,
        extra_vars={"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                    "smoke_marker": str(tmp_path / "m-{{ inventory_hostname }}")}))
    assert result.ok
    blobs = [p.read_text(errors="replace") for p in arts.rglob("*") if p.is_file()]
    assert blobs
    for value in (decoy, "Al1ce-pw-1", "B0b-pw-2"):
        assert not any(value in b for b in blobs), value
    assert os.environ["UNRELATED_CI_TOKEN"] == decoy  # restored after the run
