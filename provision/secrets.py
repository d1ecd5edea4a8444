"""Resolve secret references at run time and hand them to Ansible without a trace.

Secrets reach ansible-playbook as ``-e @FILE``: a 0600 file in a private 0700
directory on tmpfs, deleted when the run ends. They are never written to
persistent disk, to argv, to the environment ansible-runner records, or to its
artifacts; every task that uses them has ``no_log``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from provision.errors import SecretError
from provision.model import Network, SecretRef


def resolve(ref: SecretRef, base_dir: str = "") -> str:
    """The secret a reference points at; SecretError names the reference, never the value."""
    if ref.env:
        value = os.environ.get(ref.env)
        if value is None or value == "":
            raise SecretError(f"environment variable {ref.env} is not set (a secret the spec references)")
        return value
    assert ref.file is not None
    path = Path(ref.file).expanduser()
    if not path.is_absolute() and base_dir:
        path = Path(base_dir) / path
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SecretError(f"cannot read secret file {path}: {exc.strerror}") from None
    value = text.splitlines()[0] if text else ""
    if not value:
        raise SecretError(f"secret file {path} is empty")
    return value


def secret_vars(network: Network, users: bool = True) -> dict[str, Any]:
    """The run-time-only variables of the inventory contract."""
    out: dict[str, Any] = {}
    if users:
        out["provision_user_passwords"] = {u.name: resolve(u.password, network.base_dir) for u in network.users}
    if network.domain is not None:
        out["provision_domain_admin_password"] = resolve(network.domain.admin_password, network.base_dir)
    return out


def env_names(network: Network) -> set[str]:
    """Environment variables that hold secrets: kept out of the environment Ansible records."""
    refs = [u.password for u in network.users]
    if network.domain is not None:
        refs.append(network.domain.admin_password)
    return {r.env for r in refs if r.env}


def secret_values(network: Network) -> list[str]:
    """Every resolvable secret value, for scrubbing checks in tests."""
    values: list[str] = []
    for v in secret_vars(network).values():
        values.extend(v.values() if isinstance(v, dict) else [v])
    return values


@contextlib.contextmanager
def hidden_env(names: set[str]) -> Iterator[None]:
    """Remove secret variables from os.environ while Ansible runs (ansible-runner records its env)."""
    saved = {n: os.environ.pop(n) for n in names if n in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


@contextlib.contextmanager
def secrets_file(values: dict[str, Any]) -> Iterator[Path]:
    """A 0600 JSON file in a private 0700 directory on tmpfs (RAM), removed when the run ends.

    Its path (never its content) goes on ansible-playbook's command line as ``-e @PATH``.
    """
    base = Path(os.environ.get("XDG_RUNTIME_DIR") or "/dev/shm")
    if not base.is_dir():  # pragma: no cover - no tmpfs: fall back to the temp dir
        base = Path(tempfile.gettempdir())
    folder = Path(tempfile.mkdtemp(prefix="provision-", dir=base))  # mkdtemp makes it 0700
    path = folder / "secrets.json"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(values, fh)
        yield path
    finally:
        shutil.rmtree(folder, ignore_errors=True)
