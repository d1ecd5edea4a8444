"""Small helpers shared by the lab modules: running commands, files, locks."""

from __future__ import annotations

import errno
import fcntl
import os
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from provision.errors import LabError

Progress = Callable[[str], None]

# A clean environment for commands run inside images, so the caller's locale,
# proxies or Python variables cannot change what dpkg or apt do.
CHROOT_ENV: Mapping[str, str] = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "LC_ALL": "C.UTF-8",
    "DEBIAN_FRONTEND": "noninteractive",
    "DEBCONF_NONINTERACTIVE_SEEN": "true",
}


def quiet(_: str) -> None:
    """A progress callback that drops everything."""


def _tail(text: str, lines: int = 25) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def run(
    argv: Sequence[str],
    *,
    check: bool = True,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float | None = None,
    log: Path | None = None,
    input_text: str | None = None,
    cgroup: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command (argument list, never a shell string); raise LabError on failure.

    With ``log`` the output goes to that file (appended) instead of memory, so
    long builds leave a trace to read after a failure.  With ``cgroup`` the
    command starts in that lab cgroup, so a later run can kill what a killed
    run left behind.
    """
    from . import cgroups  # cgroups needs nothing from here; imported late to keep util light

    preexec = (lambda: cgroups.enter(cgroup)) if cgroup else None
    if cgroup:
        cgroups.create(cgroup)
    try:
        if log is not None:
            log.parent.mkdir(parents=True, exist_ok=True)
            with log.open("a") as fh:
                fh.write(f"$ {' '.join(argv)}\n")
                fh.flush()
                started = time.monotonic()
                proc = subprocess.run(
                    list(argv),
                    stdout=fh,
                    stderr=subprocess.STDOUT,
                    text=True,
                    env=dict(env) if env is not None else None,
                    cwd=cwd,
                    timeout=timeout,
                    stdin=subprocess.DEVNULL,
                    check=False,
                    preexec_fn=preexec,
                )
                fh.write(f"# exit status {proc.returncode} after {time.monotonic() - started:.1f}s\n")
        else:
            proc = subprocess.run(
                list(argv),
                capture_output=True,
                text=True,
                env=dict(env) if env is not None else None,
                cwd=cwd,
                timeout=timeout,
                input=input_text,
                stdin=None if input_text is not None else subprocess.DEVNULL,
                check=False,
                preexec_fn=preexec,
            )
    except FileNotFoundError as exc:
        raise LabError(f"{argv[0]}: command not found (is its package installed?)") from exc
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"{' '.join(argv)}: timed out after {timeout}s") from exc
    if check and proc.returncode != 0:
        if log is not None:
            detail = _tail(log.read_text(errors="replace"))
        else:
            detail = _tail((proc.stderr or "") + (proc.stdout or ""))
        raise LabError(f"{' '.join(argv)} failed with exit status {proc.returncode}:\n{detail}")
    return proc


def atomic_write(path: Path, text: str, mode: int = 0o644) -> None:
    """Write a file so readers see the old or the new content, never half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w") as fh:
        fh.write(text)
        fh.flush()
        os.fchmod(fh.fileno(), mode)
    tmp.replace(path)


def write_file(path: Path, text: str, mode: int = 0o644) -> None:
    """Write a file inside an image, replacing a symlink instead of following it.

    Following a symlink out of an image root could write to the host.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_symlink() or path.exists():
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    path.chmod(mode)


def pid_alive(pid: int | None) -> bool:
    """True when a process with this pid exists and is not a zombie."""
    if not pid or pid <= 0:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # The state letter follows the ")" closing the command name.
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def cmdline(pid: int) -> list[str]:
    """The argument vector of a process, or [] when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def remove_tree(path: Path) -> None:
    """Delete a directory tree without ever crossing into a mount below it.

    Callers unmount first; ``--one-file-system`` is the second guard so a
    forgotten bind mount can never make us delete host files.
    """
    if path.is_symlink() or path.exists():
        run(["rm", "-rf", "--one-file-system", "--", str(path)])


@contextmanager
def file_lock(path: Path, timeout: float = 900.0) -> Iterator[None]:
    """Serialise lab commands; the kernel drops the lock if we are killed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() > deadline:
                    raise LabError(f"another 'provision lab' command holds {path} for over {timeout:.0f}s") from exc
                time.sleep(0.2)
        yield
    finally:
        os.close(fd)
