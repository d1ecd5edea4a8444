"""Action plugin of the provision_converged module: the controller's side of the fast re-apply.

For the probe (``inputs_of``) it works out the module's arguments from the play's variables as
the action receives them, unrendered: per role, a digest of its inputs (the playbooks' files and
every non-secret ``provision_*`` and role-prefixed variable, as written) and the list of live things
to fingerprint (``<role>_converged_watch``, rendered); apart, the Samba passwords the roles want (a
no_log argument of the module). Then it runs the module on the host.

Why unrendered: a role's defaults are code (in the digest already), so what can change a rendered
value is a changed file under ``playbooks/``, a changed input variable (inventory, extra vars, play
vars) or the host's name, address and groups, all digested as they are. Rendering every role default
for every host costs a Jinja compile each (ansible-core keeps no compiled templates across hosts):
about 0.3 s of controller CPU per host and play, most of a converged re-apply's.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
from collections.abc import Callable, Mapping
from typing import Any

from ansible.plugins.action import ActionBase

# Variables about the probe itself, not about the host.
OWN_PREFIX = "converged_"
# What Ansible knows of the host that a role's variables may be derived from.
HOST_VARS = ("inventory_hostname", "ansible_host", "group_names")


# Not code the roles run: their tests, caches, dotfiles (lint settings). An execution node's copy
# of playbooks/ leaves out the same (provision/nodes.py), so both digest alike.
SKIP_DIRS = ("__pycache__", "tests")


@functools.lru_cache(maxsize=64)
def _tree_digest(path: str) -> str:
    """Digest of every file under ``path`` (playbooks/): a new provision release re-runs the roles once."""
    digest = hashlib.sha256()
    for root, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.startswith("."))
        for name in sorted(f for f in files if not f.startswith(".")):
            full = os.path.join(root, name)
            digest.update(os.path.relpath(full, path).encode() + b"\0")
            with open(full, "rb") as fh:
                digest.update(hashlib.sha256(fh.read()).digest())
    return digest.hexdigest()


@functools.lru_cache(maxsize=8)
def _role_prefixes(path: str) -> tuple[str, ...]:
    """``<role>_`` for every role under ``path``/roles (the probe's own role left out)."""
    roles = os.path.join(path, "roles")
    names = sorted(os.listdir(roles)) if os.path.isdir(roles) else []
    return tuple(f"{n}_" for n in names if f"{n}_" != OWN_PREFIX)


def _stable(value: Any) -> Any:
    """JSON for what json does not know: sets sorted, anything else by its text (never an address)."""
    if isinstance(value, (set, frozenset)):
        return sorted(str(v) for v in value)
    text = str(value)
    return f"<{type(value).__name__}>" if " at 0x" in text else text


def _plain(value: Any) -> Any:
    """JSON-safe copy of a variable's value (tagged strings, tuples, sets...)."""
    return json.loads(json.dumps(value, sort_keys=True, default=_stable))


def _leaves(value: Any) -> list[str]:
    """Every string inside a variable's value (dict values, list items)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _leaves(v)]
    if isinstance(value, (list, tuple)):
        return [s for v in value for s in _leaves(v)]
    return []


def _scrub(value: Any, secrets: list[str]) -> Any:
    """``value`` with every occurrence of a secret replaced: digests are by value, not by name.

    A password that also travels under an innocent name (a role default derived from
    it, an argv) must not reach the recorded digest, even hashed.
    """
    if isinstance(value, str):
        for secret in secrets:
            if secret in value:
                value = value.replace(secret, "\0secret\0")
        return value
    if isinstance(value, dict):
        return {k: _scrub(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v, secrets) for v in value]
    return value


def _as_is(value: Any) -> Any:
    return value


def _secret(render: Callable[[Any], Any], value: Any) -> Any:
    """A secret variable's value, rendered; None when it does not render here (then no watch list,
    which is rendered here too, can hold it either)."""
    try:
        return render(value)
    except Exception:
        return None


def converged_request(
    roles: list[str],
    variables: Mapping[str, Any],
    code_dir: str,
    ignore: str,
    render: Callable[[Any], Any] = _as_is,
) -> dict[str, Any]:
    """The probe's ``roles`` and ``passwords`` arguments from the play's variables as written;
    ``render`` renders a value (only the watch lists and the secrets are rendered)."""
    skip = re.compile(ignore)
    prefixes = ("provision_", *_role_prefixes(code_dir))
    # The watch lists are compared on the host, rendered; as written they are code.
    names = sorted(k for k in variables if k.startswith(prefixes) and not k.endswith("_converged_watch"))
    secrets = {s for k in names if skip.search(k) for s in _leaves(_plain(_secret(render, variables[k]))) if s}
    ordered = sorted(secrets, key=len, reverse=True)  # a secret containing another is replaced whole
    inputs = {
        "code": _tree_digest(code_dir),
        "vars": _scrub(_plain({k: variables[k] for k in names if not skip.search(k)}), ordered),
        "host": _scrub(_plain({k: variables.get(k) for k in HOST_VARS}), ordered),
    }
    digest = hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()
    out: dict[str, Any] = {}
    passwords: dict[str, Any] = {}
    for role in roles:
        watch_name = f"{role}_converged_watch"
        # A role without a watch list cannot be proven converged: it always runs.
        watch = _plain(render(variables[watch_name])) if watch_name in variables else None
        out[role] = {
            "inputs": hashlib.sha256(f"{role}\0{digest}".encode()).hexdigest(),
            "watch": None if watch is None else _scrub({k: v for k, v in watch.items() if k != "passwords"}, ordered),
        }
        wanted = (watch or {}).get("passwords")
        if wanted:
            passwords[role] = wanted
    return {"roles": out, "passwords": passwords}


class ActionModule(ActionBase):  # type: ignore[misc]
    """With ``inputs_of`` (the probe): the module's ``roles`` and ``passwords`` worked out here from
    the task's variables; otherwise (the record step) the arguments go to the module as they are."""

    TRANSFERS_FILES = False

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result: dict[str, Any] = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        args = dict(self._task.args)
        inputs_of = args.pop("inputs_of", None)
        ignore = args.pop("ignore", "password|secret")
        if inputs_of is not None:
            code_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
            request = converged_request(list(inputs_of), task_vars, code_dir, ignore, self._templar.template)
            args["roles"], args["passwords"] = request["roles"], request["passwords"]
        result.update(self._execute_module(module_name="provision_converged", module_args=args, task_vars=task_vars))
        return result
