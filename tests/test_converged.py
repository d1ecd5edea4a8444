"""The fast re-apply's probe (module provision_converged, role converged): run for real on
this machine against files in a temporary directory, and its controller-side filter."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
ROLE = ROOT / "playbooks" / "roles" / "converged"


def _load(path: Path, name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _filter() -> Any:
    return _load(ROOT / "playbooks" / "action_plugins" / "provision_converged.py", "converged_action")


MODULE = _load(ROOT / "playbooks" / "library" / "provision_converged.py", "provision_converged")


def probe(state: Path, roles: dict[str, Any], record: list[str] | None = None) -> dict[str, Any]:
    """The module's answer; each role's "passwords" go in the module's own (no_log) argument."""
    plain = {r: {k: v for k, v in spec.items() if k != "passwords"} for r, spec in roles.items()}
    passwords = {r: spec["passwords"] for r, spec in roles.items() if spec.get("passwords")}
    answer: dict[str, Any] = MODULE.probe(str(state), plain, passwords, record or [], write=True)
    return answer


@pytest.fixture
def host(tmp_path: Path) -> dict[str, Any]:
    conf = tmp_path / "etc" / "app.conf"
    conf.parent.mkdir()
    conf.write_text("a = 1\n")
    share = tmp_path / "srv" / "share"
    share.mkdir(parents=True)
    watch = {
        "files": [str(conf), str(tmp_path / "etc" / "absent.conf")],
        "dirs": [str(share)],
        "trees": [str(tmp_path / "srv")],
        "users": ["root", "no-such-user-xyz"],
        "groups": ["root"],
        "commands": [["cat", str(conf)]],
    }
    return {"state": tmp_path / "state" / "converged.json", "conf": conf, "share": share,
            "roles": {"app": {"inputs": "i1", "watch": watch}}}


def test_unrecorded_role_is_dirty_then_clean_after_record(host: dict[str, Any]) -> None:
    first = probe(host["state"], host["roles"])
    assert first["dirty"] == ["app"] and first["reasons"]["app"] == "never recorded"
    rec = probe(host["state"], host["roles"], record=["app"])
    assert rec["recorded"] == ["app"]
    again = probe(host["state"], host["roles"])
    assert again["dirty"] == [] and again["reasons"] == {} and again["recorded"] == []
    assert set(again["trees"]) == {str(host["share"].parent)}
    # The record is root's alone: it holds digests of the host's configuration.
    assert os.stat(host["state"]).st_mode & 0o777 == 0o600
    assert os.stat(host["state"].parent).st_mode & 0o777 == 0o700


def test_a_role_known_dirty_is_not_fingerprinted_and_the_request_comes_back(
    host: dict[str, Any], tmp_path: Path
) -> None:
    """A first apply pays for no watched command (a join test costs a DC round trip); the
    answer hands the request back, passwords left out, for the record step."""
    marker = tmp_path / "ran"
    watch = dict(host["roles"]["app"]["watch"], commands=[["touch", str(marker)]])
    roles = {"app": {"inputs": "i1", "watch": watch, "passwords": {"carol": "Secret-1"}}}
    first = probe(host["state"], roles)
    assert first["dirty"] == ["app"] and not marker.exists()
    # Trees are still answered: roles compare them across hosts.
    assert set(first["trees"]) == {str(host["share"].parent)}
    assert first["request"] == {"app": {"inputs": "i1", "watch": watch}}
    assert "Secret-1" not in json.dumps(first)
    assert not marker.exists()
    probe(host["state"], roles, record=["app"])
    assert marker.exists()
    marker.unlink()
    changed = {"app": dict(roles["app"], inputs="i2")}
    assert probe(host["state"], changed)["reasons"] == {"app": "inputs changed"} and not marker.exists()
    probe(host["state"], roles)
    assert marker.exists()


@pytest.mark.parametrize(
    "change",
    ["edit file", "chmod file", "create absent file", "chmod dir", "new file in tree", "new inputs"],
)
def test_any_change_makes_the_role_dirty(host: dict[str, Any], change: str) -> None:
    probe(host["state"], host["roles"], record=["app"])
    roles = host["roles"]
    if change == "edit file":
        host["conf"].write_text("a = 2\n")
    elif change == "chmod file":
        host["conf"].chmod(0o600)
    elif change == "create absent file":
        Path(roles["app"]["watch"]["files"][1]).write_text("")
    elif change == "chmod dir":
        host["share"].chmod(0o700)
    elif change == "new file in tree":
        (host["share"] / "new.txt").write_text("x")
    else:
        roles = {"app": dict(roles["app"], inputs="i2")}
    answer = probe(host["state"], roles)
    assert answer["dirty"] == ["app"]
    assert answer["reasons"]["app"] == ("inputs changed" if change == "new inputs" else "live state changed")


def test_role_without_watch_list_always_runs(host: dict[str, Any]) -> None:
    roles = {"app": host["roles"]["app"], "blind": {"inputs": "x", "watch": None}}
    probe(host["state"], roles, record=["app"])
    answer = probe(host["state"], roles)
    assert answer["dirty"] == ["blind"] and answer["reasons"] == {"blind": "no watch list"}


def test_record_keeps_other_roles_and_survives_a_corrupt_file(host: dict[str, Any]) -> None:
    roles = {"a": host["roles"]["app"], "b": host["roles"]["app"]}
    probe(host["state"], roles, record=["a"])
    assert probe(host["state"], roles)["dirty"] == ["b"]
    probe(host["state"], roles, record=["b"])
    assert probe(host["state"], roles)["dirty"] == []
    host["state"].write_text("{not json")
    assert probe(host["state"], roles)["dirty"] == ["a", "b"]


def test_inputs_digest_covers_vars_and_code_but_never_secrets(tmp_path: Path) -> None:
    mod = _filter()
    roles_dir = tmp_path / "playbooks"
    (roles_dir / "roles" / "app" / "tasks").mkdir(parents=True)
    main = roles_dir / "roles" / "app" / "tasks" / "main.yml"
    main.write_text("---\n")
    ignore = "password|secret|^provision_(full|rollout_)"
    base = {"provision_users": ["alice"], "app_mode": "0750", "other_x": 1, "provision_full": True,
            "provision_user_passwords": {"alice": "S3cret-pw"},
            "app_converged_watch": {"files": ["/etc/x"], "passwords": {"alice": "S3cret-pw"}}}

    def digest(variables: dict[str, Any]) -> str:
        mod._tree_digest.cache_clear()
        return mod.converged_request(["app"], variables, str(roles_dir), ignore)["roles"]["app"]["inputs"]

    req = mod.converged_request(["app"], base, str(roles_dir), ignore)
    assert req["roles"]["app"] == {"inputs": req["roles"]["app"]["inputs"], "watch": {"files": ["/etc/x"]}}
    assert req["passwords"] == {"app": {"alice": "S3cret-pw"}}
    first = digest(base)
    assert digest({**base, "other_x": 2}) == first  # another role's variable
    assert digest({**base, "provision_full": False}) == first  # a run-time switch
    assert digest({**base, "provision_user_passwords": {"alice": "changed"}}) == first  # secrets stay out
    assert digest({**base, "app_mode": "0770"}) != first
    assert digest({**base, "provision_users": ["alice", "bob"]}) != first
    main.write_text("---\n- name: new task\n")
    assert digest(base) != first
    assert mod.converged_request(["app"], {}, str(roles_dir), ignore)["roles"]["app"]["watch"] is None


def test_inputs_are_digested_as_written_and_only_watch_lists_and_secrets_rendered(tmp_path: Path) -> None:
    """Rendering every role default for every host costs a Jinja compile each: the digest takes the
    variables as written (role defaults are code) with the host's name, address and groups."""
    mod = _filter()
    code = tmp_path / "playbooks"
    for role in ("app", "dep", "converged"):
        (code / "roles" / role).mkdir(parents=True)
    ignore = "password|secret"
    rendered: list[Any] = []

    def render(value: Any) -> Any:
        rendered.append(value)
        return {"files": ["/etc/app.conf"]} if isinstance(value, str) and "watch" in value else "Pw-1"

    base = {"app_count": "{{ provision_users | length }}", "dep_dir": "/srv/{{ inventory_hostname }}",
            "provision_users": ["alice"], "provision_admin_password": "{{ lookup('env', 'PW') }}",
            "app_converged_watch": "{{ watch }}", "converged_roles": ["app"], "unrelated": 1,
            "inventory_hostname": "ws1", "ansible_host": "10.231.0.31", "group_names": ["workstation"]}

    def digest(variables: dict[str, Any]) -> str:
        return mod.converged_request(["app"], variables, str(code), ignore, render)["roles"]["app"]["inputs"]

    req = mod.converged_request(["app"], base, str(code), ignore, render)
    assert req["roles"]["app"]["watch"] == {"files": ["/etc/app.conf"]}
    assert sorted(map(str, rendered)) == ["{{ lookup('env', 'PW') }}", "{{ watch }}"]
    first = digest(base)
    assert digest({**base, "unrelated": 2, "converged_roles": ["app", "x"]}) == first
    for change in ({"app_count": "{{ provision_users | length + 1 }}"}, {"dep_dir": "/srv/x"},
                   {"provision_users": ["alice", "bob"]}, {"ansible_host": "10.231.0.99"},
                   {"group_names": ["file_server"]}, {"inventory_hostname": "ws2"}):
        assert digest({**base, **change}) != first, change


def test_secrets_under_innocent_names_are_scrubbed_by_value(tmp_path: Path) -> None:
    """A password copied into a variable the ignore list does not name never reaches the digest."""
    mod = _filter()
    roles_dir = tmp_path / "playbooks"
    roles_dir.mkdir()
    ignore = "password|secret"

    def request(pw: str) -> dict[str, Any]:
        variables = {"provision_user_passwords": {"alice": pw}, "app_argv": ["tool", f"--pw={pw}"],
                     "app_converged_watch": {"commands": [["tool", pw]]}}
        return mod.converged_request(["app"], variables, str(roles_dir), ignore)["roles"]["app"]

    one, two = request("Fir5t-secret"), request("Sec0nd-secret")
    assert one["inputs"] == two["inputs"]  # the value is gone, so a change of it is invisible here
    assert "Fir5t-secret" not in json.dumps(one)
    assert one["watch"] == {"commands": [["tool", "\0secret\0"]]}


def test_every_secret_the_engine_passes_stays_out_of_the_inputs(monkeypatch: pytest.MonkeyPatch) -> None:
    """A new secret variable must match converged_ignore_vars, or its hash would reach the hosts."""
    import re

    import yaml

    from provision import secrets, spec

    for name in ("LAB_ADMIN_PW", "LAB_ALICE_PW", "LAB_BOB_PW", "LAB_CAROL_PW"):
        monkeypatch.setenv(name, "x-Secret-1")
    ignore = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())["converged_ignore_vars"]
    names = set()
    for path in ("lab-domain.yml", "lab-workgroup.yml"):
        names |= set(secrets.secret_vars(spec.load_network(ROOT / "inventories" / path)))
    assert names >= {"provision_user_passwords", "provision_domain_admin_password"}
    assert [n for n in names if not re.search(ignore, n)] == []


def test_unverifiable_passwords_make_the_role_dirty(host: dict[str, Any]) -> None:
    """Wanted Samba passwords that cannot be checked (no python3-samba or pdbedit here) never pass as clean."""
    probe(host["state"], host["roles"], record=["app"])
    roles = {"app": dict(host["roles"]["app"], passwords={"alice": "S3cret-pw"})}
    if importlib.util.find_spec("samba") is not None:
        pytest.skip("python3-samba is installed on this machine")
    answer = probe(host["state"], roles)
    assert answer["dirty"] == ["app"] and answer["reasons"]["app"] == "a Samba password differs"


def test_the_module_through_ansible_masks_passwords_and_records_nothing_in_check_mode(tmp_path: Path) -> None:
    """What a play gets: the answer with the reasons in the clear, the wanted passwords masked
    (a no_log argument), and a check-mode record that writes nothing."""
    from ansible_modules import run_module

    state = tmp_path / "state" / "converged.json"
    conf = tmp_path / "app.conf"
    conf.write_text("x\n")
    roles = {"app": {"inputs": "i1", "watch": {"files": [str(conf)]}}}
    args = {"state_file": str(state), "roles": roles, "passwords": {"app": {"carol": "Wanted-Pw-9"}}}
    first = run_module("provision_converged", args)
    assert not first["_failed"] and first["changed"] is False
    assert first["dirty"] == ["app"] and first["why"] == "app: never recorded"
    assert "Wanted-Pw-9" not in json.dumps(first)
    checked = run_module("provision_converged", {**args, "record": ["app"]}, check=True)
    assert checked["recorded"] == ["app"] and not state.exists()
    recorded = run_module("provision_converged", {**args, "record": ["app"], "passwords": {}})
    assert recorded["recorded"] == ["app"] and state.exists()
    again = run_module("provision_converged", {**args, "passwords": {}})
    assert again["dirty"] == [] and again["why"] == "nothing to do: every role is converged"


def test_a_full_run_makes_every_role_dirty_and_records_as_usual(host: dict[str, Any]) -> None:
    """provision apply --full: the module answers every role dirty (the play's meta task reads
    only that answer), and recording still works."""
    probe(host["state"], host["roles"], record=["app"])
    plain = {"app": host["roles"]["app"]}
    answer = MODULE.probe(str(host["state"]), plain, {}, [], write=True, full=True)
    assert answer["dirty"] == ["app"] and answer["reasons"] == {"app": "full run asked for"}
    assert answer["why"] == "app: full run asked for"
    again = MODULE.probe(str(host["state"]), plain, {}, ["app"], write=True, full=True)
    assert again["recorded"] == ["app"] and again["dirty"] == []


def test_the_probe_names_the_installed_packages_whatever_the_roles_say(tmp_path: Path) -> None:
    """dpkg's own answer on this Debian machine: an unknown package is missing, the order is the
    one asked for, and a first apply (every role never recorded) still gets the answer."""
    assert MODULE.installed_packages(["no-such-package-xyz", "python3", "bash"]) == ["python3", "bash"]
    assert MODULE.installed_packages([]) == []
    from ansible_modules import run_module

    answer = run_module(
        "provision_converged",
        {"state_file": str(tmp_path / "converged.json"), "roles": {"app": {"inputs": "i", "watch": {}}},
         "packages": ["bash", "no-such-package-xyz"]},
    )
    assert answer["dirty"] == ["app"] and answer["packages_installed"] == ["bash"]
    assert run_module("provision_converged", {"state_file": str(tmp_path / "c.json")})["packages_installed"] == []


def test_the_probe_reports_the_host_name_and_whether_apt_has_lists(tmp_path: Path) -> None:
    """base sets the running host name only where it differs, and has apt update a cache with
    no package index: the answers must be this host's."""
    import socket

    facts = MODULE.probe(str(tmp_path / "c.json"), {}, {}, [], write=False)["facts"]
    assert facts["hostname"] == socket.gethostname()
    assert facts["python"] and "ssh_connection" in facts
    lists = Path("/var/lib/apt/lists")
    assert facts["apt_lists"] is (lists.is_dir() and any("_Packages" in p.name for p in lists.iterdir()))
