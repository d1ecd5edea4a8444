"""Run tools that need a secret: the secret on stdin or in the environment, never in argv.

Shared by the modules that drive adcli, net and samba-tool. A command line is
readable by every local user (ps, /proc/PID/cmdline); stdin is not, and a
child's environment only by root and its owner. Output is masked before it is
returned or logged, and a failing attempt can be retried with a doubling pause
(a DC that is still replicating, a KDC that is restarting).

samba-tool takes some secrets only as options (--adminpass); ``samba_tool_runner``
runs it inside the module's own process instead of as a child, with ``{secret:NAME}``
placeholders substituted there, so no command line ever holds the value.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

MASK = "********"

# run(argv, stdin, env) -> (rc, stdout, stderr); AnsibleModule.run_command in modules.
Runner = Callable[[Sequence[str], "str | None", "Mapping[str, str] | None"], tuple[int, str, str]]


@dataclass(frozen=True)
class Attempt:
    """The outcome of the last attempt, masked."""

    rc: int
    output: str
    attempts: int


def mask(text: str, secrets: Sequence[str]) -> str:
    """The text with every secret value replaced (longest first, so no part of one survives)."""
    for value in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(value, MASK)
    return text


def append_log(path: str | None, text: str) -> None:
    """Append to a root-only log, so a failure can be examined although Ansible hides the task."""
    if not path:
        return
    os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as fh:
        fh.write(text if text.endswith("\n") else text + "\n")


def run_with_secret(
    run: Runner,
    argv: Sequence[str],
    *,
    secrets: Sequence[str],
    stdin: str | None = None,
    env: Mapping[str, str] | None = None,
    retries: int = 0,
    backoff: float = 5.0,
    max_delay: float = 60.0,
    retry_on: str | None = None,
    log: str | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Attempt:
    """Run ``argv`` until it succeeds or ``retries`` extra attempts are spent.

    ``stdin`` and ``env`` may carry secrets; ``argv`` must not (it is checked).
    ``retry_on`` (a regular expression) limits retries to failures whose output
    matches it: a wrong password is not worth five attempts.
    """
    for value in secrets:
        if value and any(value in arg for arg in argv):
            raise ValueError("a secret was passed on a command line")
    pattern = re.compile(retry_on) if retry_on else None
    delay = backoff
    attempt = 0
    while True:
        attempt += 1
        rc, out, err = run(argv, stdin, env)
        text = mask((out or "") + (err or ""), secrets)
        append_log(
            log, f"== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(argv)}: attempt {attempt}, status {rc}\n{text}"
        )
        if rc == 0 or attempt > retries or (pattern is not None and not pattern.search(text)):
            return Attempt(rc, text, attempt)
        sleep(delay)
        delay = min(delay * 2, max_delay)


# --------------------------------------------------------------------------- samba-tool inside this process

# An argument's "{secret:NAME}" is replaced by secret NAME after this process started.
PLACEHOLDER = re.compile(r"\{secret:([A-Za-z0-9_]+)\}")


class SecretError(ValueError):
    """A secret that is asked for but was not given (or is empty)."""


def placeholders(args: Sequence[str]) -> list[str]:
    """The names the ``{secret:NAME}`` placeholders of ``args`` ask for, in order."""
    return [m.group(1) for arg in args for m in PLACEHOLDER.finditer(arg)]


def secret_value(secrets: Mapping[str, str], name: str) -> str:
    """Secret ``name``; a missing or empty one is an error, never an empty password."""
    value = secrets.get(name)
    if not isinstance(value, str) or value == "":
        raise SecretError(f"secret '{name}' was not given (or is empty)")
    return value


def substitute(args: Sequence[str], secrets: Mapping[str, str]) -> list[str]:
    """``args`` with every ``{secret:NAME}`` replaced by its value."""
    return [PLACEHOLDER.sub(lambda m: secret_value(secrets, m.group(1)), arg) for arg in args]


def exit_status(code: object) -> int:
    """A samba-tool result (None, an int, -1 for a usage error, a SystemExit message) as an exit status."""
    if code is None:
        return 0
    if isinstance(code, bool) or not isinstance(code, int):
        return 1
    return code if 0 <= code <= 255 else 255


def samba_tool_entry() -> Callable[[Sequence[str]], int]:
    """What /usr/bin/samba-tool runs, as a function of its arguments, for the Samba installed.

    Samba 4.18 and later have ``samba.netcmd.main.samba_tool``; older ones run
    ``cmd_sambatool()._run("samba-tool", SUBCOMMAND, ...)``. Raises ImportError
    without Samba's Python bindings (python3-samba) for this interpreter.
    """
    from samba.netcmd import main as samba_main  # only where python3-samba is

    def run(args: Sequence[str]) -> int:
        new = getattr(samba_main, "samba_tool", None)
        if new is not None:
            try:
                return exit_status(new(*args))
            except SystemExit as exc:
                return exit_status(exc.code)
            except Exception as exc:  # samba_tool reports its own, except those of resolving the subcommand
                sys.stderr.write(f"samba-tool: {exc}\n")
                return 1
        cmd = samba_main.cmd_sambatool()
        try:
            return exit_status(cmd._run("samba-tool", *args))
        except SystemExit as exc:
            return exit_status(exc.code)
        except Exception as exc:  # reported as samba-tool does
            cmd.show_command_error(exc)
            return 1

    return run


@contextmanager
def _environment(update: Mapping[str, str]) -> Iterator[None]:
    """This process's environment with ``update`` applied, put back afterwards.

    Set after exec, the values are not in /proc/PID/environ (which shows the
    environment the process started with), but C code's getenv sees them.
    """
    before = {var: os.environ.get(var) for var in update}
    os.environ.update(update)
    try:
        yield
    finally:
        for var, value in before.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value


def run_samba_tool(args: Sequence[str], env: Mapping[str, str] | None = None) -> tuple[int, str]:
    """samba-tool ``args`` (what follows ``samba-tool``) in this process: (exit status, output).

    The output is stdout and stderr together, as written, unmasked.
    """
    entry = samba_tool_entry()
    # samba-tool writes to streams bound when its modules were imported, its C
    # libraries to the descriptors themselves: capture at the file descriptor
    # level. stdin is /dev/null, so that a prompt fails instead of waiting.
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(0), os.dup(1), os.dup(2)
    with tempfile.TemporaryFile() as capture, _environment(env or {}):
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        os.dup2(capture.fileno(), 1)
        os.dup2(capture.fileno(), 2)
        try:
            status = entry(list(args))
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            for fd, copy in enumerate(saved):
                os.dup2(copy, fd)
                os.close(copy)
        capture.seek(0)
        text = capture.read().decode("utf-8", "replace")
    return status, text


def samba_tool_runner(secrets: Mapping[str, str], creds: str | None = None) -> Runner:
    """A Runner for ``run_with_secret`` that runs samba-tool in this process.

    Its argv is ``["samba-tool", ARGS...]`` with ``{secret:NAME}`` placeholders,
    substituted only here; ``creds`` names the secret that becomes the PASSWD
    variable of this process (the password of samba-tool's ``-U`` user, read by
    Samba's credential code) for the run. ``env`` is applied to this process's
    environment for the run; stdin cannot be given.
    """

    def run(argv: Sequence[str], stdin: str | None, env: Mapping[str, str] | None) -> tuple[int, str, str]:
        if list(argv[:1]) != ["samba-tool"] or stdin is not None:
            raise ValueError("samba_tool_runner runs ['samba-tool', ARGS...] without stdin")
        update = dict(env or {})
        if creds:
            update["PASSWD"] = secret_value(secrets, creds)
        status, text = run_samba_tool(substitute(argv[1:], secrets), update)
        return status, text, ""

    return run
