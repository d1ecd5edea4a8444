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
# After a reboot the kernel tears the old network namespace down in the
# background, and nspawn refuses to start while the old veth still exists
# ("Failed to add new veth interfaces ... File exists"); under load that can
# take seconds. A start that fails this fast after a reboot is tried again.
FAST_FAILURE = 10.0
SETTLE_TRIES = 30


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

    reboots: list[float] = []
    settling = 0  # starts that failed fast since the last reboot
    while not stopping:  # a stop asked for during a pause ends the loop too
        began = time.monotonic()
        child = subprocess.Popen(command, preexec_fn=lambda: _enter(cgroup_dirs))
        code = child.wait()
        if stopping:
            return code if code >= 0 else 128 - code
        if code == REBOOT:
            reboots = [t for t in reboots if time.monotonic() - t < WINDOW] + [time.monotonic()]
            if len(reboots) > MAX_RESTARTS:
                print(f"supervisor: {MAX_RESTARTS} restarts within {WINDOW:.0f}s, giving up", flush=True)
                return 1
            print(f"supervisor: container rebooted (status {code}), starting it again", flush=True)
            settling = 1
            time.sleep(0.2)
            continue
        if settling and code != 0 and time.monotonic() - began < FAST_FAILURE and settling < SETTLE_TRIES:
            print(f"supervisor: start after reboot failed (status {code}), trying again in 1s", flush=True)
            settling += 1
            time.sleep(1.0)
            continue
        return code if code >= 0 else 128 - code
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
