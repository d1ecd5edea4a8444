"""Running the host's tools from the modules: one place for the environment and the failure message.

Every module runs tools in the C locale (their output is parsed, their messages
quoted), never lets Ansible expand ``$VAR`` or ``~`` in an argument (names come
from the spec), and fails with the tool's own last words.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

ENV = {"LC_ALL": "C"}


def run(
    module: Any, argv: Sequence[str], *, data: str | None = None, env: Mapping[str, str] | None = None
) -> tuple[int, str, str]:
    """(rc, stdout, stderr) of ``argv``; ``data`` goes to its stdin as given (no newline added)."""
    rc, out, err = module.run_command(
        list(argv), data=data, binary_data=True, environ_update={**ENV, **(env or {})}, expand_user_and_vars=False
    )
    return int(rc), str(out), str(err)


def run_or_fail(module: Any, argv: Sequence[str], failure: str, *, data: str | None = None, keep: int = 300) -> str:
    """stdout of ``argv``; when it fails, the module fails with ``failure: <the tool's last words>``."""
    rc, out, err = run(module, argv, data=data)
    if rc != 0:
        module.fail_json(msg=f"{failure}: {(err or out).strip()[-keep:]}", rc=rc)
    return out


def runner(module: Any) -> Callable[[Sequence[str], str | None, Mapping[str, str] | None], tuple[int, str, str]]:
    """``run`` as a Runner of provision_secrets.run_with_secret: run(argv, stdin, env)."""

    def run_one(argv: Sequence[str], stdin: str | None, env: Mapping[str, str] | None) -> tuple[int, str, str]:
        return run(module, argv, data=stdin, env=env)

    return run_one


def unit_state(module: Any, name: str) -> dict[str, str]:
    """LoadState, ActiveState and UnitFileState of a systemd unit ("" for what systemctl leaves out)."""
    _, out, _ = run(module, ["systemctl", "show", "--property=LoadState,ActiveState,UnitFileState", "--", name])
    props = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    return {k: props.get(k, "") for k in ("LoadState", "ActiveState", "UnitFileState")}
