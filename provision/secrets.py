"""Resolve secret references at run time and hand them to Ansible without a trace.

Secrets reach ansible-playbook as ``-e @FILE``: a 0600 file in a private 0700
directory on tmpfs, deleted when the run ends. They are never written to
persistent disk, to argv, to the environment ansible-runner records, or to its
artifacts; every task that uses them has ``no_log``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from provision.errors import Problem, SecretError
from provision.inventory import write_unsafe
from provision.model import Network, SecretRef

# A password file holds one line: anything bigger is not a secret file (a log, a device, a dump).
SECRET_FILE_MAX = 4096
_SYSTEM_TREES = ("/proc", "/sys", "/dev")


def secret_path(ref_file: str, base_dir: str = "") -> Path:
    """Where a ``{file:}`` reference points: relative paths are relative to the spec's folder."""
    path = Path(ref_file).expanduser()
    if not path.is_absolute() and base_dir:
        path = Path(base_dir) / path
    return path


def secret_file_problem(path: Path) -> tuple[str, str] | None:
    """Why ``path`` cannot be a secret file, as (severity, message); None when it is fine.

    Refused: kernel and device trees (``/proc/self/environ`` would send the controller's
    whole environment), anything that is not a regular file (a FIFO blocks, a device
    streams), and files over SECRET_FILE_MAX bytes. Group- or world-readable is a warning.
    The file is not opened here: ``lstat``/``stat`` only.
    """
    for candidate in (path.absolute(), path.resolve()):  # as written, and with links followed
        if any(candidate == Path(t) or Path(t) in candidate.parents for t in _SYSTEM_TREES):
            trees = ", ".join(_SYSTEM_TREES)
            return ("error", f"{path} lies under {trees}: a secret file must be a regular file of yours")
    try:
        st = path.stat()
    except FileNotFoundError:
        return None  # resolved (and reported) at run time: the file may be made by the pipeline
    except OSError as exc:
        return ("error", f"cannot stat {path}: {exc.strerror}")
    if not stat.S_ISREG(st.st_mode):
        return ("error", f"{path} is not a regular file (a FIFO, device or directory cannot hold a secret)")
    if st.st_size > SECRET_FILE_MAX:
        size = st.st_size
        return ("error", f"{path} is {size} bytes; a secret file holds one line (at most {SECRET_FILE_MAX} bytes)")
    if st.st_mode & 0o077:
        return ("warning", f"{path} is readable by others (mode {stat.S_IMODE(st.st_mode):04o}); chmod 600 it")
    return None


def resolve(ref: SecretRef, base_dir: str = "") -> str:
    """The secret a reference points at; SecretError names the reference, never the value."""
    if ref.env:
        value = os.environ.get(ref.env)
        if value is None or value == "":
            raise SecretError(f"environment variable {ref.env} is not set (a secret the spec references)")
        return value
    assert ref.file is not None
    path = secret_path(ref.file, base_dir)
    problem = secret_file_problem(path)
    if problem is not None and problem[0] == "error":
        raise SecretError(f"refusing secret file: {problem[1]}")
    try:
        with path.open("rb") as fh:  # bounded read: the file may have grown since the check
            text = fh.read(SECRET_FILE_MAX + 1).decode("utf-8")
    except OSError as exc:
        raise SecretError(f"cannot read secret file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise SecretError(f"secret file {path} is not UTF-8 text") from None
    if len(text) > SECRET_FILE_MAX:
        raise SecretError(f"secret file {path} is larger than {SECRET_FILE_MAX} bytes")
    value = text.splitlines()[0] if text else ""
    if not value:
        raise SecretError(f"secret file {path} is empty")
    return value


def secret_vars(network: Network, users: bool = True) -> dict[str, Any]:
    """The run-time-only variables of the inventory contract."""
    out: dict[str, Any] = {}
    if users:
        out["provision_user_passwords"] = {u.name: resolve(u.password, network.base_dir) for u in network.users}
    if network.domain is not None:
        out["provision_domain_admin_password"] = resolve(network.domain.admin_password, network.base_dir)
    return out


def references(network: Network, users: bool = True) -> list[tuple[str, SecretRef]]:
    """Every secret reference of the spec with its place in it (``users[2].password``)."""
    refs = [(f"users[{j}].password", u.password) for j, u in enumerate(network.users)] if users else []
    if network.domain is not None:
        refs.append(("domain.admin_password", network.domain.admin_password))
    return refs


def check_references(network: Network, users: bool = True) -> list[Problem]:
    """Every reference that does not resolve (errors) or resolves unsafely (warnings), all at once.

    Each reference is resolved as a run would (``resolve``), so the answer is the run's;
    the values are dropped at once and never appear in a message. ``users=False`` leaves
    out the users' passwords, as a run that sets none does (``secret_vars``).
    """
    problems: list[Problem] = []
    for where, ref in references(network, users):
        path = f"{where}.env" if ref.env else f"{where}.file"
        try:
            resolve(ref, network.base_dir)
        except SecretError as exc:
            problems.append(Problem(path, str(exc)))
            continue
        if ref.file:
            problem = secret_file_problem(secret_path(ref.file, network.base_dir))
            if problem is not None:
                problems.append(Problem(path, problem[1], severity=problem[0]))
    return problems


def require_references(network: Network, users: bool = True) -> None:
    """Raise one SecretError naming every unresolvable reference, before any host is contacted."""
    errors = [p for p in check_references(network, users) if p.severity == "error"]
    if errors:
        lines = "".join(f"\n  {p.path}: {p.message}" for p in errors)
        raise SecretError(f"{len(errors)} secret reference(s) of the spec cannot be resolved:{lines}")


def env_names(network: Network) -> set[str]:
    """Environment variables that hold secrets: kept out of the environment Ansible records."""
    return {r.env for _, r in references(network) if r.env}


def secret_values(network: Network) -> list[str]:
    """Every resolvable secret value, for scrubbing checks in tests."""
    values: list[str] = []
    for v in secret_vars(network).values():
        values.extend(v.values() if isinstance(v, dict) else [v])
    return values


# What ansible-runner, Ansible and ssh need from the controller's environment; nothing
# else reaches them (ansible-runner records the environment it runs with in its
# artifacts, so an unrelated CI token would land there). The engine adds its own
# ANSIBLE_* settings and PATH on top.
ENV_ALLOW = (
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LANGUAGE",
    "LC_ALL",
    "LC_CTYPE",
    "LC_MESSAGES",
    "TZ",
    "TERM",
    "TMPDIR",
    "SSH_AUTH_SOCK",
)


def allowed_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The allow-listed part of ``environ`` (default: os.environ)."""
    source = os.environ if environ is None else environ
    return {k: source[k] for k in ENV_ALLOW if k in source}


@contextlib.contextmanager
def allow_listed_env() -> Iterator[None]:
    """os.environ reduced to ENV_ALLOW while Ansible runs, restored afterwards.

    ansible-runner copies os.environ into the child and into its artifacts; there is no
    option to start from an empty one, so the process environment itself is narrowed.
    """
    saved = dict(os.environ)
    keep = allowed_env(saved)
    os.environ.clear()
    os.environ.update(keep)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


# Folders of this tool on the tmpfs: ``provision-secrets-<pid>-<random>``.
_PREFIX = "provision-secrets-"
SECRETS_BASE = Path("/dev/shm")
_RAM_FILESYSTEMS = {"tmpfs", "ramfs"}


def filesystem_type(path: Path) -> str:
    """The type of the filesystem ``path`` lives on, from /proc/self/mountinfo ('' if unknown)."""
    target = os.path.realpath(path)
    best, fstype = "", ""
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return ""
    for line in lines:
        left, _, right = line.partition(" - ")
        fields = left.split()
        if len(fields) < 5 or not right:
            continue
        mount = fields[4].encode().decode("unicode_escape")
        if (target == mount or target.startswith(mount.rstrip("/") + "/")) and len(mount) >= len(best):
            best, fstype = mount, right.split()[0]
    return fstype


def remove_stale(base: Path = SECRETS_BASE) -> list[Path]:
    """Remove secrets folders left by runs that were killed (their pid is gone); returns them."""
    removed: list[Path] = []
    try:
        entries = list(base.iterdir())
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.startswith(_PREFIX):
            continue
        pid_text = entry.name[len(_PREFIX) :].split("-", 1)[0]
        try:
            if entry.stat().st_uid != os.getuid() or not pid_text.isdigit():
                continue
            os.kill(int(pid_text), 0)
            continue  # that run is still alive
        except ProcessLookupError:
            pass
        except (PermissionError, OSError):
            continue
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry)
    return removed


def ram_base_problem(base: Path = SECRETS_BASE) -> str | None:
    """Why ``base`` cannot hold a run's secrets (not a RAM filesystem); None when it can."""
    fstype = filesystem_type(base)
    if not base.is_dir() or fstype not in _RAM_FILESYSTEMS:
        found = fstype or "none"
        return f"{base} is not a RAM filesystem (found {found}); secrets are never written to disk"
    return None


@contextlib.contextmanager
def private_folder(base: Path = SECRETS_BASE) -> Iterator[Path]:
    """A private 0700 folder on a RAM filesystem, removed with all it holds when the block ends.

    Refused when ``base`` is not tmpfs/ramfs (a secret must never reach a disk); folders of
    runs that were killed are removed first.
    """
    problem = ram_base_problem(base)
    if problem is not None:
        raise SecretError(problem)
    remove_stale(base)
    folder = Path(tempfile.mkdtemp(prefix=f"{_PREFIX}{os.getpid()}-", dir=base))  # mkdtemp makes it 0700
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def secrets_file(values: dict[str, Any], base: Path = SECRETS_BASE) -> Iterator[Path]:
    """A 0600 YAML file in a ``private_folder``, removed when the run ends.

    Its path (never its content) goes on ansible-playbook's command line as ``-e @PATH``.
    Every string in it is ``!unsafe``: a password such as ``{{ lookup('pipe', 'id') }}`` is
    a password, not a template.
    """
    with private_folder(base) as folder:
        yield write_unsafe(folder / "secrets.yml", values, mode=0o600)
