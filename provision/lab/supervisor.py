"""Restart loop around one container's runner; run as a standalone script.

systemd-nspawn exits with status 133 when the container reboots itself
(``systemctl reboot``, Ansible's reboot module); this loop starts it again
so the host comes back like a real machine would.  SIGTERM is forwarded to
nspawn, which powers the container off cleanly, and ends the loop.

Only the standard library is used: this file is executed by path with
``python3 -I`` and must not depend on the provision package being importable.

Usage: supervisor.py --cgroup DIR [--cgroup DIR...] -- COMMAND...
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

REBOOT = 133
MAX_RESTARTS = 10  # within WINDOW seconds: a reboot loop is a failure, not a machine
WINDOW = 60.0


def _enter(dirs: list[str]) -> None:
    for d in dirs:
        (Path(d) / "cgroup.procs").write_text("0")


def main(argv: list[str]) -> int:
    cgroup_dirs: list[str] = []
    while argv and argv[0] != "--":
        if argv[0] == "--cgroup" and len(argv) > 1:
            cgroup_dirs.append(argv[1])
            argv = argv[2:]
        else:
            print(f"supervisor: unexpected argument {argv[0]!r}", file=sys.stderr)
            return 2
    command = argv[1:]
    if not command:
        print("supervisor: no command", file=sys.stderr)
        return 2

    stopping = False
    child: subprocess.Popen[bytes] | None = None

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        if child is not None and child.poll() is None:
            child.send_signal(signal.SIGTERM)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)

    starts: list[float] = []
    while True:
        starts = [t for t in starts if time.monotonic() - t < WINDOW] + [time.monotonic()]
        if len(starts) > MAX_RESTARTS:
            print(f"supervisor: {MAX_RESTARTS} restarts within {WINDOW:.0f}s, giving up", flush=True)
            return 1
        child = subprocess.Popen(command, preexec_fn=lambda: _enter(cgroup_dirs))
        code = child.wait()
        if stopping or code != REBOOT:
            return code if code >= 0 else 128 - code
        print(f"supervisor: container rebooted (status {code}), starting it again", flush=True)
        time.sleep(0.2)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
