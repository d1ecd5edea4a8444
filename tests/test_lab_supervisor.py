"""The lab's restart loop, run for real as the lab runs it (python3 -I supervisor.py -- COMMAND).

The command stands in for systemd-nspawn: a shell script that exits with the
status nspawn uses for a reboot (133), for a start refused because the old
veth still exists (1, at once), or for a clean poweroff (0).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from provision.lab.container import SUPERVISOR


def _run(tmp_path: Path, statuses: list[int], timeout: float = 60) -> tuple[int, str, int]:
    """Run the supervisor over a command exiting with ``statuses`` in turn; (status, output, starts)."""
    counter = tmp_path / "starts"
    counter.write_text("0")
    codes = " ".join(str(c) for c in statuses)
    script = (
        f'n=$(cat {counter}); n=$((n + 1)); echo $n > {counter}; '
        f'set -- {codes}; shift $((n - 1)); exit "${{1:-0}}"'
    )
    proc = subprocess.run(
        [sys.executable, "-I", str(SUPERVISOR), "--", "bash", "-c", script],
        capture_output=True, text=True, timeout=timeout, check=False,
    )
    return proc.returncode, proc.stdout + proc.stderr, int(counter.read_text())


def test_a_reboot_starts_the_container_again(tmp_path: Path) -> None:
    status, out, starts = _run(tmp_path, [133, 0])
    assert (status, starts) == (0, 2)
    assert "container rebooted (status 133)" in out


def test_a_start_refused_right_after_a_reboot_is_tried_again(tmp_path: Path) -> None:
    # The old namespace's veth lingers for a moment: two refused starts, then a boot.
    status, out, starts = _run(tmp_path, [133, 1, 1, 0])
    assert (status, starts) == (0, 4)
    assert out.count("start after reboot failed (status 1)") == 2


def test_a_first_start_that_fails_is_not_retried(tmp_path: Path) -> None:
    # Without a reboot before it a failure is real: the lab reports it (and may fall back).
    status, out, starts = _run(tmp_path, [1, 0])
    assert (status, starts) == (1, 1)
    assert "trying again" not in out


def test_a_reboot_loop_is_given_up(tmp_path: Path) -> None:
    status, out, starts = _run(tmp_path, [133] * 20)
    assert status == 1
    assert starts == 11
    assert "giving up" in out
