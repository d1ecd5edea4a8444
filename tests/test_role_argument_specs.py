"""Every role documents its variables in meta/argument_specs.yml, the way ansible.builtin modules
document their options, and Ansible accepts the role's own defaults against that spec.

Ansible validates a role's spec when the role starts, against the rendered values of its
variables: a spec that drifts from defaults/main.yml either fails real runs or documents
variables that do not exist. No lab, no network: the Ansible part runs on localhost only.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from provision.inventory import build_inventory
from provision.spec import load_network

ROOT = Path(__file__).resolve().parent.parent
PLAYBOOKS = ROOT / "playbooks"
ROLES = PLAYBOOKS / "roles"
ROLE_NAMES = sorted(p.name for p in ROLES.iterdir() if p.is_dir())
ANSIBLE_PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")
# The project's notion of a secret variable name (the converged role's converged_ignore_vars).
SECRET_NAME = re.compile("password|secret")
TYPES = {"str", "bool", "int", "float", "list", "dict", "raw", "path"}
# Example networks whose hosts the defaults are also rendered for, with the variables the engine
# gives them: both DCs, a file and a mail server, an sssd and a winbind workstation, workgroup peers.
EXAMPLE_NETWORKS = ["lab-domain.yml", "lab-workgroup.yml"]


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def _specs(role: str) -> dict[str, Any]:
    """The entry points of the role's argument spec (fails when the file is missing or malformed)."""
    path = ROLES / role / "meta" / "argument_specs.yml"
    assert path.is_file(), f"{role}: no meta/argument_specs.yml"
    data = _load(path)
    assert isinstance(data, dict) and isinstance(data.get("argument_specs"), dict), f"{role}: no argument_specs"
    specs: dict[str, Any] = data["argument_specs"]
    for name, entry in specs.items():
        assert isinstance(entry, dict) and isinstance(entry.get("options"), dict), f"{role}: {name} has no options"
    return specs


def _defaults(role: str) -> dict[str, Any]:
    data = _load(ROLES / role / "defaults" / "main.yml")
    return data or {}


def _has_main(role: str) -> bool:
    return (ROLES / role / "tasks" / "main.yml").is_file()


def _documented(role: str) -> set[str]:
    """What the spec documents as the role's variables: the options of ``main``, or of every entry
    point for a role without tasks/main.yml (converged is only entered through tasks_from)."""
    specs = _specs(role)
    if _has_main(role):
        return set(specs["main"]["options"])
    return {name for entry in specs.values() for name in entry["options"]}


def _templated(value: Any) -> bool:
    """Whether a default holds Jinja anywhere (it is rendered at run time, so it is no literal)."""
    if isinstance(value, str):
        return "{{" in value or "{%" in value
    if isinstance(value, dict):
        return any(_templated(v) for v in value.values())
    if isinstance(value, list):
        return any(_templated(v) for v in value)
    return False


def _walk_options(options: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    for name, spec in options.items():
        yield path + name, spec
        yield from _walk_options(spec.get("options") or {}, f"{path}{name}.")


def _tasks_from_uses() -> set[tuple[str, str]]:
    """(role, entry point) for every import_role/include_role with tasks_from in the playbooks and roles."""
    files = [*PLAYBOOKS.glob("*.yml"), *ROLES.glob("*/tasks/*.yml"), *ROLES.glob("*/handlers/*.yml")]
    uses: set[tuple[str, str]] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "tasks_from" in node and "name" in node:
                uses.add((str(node["name"]), Path(str(node["tasks_from"])).stem))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for path in files:
        walk(_load(path))
    return uses


def test_every_role_is_covered() -> None:
    """The role list the other tests are parametrized with is not silently empty."""
    assert len(ROLE_NAMES) >= 9, ROLE_NAMES
    assert "converged" in ROLE_NAMES and "base" in ROLE_NAMES


@pytest.mark.parametrize("role", ROLE_NAMES)
def test_entry_points_are_the_role_task_files(role: str) -> None:
    """``main`` exactly when the role has tasks/main.yml; any other entry point names a task file."""
    specs = _specs(role)
    assert ("main" in specs) == _has_main(role), f"{role}: entry points {sorted(specs)}"
    for name in specs:
        assert (ROLES / role / "tasks" / f"{name}.yml").is_file(), f"{role}: entry point {name} has no tasks/{name}.yml"


def test_every_tasks_from_has_an_entry_point() -> None:
    """A task file entered from outside the role is documented like ``main``."""
    uses = _tasks_from_uses()
    assert uses, "no tasks_from found: the scan is broken"
    missing = sorted(f"{role}: {name}" for role, name in uses if name not in _specs(role))
    assert not missing, f"tasks_from without an entry point in meta/argument_specs.yml: {missing}"


@pytest.mark.parametrize("role", ROLE_NAMES)
def test_options_are_exactly_the_defaults(role: str) -> None:
    """One option per variable of defaults/main.yml, and nothing else (vars/main.yml is internal)."""
    defaults = set(_defaults(role))
    documented = _documented(role)
    assert not defaults - documented, f"{role}: defaults without an option in the spec: {sorted(defaults - documented)}"
    assert not documented - defaults, f"{role}: options that are not defaults: {sorted(documented - defaults)}"
    for name, entry in _specs(role).items():
        extra = set(entry["options"]) - defaults
        assert not extra, f"{role}: entry point {name} documents non-defaults {sorted(extra)}"


@pytest.mark.parametrize("role", ROLE_NAMES)
def test_options_are_documented_and_typed(role: str) -> None:
    problems: list[str] = []
    for entry_name, entry in _specs(role).items():
        for name, spec in _walk_options(entry["options"]):
            where = f"{role}: {entry_name}: {name}"
            description = spec.get("description")
            if isinstance(description, str):
                description = [description]
            if not description or not all(isinstance(d, str) and d.strip() for d in description):
                problems.append(f"{where} has no description")
            if spec.get("type") not in TYPES:
                problems.append(f"{where} has no (known) type: {spec.get('type')!r}")
            if spec.get("type") == "list" and "elements" not in spec:
                problems.append(f"{where} is a list without elements")
            # A bool (a switch such as *_no_secrets or *_require_passwords) never holds a secret.
            secret = "." not in name and SECRET_NAME.search(name) and spec.get("type") != "bool"
            if secret and spec.get("no_log") is not True:
                problems.append(f"{where} looks like a secret but has no no_log: true")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("role", ROLE_NAMES)
def test_default_is_given_exactly_for_literal_defaults(role: str) -> None:
    """A literal default is repeated (and must match); a Jinja one is described, never copied."""
    defaults = _defaults(role)
    problems: list[str] = []
    for entry_name, entry in _specs(role).items():
        for name, spec in entry["options"].items():
            where = f"{role}: {entry_name}: {name}"
            if name not in defaults:
                continue  # reported by test_options_are_exactly_the_defaults
            value = defaults[name]
            if _templated(value):
                if "default" in spec:
                    problems.append(f"{where}: the default is a Jinja expression, the spec must not copy it")
            elif "default" not in spec:
                problems.append(f"{where}: literal default {value!r} missing from the spec")
            elif spec["default"] != value:
                problems.append(f"{where}: spec default {spec['default']!r} != defaults/main.yml {value!r}")
            if "choices" in spec and "default" in spec and spec["default"] not in spec["choices"]:
                problems.append(f"{where}: default {spec['default']!r} not among the choices")
    assert not problems, "\n".join(problems)


def _role_calls(node: Any) -> Iterator[tuple[str, str]]:
    """(role, entry point) of every role a play or task list runs: ``roles:`` entries and
    import_role/include_role tasks (their tasks_from, else main)."""
    if isinstance(node, dict):
        for key in ("ansible.builtin.import_role", "ansible.builtin.include_role", "import_role", "include_role"):
            if isinstance(node.get(key), dict):
                call = node[key]
                yield str(call["name"]), Path(str(call.get("tasks_from", "main"))).stem
        for item in node.get("roles") or []:
            yield (item if isinstance(item, str) else str(item.get("role") or item.get("name"))), "main"
        for key in ("pre_tasks", "tasks", "post_tasks", "block", "rescue", "always"):
            for task in node.get(key) or []:
                yield from _role_calls(task)


def _entry_points_run(calls: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """``calls`` and what they bring in: meta dependencies and the roles' own include_role calls."""
    done: set[tuple[str, str]] = set()
    todo = list(calls)
    while todo:
        role, entry = todo.pop()
        if (role, entry) in done:
            continue
        done.add((role, entry))
        meta = _load(ROLES / role / "meta" / "main.yml") or {}
        for dep in meta.get("dependencies") or []:
            todo.append((dep if isinstance(dep, str) else str(dep.get("role") or dep.get("name")), "main"))
        for tasks in (ROLES / role / "tasks").glob("*.yml"):
            for task in _load(tasks) or []:
                todo.extend(_role_calls(task))
    return done


def _plays_by_group() -> dict[str, set[tuple[str, str]]]:
    """Inventory group -> the (role, entry point) pairs the playbooks run on its hosts."""
    plays: dict[str, set[tuple[str, str]]] = {}
    for path in PLAYBOOKS.glob("*.yml"):
        for play in _load(path) or []:
            if isinstance(play, dict) and "hosts" in play:
                plays.setdefault(str(play["hosts"]), set()).update(_entry_points_run(set(_role_calls(play))))
    return plays


def _example_hosts() -> list[tuple[str, dict[str, Any], set[tuple[str, str]]]]:
    """(host, its variables, the entry points its plays run) for every host of the example networks:
    the variables the engine gives it (network, role group, host), plus dummy run-time secrets."""
    plays = _plays_by_group()
    hosts = []
    for name in EXAMPLE_NETWORKS:
        network = load_network(ROOT / "inventories" / name)
        inventory = build_inventory(network)
        ((mode, mode_group),) = inventory["all"]["children"].items()
        secrets = {
            "provision_domain_admin_password": "not-a-secret",
            "provision_user_passwords": {user.name: "not-a-secret" for user in network.users},
        }
        for group_name, group in mode_group["children"].items():
            for host, host_vars in group["hosts"].items():
                variables = {**inventory["all"]["vars"], **group["vars"], **host_vars, **secrets}
                entries = plays.get(group_name, set()) | plays.get(mode, set())
                hosts.append((f"{name}: {host}", variables, entries))
    return hosts


def _validation_playbook() -> tuple[list[dict[str, Any]], list[str]]:
    """The checks, as plays on localhost.

    The first play loads every role's variables (vars, then defaults; all first, because some
    defaults use another role's, as in a real play: the domain roles' watch lists use
    domain_common's) and checks every entry point with no inventory at all, every default taking
    its fallback. The others check, for each host of the example networks, the entry points its
    plays run, with that host's variables as play vars: the loaded defaults render anew in every
    play. The role's defaults (loaded with include_vars) are the provided arguments."""
    files = [ROLES / role / sub / "main.yml" for role in ROLE_NAMES for sub in ("vars", "defaults")]
    loads = [
        {
            "name": "Load the variables of every role",
            "ansible.builtin.include_vars": {"file": "{{ item }}"},
            "loop": [str(path) for path in files if path.is_file()],
        },
        {
            "name": "Load the defaults of every role as its arguments",
            "ansible.builtin.include_vars": {
                "file": f"{ROLES}/{{{{ item }}}}/defaults/main.yml",
                "name": "spec_test_{{ item }}",
            },
            "loop": ROLE_NAMES,
        },
    ]
    checks: list[str] = []

    def play(case: str, variables: dict[str, Any], entries: list[tuple[str, str]], first: list[Any]) -> dict[str, Any]:
        checks.extend(f"{case}: {role} {entry}" for role, entry in entries)
        items = [
            {"role": role, "entry": entry, "options": sorted(_specs(role)[entry]["options"])} for role, entry in entries
        ]
        validate = {
            "name": "Validate",
            "ansible.builtin.validate_argument_spec": {
                "argument_spec": (
                    f"{{{{ (lookup('ansible.builtin.file', '{ROLES}/' ~ item.role ~ '/meta/argument_specs.yml')"
                    " | from_yaml).argument_specs[item.entry].options }}"
                ),
                "provided_arguments": (
                    "{{ lookup('ansible.builtin.vars', 'spec_test_' ~ item.role)"
                    " | dict2items | selectattr('key', 'in', item.options) | items2dict }}"
                ),
            },
            "loop": items,
            "loop_control": {"label": "{{ item.role }} {{ item.entry }}"},
            # Every failure is reported, not just the first.
            "ignore_errors": True,
        }
        return {
            "name": case,
            "hosts": "localhost",
            "connection": "local",
            "gather_facts": False,
            "vars": variables,
            "tasks": [*first, validate],
        }

    plays = [play("no inventory", {}, [(role, entry) for role in ROLE_NAMES for entry in _specs(role)], loads)]
    for host, variables, entries in _example_hosts():
        plays.append(play(host, variables, sorted(entries), []))
    return plays, checks


ITEM_RESULT = re.compile(r"^(ok|failed): \[localhost\] (?:=> )?\(item=([^)]*)\)(?: => (.*))?$")


def _outcomes(stdout: str) -> dict[str, str]:
    """What ansible's default callback printed for each loop item, ``<play>: <role> <entry point>``:
    ``ok``, or the validation's errors."""
    outcomes: dict[str, str] = {}
    for block in stdout.split("PLAY [")[1:]:
        play, _, rest = block.partition("]")
        for line in rest.splitlines():
            match = ITEM_RESULT.match(line)
            if not match:
                continue
            status, item, result = match.groups()
            if status == "ok":
                outcomes[f"{play}: {item}"] = "ok"
                continue
            try:
                errors = json.loads(result or "{}")
                outcomes[f"{play}: {item}"] = "; ".join(errors.get("argument_errors") or [errors.get("msg", "failed")])
            except json.JSONDecodeError:
                outcomes[f"{play}: {item}"] = result or "failed"
    return outcomes


@pytest.mark.slow
def test_specs_accept_the_rendered_defaults_through_ansible(tmp_path: Path) -> None:
    """What Ansible does at role start: the rendered defaults must satisfy each entry point's spec,
    types and choices included, with no inventory at all and for every host of the example networks."""
    playbook, checks = _validation_playbook()
    assert any(check.startswith("lab-domain.yml: dc1: samba_dc") for check in checks), checks
    (tmp_path / "validate.yml").write_text(yaml.safe_dump(playbook, sort_keys=False))
    # No secret of the caller's environment reaches the run (the password defaults read
    # PROVISION_*), and no ANSIBLE_* setting of the caller changes it.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PROVISION_", "ANSIBLE_"))}
    env |= {
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_ROLES_PATH": str(ROLES),
        # The share planners that the workgroup and member roles' variables use.
        "ANSIBLE_FILTER_PLUGINS": str(PLAYBOOKS / "filter_plugins"),
        "ANSIBLE_LOCALHOST_WARNING": "0",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
    }
    proc = subprocess.run(
        [str(ANSIBLE_PLAYBOOK), "-i", "localhost,", "validate.yml"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    outcomes = _outcomes(proc.stdout)
    failed = sorted(f"{check}: {outcome}" for check, outcome in outcomes.items() if outcome != "ok")
    assert not failed, "\n".join(failed)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    missing = [check for check in checks if outcomes.get(check) != "ok"]
    assert not missing, f"not validated: {missing}\n{proc.stdout[-4000:]}"
