"""``provision doctor``: is this controller ready to apply a spec, before any host is contacted?

Every check is a real probe on the controller: each secret reference is resolved as a
run resolves it (values are dropped at once), the SSH key is opened and parsed, the
programs a run starts are run with ``--version``, installed packages are compared with
what the project was tested with (``.ci/constraints.txt``, shipped in the wheel). With
``lab=True`` the machine is also checked for what ``provision lab up`` needs. Nothing
here prints, exits or connects anywhere but to the local ssh-agent socket.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from functools import cache
from importlib import metadata
from pathlib import Path

import paramiko
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from provision import paths, secrets
from provision.errors import ProvisionError, SecretError
from provision.lab.paths import BUILD_TOOLS
from provision.model import TLS_ROLES, Network
from provision.preflight import host_label, known_hosts_path
from provision.results import Check

CONTROLLER = "controller"
LAB = "lab"
REFERENCE_CHECK = "secret"  # name prefix of the secret reference checks
_PKG = Path(__file__).resolve().parent
# In a wheel the constraints are package data; in a checkout they sit in .ci/.
CONSTRAINTS = (_PKG / "constraints.txt", _PKG.parent / ".ci" / "constraints.txt")
# The two packages a run drives, checked by name; the rest of the closure as one check.
ANSIBLE = ("ansible-core", "ansible-runner")
# The keys paramiko (preflight) and ssh (Ansible) try when the spec names none.
DEFAULT_KEYS = ("id_rsa", "id_ecdsa", "id_ed25519")
VERSION_TIMEOUT = 120.0  # ansible-playbook --version imports all of ansible-core: seconds on a slow disk
# What `provision lab up` runs, and the Debian package of each: provision.lab.image.ensure_images
# refuses to build without its BUILD_TOOLS, provision.lab.net drives the bridge with ip;
# systemd-nspawn boots the hosts (checked apart: without it the lab falls back).
LAB_TOOLS = {**BUILD_TOOLS, "ip": "iproute2"}
# The Debian packages of the Makefile's HOST_PACKAGES the lab itself needs (tests keep them a subset).
LAB_HOST_PACKAGES = (
    "mmdebstrap",
    "gpg",
    "libdpkg-perl",
    "systemd-container",
    "apt-utils",
    "iproute2",
    "util-linux",
    "mount",
)


def run(network: Network, lab: bool = False, with_secrets: bool = True) -> list[Check]:
    """Every check of the controller for ``network`` (and of the lab with ``lab``), in order.

    ``with_secrets=False`` leaves out the secret references (a --no-secrets dry run needs none).
    """
    checks: list[Check] = []
    if with_secrets:
        checks += secret_checks(network)
    checks += ssh_checks(network, lab)
    checks += package_checks()
    checks += runtime_checks(network, with_secrets)
    if lab:
        checks += lab_checks(network)
    return checks


def summary(checks: Iterable[Check]) -> tuple[int, int, int]:
    """(passed, warned, failed)."""
    counts = {"pass": 0, "warn": 0, "fail": 0}
    for c in checks:
        counts[c.status] = counts.get(c.status, 0) + 1
    return counts["pass"], counts["warn"], counts["fail"]


def failure(checks: Sequence[Check]) -> ProvisionError | None:
    """The error a failed doctor ends with, or None when nothing failed.

    Only unresolvable secrets: SecretError (exit 2, the spec's references are wrong, as
    ``apply`` reports them). Anything else failed: ProvisionError (exit 8, the controller).
    """
    failed = [c for c in checks if c.status == "fail"]
    if not failed:
        return None
    names = ", ".join(c.name for c in failed)
    if all(c.name.startswith(REFERENCE_CHECK + " ") for c in failed):
        return SecretError(f"doctor: {len(failed)} secret reference(s) cannot be resolved: {names}")
    return ProvisionError(f"doctor: {len(failed)} check(s) failed: {names}")


# --------------------------------------------------------------------------- secrets


def secret_checks(network: Network) -> list[Check]:
    """One check per reference that does not resolve or is unsafe, or one pass for all of them."""
    refs = secrets.references(network)
    problems = secrets.check_references(network)
    checks = [
        Check(CONTROLLER, f"{REFERENCE_CHECK} {p.path}", "fail" if p.severity == "error" else "warn", p.message)
        for p in problems
    ]
    if not any(p.severity == "error" for p in problems):
        checks.insert(0, Check(CONTROLLER, "secrets", "pass", f"{len(refs)} reference(s) resolve"))
    return checks


# --------------------------------------------------------------------------- ssh


def ssh_checks(network: Network, lab: bool = False) -> list[Check]:
    """The key a run logs in with, and the known_hosts file host keys are checked against."""
    return [identity_check(network, lab), known_hosts_check(network, lab)]


def _made_by_lab(path: Path) -> bool:
    from provision.lab.paths import IDENTITY_FILE, KNOWN_HOSTS  # constants only: nothing of the lab runs

    return path in (IDENTITY_FILE, KNOWN_HOSTS)


def identity_check(network: Network, lab: bool = False) -> Check:
    """The spec's key opened and parsed as preflight loads it, or the agent's and default keys."""
    name = "ssh identity"
    if network.ssh.identity_file is None:
        return _default_identity(name)
    path = Path(network.ssh.identity_file).expanduser()
    try:
        st = path.stat()
    except FileNotFoundError:
        if lab and _made_by_lab(path):
            return Check(CONTROLLER, name, "warn", f"{path} does not exist yet; 'provision lab up' makes it")
        return Check(CONTROLLER, name, "fail", f"{path} does not exist (ssh.identity_file)")
    except OSError as exc:
        return Check(CONTROLLER, name, "fail", f"cannot stat {path}: {exc.strerror}")
    if not stat.S_ISREG(st.st_mode):
        return Check(CONTROLLER, name, "fail", f"{path} is not a regular file")
    if st.st_uid == os.getuid() and st.st_mode & 0o077:
        mode = f"{stat.S_IMODE(st.st_mode):04o}"
        return Check(CONTROLLER, name, "fail", f"{path} has mode {mode}: ssh ignores a private key others can read")
    encrypted = Check(
        CONTROLLER,
        name,
        "fail",
        f"{path} is passphrase-protected: preflight cannot use it (ssh-agent is not asked when "
        "ssh.identity_file is set); use a key without a passphrase for automation",
    )
    try:
        key = paramiko.PKey.from_path(path)
    except paramiko.PasswordRequiredException:
        return encrypted
    except TypeError as exc:  # cryptography: "Key is password-protected, but password was not provided."
        if any(word in str(exc).lower() for word in ("password", "encrypted")):
            return encrypted
        return Check(CONTROLLER, name, "fail", f"{path} is not a private key paramiko can load: {exc}")
    except OSError as exc:
        return Check(CONTROLLER, name, "fail", f"cannot read {path}: {exc.strerror}")
    except (paramiko.SSHException, ValueError) as exc:
        return Check(CONTROLLER, name, "fail", f"{path} is not a private key paramiko can load: {exc}")
    return Check(CONTROLLER, name, "pass", f"{path}: {key.get_name()} {key.fingerprint}")


def _default_identity(name: str) -> Check:
    """No ssh.identity_file: preflight and ssh use the agent's keys and ~/.ssh/id_*."""
    found: list[str] = []
    sock = os.environ.get("SSH_AUTH_SOCK")
    if sock:
        agent = paramiko.Agent()
        try:
            count = len(agent.get_keys())
        finally:
            agent.close()
        if count:
            found.append(f"{count} key(s) in ssh-agent")
    for key in DEFAULT_KEYS:
        path = Path("~/.ssh").expanduser() / key
        if path.is_file() and os.access(path, os.R_OK):
            found.append(str(path))
    if found:
        return Check(CONTROLLER, name, "pass", "ssh.identity_file unset; " + ", ".join(found))
    return Check(
        CONTROLLER,
        name,
        "fail",
        "ssh.identity_file unset and no key to use: no ssh-agent key"
        + ("" if sock else " (SSH_AUTH_SOCK unset)")
        + f" and none of ~/.ssh/{', ~/.ssh/'.join(DEFAULT_KEYS)}",
    )


def known_hosts_check(network: Network, lab: bool = False) -> Check:
    """known_hosts readable, and how many of the spec's hosts it already knows."""
    name = "known_hosts"
    path = known_hosts_path(network).expanduser()
    if not path.exists():
        if lab and _made_by_lab(path):
            return Check(CONTROLLER, name, "warn", f"{path} does not exist yet; 'provision lab up' writes it")
        return Check(
            CONTROLLER,
            name,
            "warn",
            f"{path} does not exist; 'provision preflight --accept-new-host-keys' creates it "
            "(verify the keys it records)",
        )
    if not path.is_file():
        return Check(CONTROLLER, name, "fail", f"{path} is not a regular file")
    keys = paramiko.HostKeys()
    try:
        keys.load(str(path))
    except OSError as exc:
        return Check(CONTROLLER, name, "fail", f"cannot read {path}: {exc.strerror}")
    except (paramiko.SSHException, ValueError) as exc:
        return Check(CONTROLLER, name, "fail", f"{path} cannot be parsed: {exc}")
    port = network.ssh.port
    targets = [
        (h.name, host_label(h.connection.address, h.connection.port) if h.connection else host_label(h.address, port))
        for h in network.hosts
    ]
    targets += [(n.name, host_label(n.address, port)) for n in network.rollout.execution_nodes]
    unknown = [n for n, label in targets if keys.lookup(label) is None]
    known = len(targets) - len(unknown)
    detail = f"{path}: {known} of {len(targets)} host(s) known"
    if unknown:
        shown = ", ".join(unknown[:10]) + (", ..." if len(unknown) > 10 else "")
        detail += f"; not yet: {shown} (preflight --accept-new-host-keys records them)"
        return Check(CONTROLLER, name, "warn", detail)
    return Check(CONTROLLER, name, "pass", detail)


# --------------------------------------------------------------------------- packages


def constraints_file() -> Path | None:
    """The constraints file the project's CI tests with, if this install has one."""
    return next((p for p in CONSTRAINTS if p.is_file()), None)


@cache
def pins() -> dict[str, str]:
    """Package (canonical name) -> the version the constraints file pins."""
    path = constraints_file()
    if path is None:
        return {}
    out: dict[str, str] = {}
    for line in path.read_text().splitlines():
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        try:
            req = Requirement(text)
        except InvalidRequirement:
            continue
        exact = [s.version for s in req.specifier if s.operator == "=="]
        if exact:
            out[canonicalize_name(req.name)] = exact[0]
    return out


def _installed(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _closure(root: str) -> Iterator[tuple[str, Requirement]]:
    """(canonical name, requirement) of every package ``root`` needs at run time, transitively."""
    seen: set[str] = set()
    todo: list[tuple[str, frozenset[str]]] = [(root, frozenset())]
    while todo:
        name, extras = todo.pop()
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for text in requires:
            try:
                req = Requirement(text)
            except InvalidRequirement:
                continue
            if req.marker is not None and not any(req.marker.evaluate({"extra": e}) for e in (extras or {""})):
                continue
            key = canonicalize_name(req.name)
            if key in seen:
                continue
            seen.add(key)
            yield key, req
            todo.append((key, frozenset(req.extras)))


def package_checks() -> list[Check]:
    """ansible-core and ansible-runner by name, then every other package a run imports."""
    want = pins()
    source = constraints_file()
    checks = [_version_check(name, want.get(name), source) for name in ANSIBLE]
    checks.append(python_check())
    checks.append(dependencies_check(want))
    return checks


def _version_check(name: str, pinned: str | None, source: Path | None) -> Check:
    found = _installed(name)
    if found is None:
        return Check(CONTROLLER, name, "fail", f"{name} is not installed; install provision with pip or pipx")
    if pinned is None:
        where = "no constraints file in this install" if source is None else f"not pinned in {source}"
        return Check(CONTROLLER, name, "pass", f"{found} ({where})")
    if Version(found) != Version(pinned):
        return Check(CONTROLLER, name, "warn", f"{found}, but CI tests with {pinned} (install with -c {source})")
    return Check(CONTROLLER, name, "pass", f"{found}, as CI tests")


def python_check() -> Check:
    """This interpreter against the Requires-Python of the installed provision."""
    version = ".".join(str(p) for p in sys.version_info[:3])
    detail = f"{version} ({sys.executable})"
    try:
        requires = metadata.metadata("provision")["Requires-Python"] or ""
        ok = not requires or version in SpecifierSet(requires)
    except (metadata.PackageNotFoundError, InvalidSpecifier):
        return Check(CONTROLLER, "python", "warn", f"{detail}; provision is not installed as a package")
    if not ok:
        return Check(CONTROLLER, "python", "fail", f"{detail}; provision needs Python {requires}")
    return Check(CONTROLLER, "python", "pass", detail)


def dependencies_check(want: dict[str, str]) -> Check:
    """Every package provision needs at run time is installed, in range, and (ideally) as pinned."""
    name = "packages"
    try:
        metadata.distribution("provision")
    except metadata.PackageNotFoundError:
        return Check(CONTROLLER, name, "warn", "provision is not installed as a package: cannot read its requirements")
    missing: list[str] = []
    wrong: list[str] = []
    differ: list[str] = []
    total = 0
    for key, req in _closure("provision"):
        if key in ANSIBLE:
            continue
        total += 1
        found = _installed(req.name)
        if found is None:
            missing.append(key)
            continue
        try:
            in_range = req.specifier.contains(found, prereleases=True)
            pinned = key in want and Version(found) != Version(want[key])
        except InvalidVersion:
            in_range, pinned = True, False
        if not in_range:
            wrong.append(f"{key} {found} (needs {req.specifier})")
        elif pinned:
            differ.append(f"{key} {found} (CI: {want[key]})")
    if missing or wrong:
        parts = ([f"missing: {', '.join(missing)}"] if missing else []) + (
            [f"wrong: {'; '.join(wrong)}"] if wrong else []
        )
        return Check(CONTROLLER, name, "fail", "; ".join(parts))
    if differ:
        shown = "; ".join(differ[:8]) + ("; ..." if len(differ) > 8 else "")
        return Check(CONTROLLER, name, "warn", f"{len(differ)} of {total} differ from the tested versions: {shown}")
    tested = "as CI tests" if want else "no constraints file to compare with"
    return Check(CONTROLLER, name, "pass", f"{total} package(s) installed and in range, {tested}")


# --------------------------------------------------------------------------- run time


def runtime_checks(network: Network, with_secrets: bool = True) -> list[Check]:
    """What an apply starts or writes on the controller: ssh, ansible-playbook, tmpfs, state, TLS."""
    checks = [ssh_client_check(), ansible_playbook_check(), secrets_base_check(), state_check(network)]
    if network.domain is not None:
        checks.append(tls_check(network, with_secrets))
    return checks


def _version_line(argv: Sequence[str], env: dict[str, str] | None = None) -> tuple[int, str]:
    """Exit status and the first (or, on failure, last) line a ``--version`` run printed."""
    try:
        proc = subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            timeout=VERSION_TIMEOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return -1, str(exc)
    lines = [line.strip() for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    if not lines:
        return proc.returncode, ""
    return proc.returncode, lines[0] if proc.returncode == 0 else lines[-1]


def ssh_client_check() -> Check:
    """Ansible logs in with OpenSSH's ssh (preflight uses paramiko, the run does not)."""
    path = shutil.which("ssh")
    if path is None:
        return Check(CONTROLLER, "ssh", "fail", "ssh not found on PATH; install openssh-client")
    rc, line = _version_line([path, "-V"])
    if rc != 0:
        return Check(CONTROLLER, "ssh", "fail", f"{path} -V failed: {line}")
    return Check(CONTROLLER, "ssh", "pass", f"{path}: {line}")


def ansible_playbook_check() -> Check:
    """The ansible-playbook a run starts, run with the environment a run gives it.

    ansible-core refuses to start under a non-UTF-8 locale, among other things: only
    running it tells.
    """
    name = "ansible-playbook"
    try:
        from provision import runner  # imports ansible_runner: the package check says if it is missing

        path = runner.ansible_playbook()
    except ImportError as exc:
        return Check(CONTROLLER, name, "fail", f"cannot import the certificates' library: {exc}")
    except ProvisionError as exc:
        return Check(CONTROLLER, name, "fail", str(exc))
    env = {**secrets.allowed_env(), "PATH": os.pathsep.join([str(Path(path).parent), os.environ.get("PATH", "")])}
    rc, line = _version_line([path, "--version"], env)
    if rc != 0:
        return Check(CONTROLLER, name, "fail", f"{path} --version failed (exit {rc}): {line}")
    return Check(CONTROLLER, name, "pass", f"{path}: {line}")


def secrets_base_check() -> Check:
    """Secrets reach Ansible through a file on /dev/shm: a RAM filesystem this user can write."""
    name = "secrets tmpfs"
    base = secrets.SECRETS_BASE
    problem = secrets.ram_base_problem(base)
    if problem is not None:
        return Check(CONTROLLER, name, "fail", problem)
    if not os.access(base, os.W_OK | os.X_OK):
        return Check(CONTROLLER, name, "fail", f"{base} is not writable by this user")
    return Check(CONTROLLER, name, "pass", f"{base} ({secrets.filesystem_type(base)})")


def state_check(network: Network) -> Check:
    """The folder a run remembers its last failures and the network CA in can be made and written."""
    name = "state directory"
    folder = paths.state_dir(network)
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return Check(CONTROLLER, name, "fail", f"{existing} is not a directory; {folder} cannot be made")
    if not os.access(existing, os.W_OK | os.X_OK):
        return Check(CONTROLLER, name, "fail", f"{existing} is not writable; {folder} cannot be made (XDG_STATE_HOME)")
    return Check(CONTROLLER, name, "pass", str(folder) + ("" if folder.exists() else " (made by the first run)"))


def tls_check(network: Network, with_secrets: bool = True) -> Check:
    """The certificates of a domain run, got as a dry run gets them: on a copy of the network CA."""
    name = "certificates"
    try:
        from provision import certificates

        material = certificates.material(
            network, network.hosts, paths.tls_dir(network), keys=with_secrets, scratch=True
        )
    except SecretError as exc:
        return Check(CONTROLLER, name, "fail", str(exc))
    except ImportError as exc:
        return Check(CONTROLLER, name, "fail", f"cannot import the certificates' library: {exc}")
    except (OSError, ValueError) as exc:
        return Check(CONTROLLER, name, "fail", f"{type(exc).__name__}: {exc}")
    own = sum(1 for h in network.hosts if h.tls is not None and h.role in TLS_ROLES)
    issued = len(material.chains) - own
    return Check(CONTROLLER, name, "pass", f"{len(material.chains)} host(s): {own} from the spec, {issued} from the CA")


# --------------------------------------------------------------------------- lab


def lab_checks(network: Network) -> list[Check]:
    """What ``provision lab up`` needs of this machine, and of the spec's addresses."""
    return [
        root_check(),
        *tool_checks(),
        nspawn_check(),
        dpkg_check(LAB_HOST_PACKAGES),
        cgroup_check(),
        bridge_check(),
        lab_network_check(),
        lab_address_check(network),
    ]


def root_check() -> Check:
    euid = os.geteuid()
    if euid == 0:
        return Check(LAB, "root", "pass", "euid 0")
    return Check(LAB, "root", "fail", f"euid {euid}: the lab needs root (mounts, bridges, cgroups, nspawn)")


def tool_checks(tools: Mapping[str, str] = LAB_TOOLS) -> list[Check]:
    """One failing check per missing program (program -> its Debian package), or one pass for all."""
    missing = [t for t in tools if shutil.which(t) is None]
    if not missing:
        return [Check(LAB, "tools", "pass", ", ".join(tools))]
    return [Check(LAB, f"tool {t}", "fail", f"{t} not found on PATH (Debian package {tools[t]})") for t in missing]


def nspawn_check() -> Check:
    """systemd-nspawn boots lab hosts; without it the lab falls back to unshare + chroot (sshd only)."""
    path = shutil.which("systemd-nspawn")
    if path is None:
        return Check(
            LAB,
            "systemd-nspawn",
            "warn",
            "not found (install systemd-container): hosts would run sshd only, no systemd",
        )
    rc, line = _version_line([path, "--version"])
    return Check(LAB, "systemd-nspawn", "pass" if rc == 0 else "warn", f"{path}: {line}")


def dpkg_check(packages: Sequence[str]) -> Check:
    """Which of ``packages`` dpkg says are installed."""
    name = "debian packages"
    dpkg = shutil.which("dpkg-query")
    if dpkg is None:
        return Check(LAB, name, "warn", "dpkg-query not found: not Debian, cannot check " + " ".join(packages))
    proc = subprocess.run(
        [dpkg, "-W", "-f=${Package} ${db:Status-Abbrev}\\n", *packages],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    installed = set()
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[1].startswith("ii"):
            installed.add(parts[0].split(":")[0])
    missing = [p for p in packages if p not in installed]
    if missing:
        return Check(LAB, name, "fail", f"not installed: {' '.join(missing)} (make deps, or apt-get install them)")
    return Check(LAB, name, "pass", " ".join(packages))


def cgroup_check() -> Check:
    """The lab puts every process in its own cgroup: it works on unified, hybrid and legacy layouts."""
    from provision.lab import cgroups

    try:
        layout = cgroups.layout()
    except OSError as exc:
        return Check(LAB, "cgroups", "fail", f"cannot read the mounts: {exc}")
    if layout == "none":
        return Check(LAB, "cgroups", "fail", f"no cgroup hierarchy mounted under {cgroups.CGROUP_FS}")
    note = "" if layout == "unified" else " (supported; cgroup v2 alone is simpler)"
    return Check(LAB, "cgroups", "pass", layout + note)


def bridge_check() -> Check:
    """The lab's hosts sit on a Linux bridge: the kernel must have it, built in or as a module."""
    if Path("/sys/module/bridge").is_dir():
        return Check(LAB, "bridge", "pass", "the kernel's bridge support is loaded")
    modprobe = shutil.which("modprobe") or next(
        (p for p in ("/usr/sbin/modprobe", "/sbin/modprobe") if Path(p).exists()), None
    )
    if modprobe is not None:
        proc = subprocess.run(
            [modprobe, "-n", "-q", "bridge"], capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False
        )
        if proc.returncode == 0:
            return Check(LAB, "bridge", "pass", "the bridge module is available (loaded by 'lab up')")
        return Check(LAB, "bridge", "fail", "the kernel has no bridge module (modprobe -n bridge failed)")
    return Check(LAB, "bridge", "warn", "bridge support not loaded and no modprobe to ask; 'lab up' will tell")


def lab_network_check() -> Check:
    """No other interface may route into the lab's network (the lab refuses to share it)."""
    from provision.errors import LabError
    from provision.lab import net
    from provision.lab.paths import BRIDGE, LAB_NET

    if shutil.which("ip") is None:
        return Check(LAB, "lab network", "fail", "ip not found (install iproute2)")
    try:
        net.check_no_overlap()
    except LabError as exc:
        return Check(LAB, "lab network", "fail", str(exc))
    bridge = f"{BRIDGE} exists" if net.link_exists(BRIDGE) else f"{BRIDGE} will be made"
    return Check(LAB, "lab network", "pass", f"{LAB_NET} is free; {bridge}")


def lab_address_check(network: Network) -> Check:
    """Every host and execution node of the spec must have an address the lab can give."""
    from provision.errors import LabError
    from provision.lab import net
    from provision.lab.paths import LAB_NET

    machines = [(h.name, h.address) for h in network.hosts] + [
        (n.name, n.address) for n in network.rollout.execution_nodes
    ]
    bad: list[str] = []
    for name, address in machines:
        try:
            net.check_address(name, address)
        except LabError as exc:
            bad.append(str(exc))
    if bad:
        shown = "; ".join(bad[:5]) + ("; ..." if len(bad) > 5 else "")
        return Check(LAB, "lab addresses", "fail", f"{len(bad)} of {len(machines)} outside what the lab gives: {shown}")
    return Check(LAB, "lab addresses", "pass", f"{len(machines)} machine(s) in {LAB_NET}")
