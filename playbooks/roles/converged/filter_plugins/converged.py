"""Filters of the converged role: the controller's side of the fast re-apply.

``converged_request`` turns the play's variables into the probe's request: per
role, a digest of its inputs (the playbooks' files plus every non-secret
``provision_*`` and ``<role>_*`` variable, rendered) and the list of live
things to fingerprint (``<role>_converged_watch``).
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


def converged_request(
    roles: list[str], variables: dict[str, Any], code_dir: str, ignore: str
) -> dict[str, Any]:
    skip = re.compile(ignore)
    out: dict[str, Any] = {}
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
        inputs = {"code": _tree_digest(code_dir), "vars": _plain(mine)}
        out[role] = {
            "inputs": hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest(),
            "watch": None if watch is None else {k: v for k, v in watch.items() if k != "passwords"},
            "passwords": (watch or {}).get("passwords") or {},
        }
    return out


class FilterModule:
    """Ansible entry point."""

    def filters(self) -> dict[str, Any]:
        return {"converged_request": converged_request}
