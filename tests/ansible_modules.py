"""Running the playbooks' own modules for real from tests: ansible's ad-hoc command, local connection."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

PLAYBOOKS = Path(__file__).resolve().parent.parent / "playbooks"
ANSIBLE = Path(sys.executable).with_name("ansible")


def run_module(
    name: str,
    args: dict[str, Any],
    *,
    check: bool = False,
    diff: bool = False,
    python: str = sys.executable,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """One module run; its result (from ``-t``, the tree callback) as a dict, with what ansible
    printed (diffs show there) under ``_stdout`` and whether it failed under ``_failed`` (the
    tree callback leaves "failed" out)."""
    with tempfile.TemporaryDirectory() as tree:
        argv = [str(ANSIBLE), "localhost", "-i", "localhost,", "-c", "local", "-m", name, "-a", json.dumps(args),
                "-e", f"ansible_python_interpreter={python}", "-t", tree]
        argv += ["--check"] if check else []
        argv += ["--diff"] if diff else []
        full_env = {**os.environ, "ANSIBLE_LIBRARY": str(PLAYBOOKS / "library"),
                    "ANSIBLE_MODULE_UTILS": str(PLAYBOOKS / "module_utils"), "ANSIBLE_NOCOLOR": "1",
                    "ANSIBLE_LOCALHOST_WARNING": "0", **(env or {})}
        proc = subprocess.run(argv, capture_output=True, text=True, env=full_env, check=False, timeout=120)
        result_file = Path(tree) / "localhost"
        assert result_file.exists(), proc.stdout + proc.stderr
        result: dict[str, Any] = json.loads(result_file.read_text())
    result["_stdout"] = proc.stdout + proc.stderr
    result["_failed"] = "FAILED!" in proc.stdout
    return result


def load_module(name: str) -> Any:
    """A module of playbooks/library imported as Python (for its pure functions), with every
    module_utils of playbooks/ registered under ``ansible.module_utils`` as Ansible does."""
    import importlib
    import importlib.util

    utils = PLAYBOOKS / "module_utils"
    sys.path.insert(0, str(utils))
    try:
        for path in sorted(utils.glob("provision_*.py")):
            sys.modules.setdefault(f"ansible.module_utils.{path.stem}", importlib.import_module(path.stem))
    finally:
        sys.path.remove(str(utils))
    spec = importlib.util.spec_from_file_location(name, PLAYBOOKS / "library" / f"{name}.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
