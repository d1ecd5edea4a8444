"""Filters of the converged role: the controller's side of the fast re-apply.

``converged_request`` turns the play's variables into the probe's arguments
(module provision_converged): per role, a digest of its inputs (the playbooks'
files plus every non-secret ``provision_*`` and ``<role>_*`` variable, rendered)
and the list of live things to fingerprint (``<role>_converged_watch``); apart,
the Samba passwords the roles want (a no_log argument of the module).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
from typing import Any


@functools.lru_cache(maxsize=64)
def _tree_digest(path: str) -> str:
    """Digest of every file under ``path`` (playbooks/): a new provision release re-runs the roles once."""
    digest = hashlib.sha256()
    for root, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            full = os.path.join(root, name)
            digest.update(os.path.relpath(full, path).encode() + b"\0")
            with open(full, "rb") as fh:
                digest.update(hashlib.sha256(fh.read()).digest())
    return digest.hexdigest()


def _plain(value: Any) -> Any:
    """JSON-safe copy of a rendered variable (tagged strings, tuples, sets...)."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))


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


def converged_request(roles: list[str], variables: dict[str, Any], code_dir: str, ignore: str) -> dict[str, Any]:
    skip = re.compile(ignore)
    # Values of the secret variables (named by ``ignore``), longest first so that a
    # secret containing another is replaced whole.
    secrets = sorted(
        {s for k, v in variables.items() if skip.search(k) for s in _leaves(_plain(v)) if s},
        key=len,
        reverse=True,
    )
    out: dict[str, Any] = {}
    passwords: dict[str, Any] = {}
    for role in roles:
        watch_name = f"{role}_converged_watch"
        mine = {
            k: v
            for k, v in variables.items()
            if (k.startswith("provision_") or k.startswith(role + "_")) and k != watch_name and not skip.search(k)
        }
        # A role without a watch list cannot be proven converged: it always runs.
        watch = _plain(variables[watch_name]) if watch_name in variables else None
        # All of playbooks/: roles share templates, plugins and dependencies.
        inputs = {"code": _tree_digest(code_dir), "vars": _scrub(_plain(mine), secrets)}
        out[role] = {
            "inputs": hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest(),
            "watch": None if watch is None else _scrub({k: v for k, v in watch.items() if k != "passwords"}, secrets),
        }
        wanted = (watch or {}).get("passwords")
        if wanted:
            passwords[role] = wanted
    return {"roles": out, "passwords": passwords}


class FilterModule:
    """Ansible entry point."""

    def filters(self) -> dict[str, Any]:
        return {"converged_request": converged_request}
