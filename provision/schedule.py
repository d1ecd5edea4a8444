"""``provision backup --schedule``: a systemd timer on the controller that runs the backup.

As root the units go to /etc/systemd/system and run as root; as another user they go to
~/.config/systemd/user and run in that user's manager (``loginctl enable-linger USER``
keeps it running without a login). The service needs no secret: a backup resolves none.
Its calendar (``policies.backup.schedule``) is checked by ``systemd-analyze calendar``
and the units by ``systemd-analyze verify`` before anything is enabled.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from provision.errors import EXIT_ENVIRONMENT, ProvisionError
from provision.model import Network


class ScheduleError(ProvisionError):
    """The timer could not be checked, written or enabled."""

    exit_code = EXIT_ENVIRONMENT


def unit_name(network: Network) -> str:
    return f"provision-backup-{network.name}"


def unit_dir() -> Path:
    """Where this user's units go: the system's as root, the user's manager otherwise."""
    if os.geteuid() == 0:
        return Path("/etc/systemd/system")
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "systemd" / "user"


def _quote(arg: str) -> str:
    """One ExecStart= argument: double-quoted, with systemd's specifiers and variables escaped."""
    escaped = arg.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%").replace("$", "$$")
    return f'"{escaped}"'


def units(network: Network, spec: Path, directory: Path, keep: int | None, limit: str | None = None) -> dict[str, str]:
    """The service and timer files, by file name."""
    name = unit_name(network)
    argv = [sys.executable, "-m", "provision.cli", "backup", str(spec.resolve()), "-o", str(directory.resolve())]
    argv += ["--keep", str(keep)] if keep else []
    argv += ["--limit", limit] if limit else []
    calendar = network.policies.backup.schedule
    service = f"""# Written by provision backup --schedule; remove with provision backup --unschedule.
[Unit]
Description=provision backup of network {network.name}
Wants=network-online.target
After=network-online.target

[Service]
Type=oneshot
ExecStart={" ".join(_quote(a) for a in argv)}
UMask=0077
Nice=10
IOSchedulingClass=idle
"""
    timer = f"""# Written by provision backup --schedule; remove with provision backup --unschedule.
[Unit]
Description=provision backup of network {network.name} ({calendar})

[Timer]
OnCalendar={calendar}
Persistent=true
RandomizedDelaySec=10min

[Install]
WantedBy=timers.target
"""
    return {f"{name}.service": service, f"{name}.timer": timer}


def _systemd(*argv: str) -> subprocess.CompletedProcess[str]:
    tool = shutil.which(argv[0])
    if tool is None:
        raise ScheduleError(f"{argv[0]} not found: --schedule needs systemd on this machine")
    return subprocess.run([tool, *argv[1:]], capture_output=True, text=True, check=False, timeout=60)


def check_calendar(calendar: str) -> None:
    found = _systemd("systemd-analyze", "calendar", calendar)
    if found.returncode != 0:
        raise ScheduleError(f"policies.backup.schedule {calendar!r} is not a systemd calendar: {found.stderr.strip()}")


def write(
    network: Network, spec: Path, directory: Path, keep: int | None, folder: Path, limit: str | None = None
) -> list[Path]:
    """Check the calendar, write the units into ``folder`` and check them; returns service, timer."""
    check_calendar(network.policies.backup.schedule)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for file_name, text in units(network, spec, directory, keep, limit).items():
        path = folder / file_name
        path.write_text(text)
        path.chmod(0o644)
        written.append(path)
    checked = _systemd("systemd-analyze", "verify", *(str(p) for p in written))
    if checked.returncode != 0:
        for p in written:
            p.unlink(missing_ok=True)
        raise ScheduleError(f"systemd-analyze verify refused the units: {(checked.stderr or checked.stdout).strip()}")
    return written


def install(network: Network, spec: Path, directory: Path, keep: int | None, limit: str | None = None) -> list[Path]:
    """Write, check and enable the timer (started now; the first backup runs at its time)."""
    written = write(network, spec, directory, keep, unit_dir(), limit)
    scope = [] if os.geteuid() == 0 else ["--user"]
    for argv in (["daemon-reload"], ["enable", "--now", written[-1].name]):
        done = _systemd("systemctl", *scope, *argv)
        if done.returncode != 0:
            raise ScheduleError(f"systemctl {' '.join(argv)} failed: {done.stderr.strip()}")
    return written


def remove(network: Network) -> list[Path]:
    """Disable and remove the timer and its service; returns the files removed."""
    folder = unit_dir()
    name = unit_name(network)
    scope = [] if os.geteuid() == 0 else ["--user"]
    if (folder / f"{name}.timer").exists():
        _systemd("systemctl", *scope, "disable", "--now", f"{name}.timer")
    removed = []
    for suffix in (".timer", ".service"):
        path = folder / f"{name}{suffix}"
        if path.exists():
            path.unlink()
            removed.append(path)
    _systemd("systemctl", *scope, "daemon-reload")
    return removed
