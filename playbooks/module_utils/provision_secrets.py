"""Run tools that need a secret: the secret on stdin or in the environment, never in argv.

Shared by the modules that drive adcli, net and samba-tool. A command line is
readable by every local user (ps, /proc/PID/cmdline); stdin is not, and a
child's environment only by root and its owner. Output is masked before it is
returned or logged, and a failing attempt can be retried with a doubling pause
(a DC that is still replicating, a KDC that is restarting).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
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
