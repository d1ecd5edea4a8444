"""The playbooks and the code stay lint-clean: the same checks as `make lint`, in the test run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
# The playbooks' Python: modules, module_utils, filter and action plugins, the policy reader.
PLAYBOOK_PYTHON = [
    "playbooks/library",
    "playbooks/module_utils",
    "playbooks/filter_plugins",
    "playbooks/lookup_plugins",
    "playbooks/action_plugins",
    "playbooks/roles/domain_member/files",
]


def _run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False, timeout=600)


@pytest.mark.slow
def test_ansible_lint_production_profile() -> None:
    res = _run([str(BIN / "ansible-lint"), "--profile", "production", "--offline"], ROOT / "playbooks")
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]


def test_yamllint() -> None:
    res = _run([str(BIN / "yamllint"), "--strict", "."], ROOT / "playbooks")
    assert res.returncode == 0, res.stdout


def test_ruff_and_mypy() -> None:
    res = _run([str(BIN / "ruff"), "check", "provision", "tests", "bench", "playbooks"], ROOT)
    assert res.returncode == 0, res.stdout
    res = _run([str(BIN / "ruff"), "format", "--check", "provision", *PLAYBOOK_PYTHON], ROOT)
    assert res.returncode == 0, res.stdout
    res = _run([str(BIN / "mypy")], ROOT)
    assert res.returncode == 0, res.stdout
    # The action plugins apart: each shares its module's name.
    res = _run([str(BIN / "mypy"), "playbooks/action_plugins"], ROOT)
    assert res.returncode == 0, res.stdout
