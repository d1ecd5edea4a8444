"""The trust boundary on real hosts: spec data is never evaluated by Ansible, and a dry
run for an untrusted spec resolves and sends no secret.

A model that bypasses validation carries a template payload in every free-text field
(share comments, printer descriptions, full names, group descriptions) and in a user's
password; the real roles apply it to the workgroup lab, through the engine and through
the inventory ``provision inventory -o`` writes for plain ansible-playbook. No marker
file may appear on the controller or any host, the comment shows literally in
``smbclient -L`` and the password with braces logs in as it is.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

from provision import inventory, runner, secrets, spec
from provision.cli import cli
from provision.model import Network

pytestmark = pytest.mark.lab

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "inventories" / "lab-workgroup.yml"
PASSWORDS = {"alice": "Alice-Lab-Pw-2026", "bob": "Bob-Lab-Pw-2026", "carol": "Carol-Lab-Pw-2026"}
ENV = {f"LAB_{u.upper()}_PW": pw for u, pw in PASSWORDS.items()}


def _payload(marker: str) -> str:
    return (f"{{{{ lookup('ansible.builtin.pipe', 'touch {marker}') }}}}"
            "{{ '%c' | format(10) }}{% if 1 %}x{% endif %}")


def _poisoned(net: Network, text: str) -> Network:
    """Free text replaced by the payload everywhere the roles write it."""
    hosts = tuple(
        dataclasses.replace(
            h,
            shares=tuple(dataclasses.replace(s, comment=text) for s in h.shares),
            printers=tuple(dataclasses.replace(p, description=text) for p in h.printers),
        )
        for h in net.hosts
    )
    users = tuple(dataclasses.replace(u, full_name=text) for u in net.users)
    groups = tuple(dataclasses.replace(g, description=text) for g in net.groups)
    return dataclasses.replace(net, hosts=hosts, users=users, groups=groups)


@pytest.fixture(scope="module")
def lab(lab_factory, tmp_path_factory):
    saved = dict(os.environ)
    state = tmp_path_factory.mktemp("trust-state")
    os.environ.update(ENV, XDG_STATE_HOME=str(state))
    try:
        net = spec.load_network(SPEC)
        lab_factory(net.hosts)
        yield net
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _no_marker_anywhere(lab_ssh, net: Network, marker: str) -> None:
    assert not Path(marker).exists(), "a spec value ran as a template on the controller"
    for h in net.hosts:
        res = lab_ssh.run(h.address, f"test -e {shlex.quote(marker)}; echo $?")
        assert res.stdout.strip() == "1", f"{h.name}: a spec value ran as a template on the host"


def test_roles_apply_hostile_text_literally(lab, lab_ssh, monkeypatch: pytest.MonkeyPatch) -> None:
    marker = f"/tmp/provision-marker-{uuid.uuid4().hex}"
    text = _payload(marker)
    # A password may hold braces: it is a password, not a template.
    hostile_pw = "Pw-{{ lookup('ansible.builtin.pipe', 'touch " + marker + "') }}-9"
    monkeypatch.setenv("LAB_ALICE_PW", hostile_pw)
    net = _poisoned(lab, text)
    result = runner.run(net, runner.RunOptions(full=True))
    assert result.ok, [f"{o.host}: {o.task}: {o.message}" for o in result.failures()]
    _no_marker_anywhere(lab_ssh, net, marker)
    peers = {h.name: h.address for h in net.hosts}
    # The comment is served as the literal text (Samba shows the share comment in -L).
    listing = lab_ssh.run(peers["peer1"], f"PASSWD={shlex.quote(hostile_pw)} smbclient -L //peer2 -U alice -t 10")
    assert listing.returncode == 0, listing.stdout + listing.stderr
    assert "lookup('ansible.builtin.pipe'" in listing.stdout
    gecos = lab_ssh.run(peers["peer2"], "getent passwd alice | cut -d: -f5")
    assert "{{ lookup(" in gecos.stdout


def test_written_inventory_is_unsafe_for_plain_ansible_playbook(lab, lab_ssh, tmp_path: Path) -> None:
    marker = f"/tmp/provision-marker-{uuid.uuid4().hex}"
    net = _poisoned(lab, _payload(marker))
    inv = tmp_path / "inventory"
    inventory.write_inventory(net, inv)
    with secrets.secrets_file(secrets.secret_vars(net)) as secrets_path:
        proc = subprocess.run(
            [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(inv), "site.yml", "--check",
             "-e", f"@{secrets_path}"],
            cwd=ROOT / "playbooks", capture_output=True, text=True, timeout=900, check=False,
            env={**os.environ, "ANSIBLE_CONFIG": str(inv / "ansible.cfg")},
        )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    _no_marker_anywhere(lab_ssh, net, marker)


def test_check_without_secrets_sends_none_and_touches_nothing(lab, lab_ssh, tmp_path: Path) -> None:
    # The real spec applied again (it repairs what the hostile runs above left).
    assert runner.run(lab, runner.RunOptions(full=True)).ok
    before = {h.name: lab_ssh.run(h.address, "sha256sum /var/lib/provision/converged.json /etc/samba/smb.conf").stdout
              for h in lab.hosts}
    for name in ENV:
        os.environ.pop(name, None)
    arts = tmp_path / "artifacts"
    result = CliRunner().invoke(cli, ["apply", str(SPEC), "--check", "--no-secrets", "--full",
                                      "--keep-artifacts", str(arts)])
    assert result.exit_code == 0, result.output
    assert "check mode, nothing changed" in result.output
    after = {h.name: lab_ssh.run(h.address, "sha256sum /var/lib/provision/converged.json /etc/samba/smb.conf").stdout
             for h in lab.hosts}
    assert after == before
    blobs = [result.output] + [p.read_text(errors="replace") for p in arts.rglob("*") if p.is_file()]
    for pw in PASSWORDS.values():
        assert not any(pw in b for b in blobs)
    assert not list(secrets.SECRETS_BASE.glob(f"provision-secrets-{os.getpid()}-*"))
    # Without --check it is refused before anything is contacted.
    refused = CliRunner().invoke(cli, ["apply", str(SPEC), "--no-secrets"])
    assert refused.exit_code == 2 and "--check" in refused.output
    os.environ.update(ENV)


def test_operator_known_hosts_overrides_the_spec(lab, tmp_path: Path) -> None:
    """A pipeline's own known_hosts decides which hosts are trusted, not the spec's."""
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    trusted = CliRunner().invoke(cli, ["preflight", str(SPEC)])
    assert trusted.exit_code == 0, trusted.output
    refused = CliRunner().invoke(cli, ["preflight", str(SPEC), "--known-hosts", str(empty)])
    assert refused.exit_code == 3, refused.output
    assert "host key" in refused.output.lower()
    assert empty.read_text() == ""  # nothing recorded without --accept-new-host-keys
