"""The exception tree. Every failure the tool can report carries its exit code.

Library code raises these; only ``cli.py`` turns them into messages and exit
statuses, so the codes are defined once, here.
"""

from __future__ import annotations

from dataclasses import dataclass

# Exit codes, documented in the README.
EXIT_OK = 0
EXIT_WARNINGS = 1  # warnings under --strict
EXIT_INVALID_SPEC = 2
EXIT_PREFLIGHT = 3
EXIT_APPLY_FAILED = 4
EXIT_INTERRUPTED = 5
EXIT_VERIFY_FAILED = 6
EXIT_LAB = 7
EXIT_ENVIRONMENT = 8


class ProvisionError(Exception):
    """Base of every error the CLI reports without a traceback."""

    exit_code = EXIT_ENVIRONMENT


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a spec: where it is, and what is wrong."""

    path: str  # JSON-path-like location, e.g. ``hosts[3].address``
    message: str
    line: int | None = None
    severity: str = "error"  # "error" or "warning"


class SpecError(ProvisionError):
    """The spec is invalid; carries every problem found, not just the first."""

    exit_code = EXIT_INVALID_SPEC

    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: {len(problems)} problem(s)")


class UnreadableSpec(ProvisionError):
    """The spec file is missing or unreadable (an environment error: exit 8)."""

    exit_code = EXIT_ENVIRONMENT


class StrictWarnings(ProvisionError):
    """Warnings were found and --strict asked for them to fail the run."""

    exit_code = EXIT_WARNINGS


class SecretError(ProvisionError):
    """A secret reference could not be resolved (unset variable, unreadable file)."""

    exit_code = EXIT_INVALID_SPEC


class PreflightError(ProvisionError):
    """One or more hosts failed the SSH preflight checks."""

    exit_code = EXIT_PREFLIGHT


class ApplyError(ProvisionError):
    """The playbook run failed on some hosts."""

    exit_code = EXIT_APPLY_FAILED


class Interrupted(ProvisionError):
    """The user interrupted a run (Ctrl-C)."""

    exit_code = EXIT_INTERRUPTED


class NotConfirmed(ProvisionError):
    """The apply would remove objects and was not confirmed (no --yes, or "no" at the prompt)."""

    exit_code = EXIT_INTERRUPTED


class VerifyError(ProvisionError):
    """Verification found hosts that do not match the spec."""

    exit_code = EXIT_VERIFY_FAILED


class LabError(ProvisionError):
    """The local lab could not be built, started or stopped."""

    exit_code = EXIT_LAB
