"""Ship the controller's exact ansible-core and ansible-runner to execution nodes that have no package index.

Execution nodes run only ``/usr/bin/python3``: no pip, no venv, no network to PyPI. So the
controller turns its own *installed* distributions (the closure of what ansible-core and
ansible-runner require, markers evaluated here) back into real PEP 427 wheels, byte-identical
from one build to the next, and :data:`INSTALLER`, a stdlib-only script run on the node, unpacks
them into ``PREFIX/KEY`` and points ``PREFIX/current`` at it. The node then runs exactly the
versions the controller tested with, and :func:`node_versions_command` lets preflight check that.

Binary wheels (PyYAML, MarkupSafe, cffi, cryptography) only fit a node with the same Python
minor version and machine as the controller (and a glibc at least as new as their manylinux
tag); the installer checks the tags before it writes anything.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import os
import platform
import posixpath
import shlex
import shutil
import stat
import sys
import tempfile
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from provision.errors import ProvisionError

ROOTS = ("ansible-core", "ansible-runner")
MARKER = ".complete"  # written last: a wheelhouse (or a node install) without it is unfinished
VERSIONS_SCRIPT = "provision-wheelhouse-versions"  # written into PREFIX/KEY/bin by INSTALLER
# Fixed zip timestamp (the earliest zip can store) so that the same install gives the same bytes.
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
# What an installer writes into a dist-info (PEP 376, 610, 627), not part of a wheel; RECORD is
# regenerated and its signatures would no longer match.
_INSTALLER_FILES = frozenset({"RECORD", "RECORD.jws", "RECORD.p7s", "INSTALLER", "REQUESTED", "direct_url.json"})


class WheelhouseError(ProvisionError):
    """The controller's installation cannot be turned into a wheelhouse (not from wheels, files missing)."""


@dataclass(frozen=True)
class Wheelhouse:
    """A complete wheelhouse directory: what to copy to a node and the key to install it under."""

    directory: Path
    wheels: tuple[Path, ...]
    python: str  # "3.11": binary wheels need this Python minor on the node
    machine: str  # platform.machine(): binary wheels need this machine on the node
    key: str  # 16 hex digits of sha256 over the wheels' names and hashes (see wheelhouse_key)


def controller_versions() -> dict[str, str]:
    """The ansible-core and ansible-runner versions installed here: what every node must run."""
    return {name: metadata.version(name) for name in ROOTS}


def default_cache_root() -> Path:
    """``$XDG_CACHE_HOME/provision/wheelhouse``, else ``~/.cache/provision/wheelhouse``."""
    base = os.environ.get("XDG_CACHE_HOME") or ""
    root = Path(base) if Path(base).is_absolute() else Path.home() / ".cache"
    return root / "provision" / "wheelhouse"


def wheelhouse_key(wheels: Iterable[Path]) -> str:
    """Short stable id of a set of wheels; INSTALLER computes the same from the files on the node."""
    digest = hashlib.sha256()
    for path in sorted(wheels, key=lambda p: p.name):
        digest.update(f"{path.name} {_file_sha256(path)}\n".encode())
    return digest.hexdigest()[:16]


def node_versions_command(prefix: str) -> str:
    """A POSIX sh command printing ``{"ansible-core": ..., "ansible-runner": ...}`` for ``prefix/current``.

    It runs the versions script the installer wrote beside the console scripts, with their
    interpreter and library path, so it proves the install still imports (the extension modules
    included). It prints nothing and exits 1 when nothing is installed; it does not ``exec`` or
    ``exit``, so it can be one line of a longer remote script.
    """
    if not prefix.startswith("/"):
        raise ValueError(f"the install prefix must be an absolute path, not {prefix!r}")
    script = shlex.quote(f"{prefix.rstrip('/')}/current/bin/{VERSIONS_SCRIPT}")
    return f"if [ -x {script} ]; then {script}; else false; fi"


def build(cache_root: Path | None = None) -> Wheelhouse:
    """Build (or reuse) the wheelhouse of this controller's ansible-core and ansible-runner.

    The directory is named by Python, machine and the two versions; it is reused when its marker
    names the same distributions and versions as are installed now and its wheels still hash to
    the recorded key. Otherwise it is built into a temporary directory beside it and renamed into
    place, so a reader never sees half a wheelhouse.
    """
    root = cache_root if cache_root is not None else default_cache_root()
    dists = _closure()
    versions = {str(canonicalize_name(_name(d))): d.version for d in dists}
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    machine = platform.machine()
    directory = root / f"{python}-{machine}-core{versions['ansible-core']}-runner{versions['ansible-runner']}"
    found = _load(directory, versions, python, machine)
    if found is not None:
        return found
    _make_private_dirs(root)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=root))  # mkdtemp: 0700
    try:
        wheels = sorted((_write_wheel(d, staging) for d in dists), key=lambda p: p.name)
        marker = {
            "key": wheelhouse_key(wheels),
            "python": python,
            "machine": machine,
            "distributions": dict(sorted(versions.items())),
            "wheels": [w.name for w in wheels],
        }
        (staging / MARKER).write_text(json.dumps(marker, indent=1) + "\n")
        _move_into_place(staging, directory, versions, python, machine)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    found = _load(directory, versions, python, machine)
    if found is None:
        raise WheelhouseError(f"{directory}: the wheelhouse just built does not check out")
    return found


def _name(dist: metadata.Distribution) -> str:
    name = dist.metadata["Name"]
    if not name:
        raise WheelhouseError(f"a distribution without a name in {dist.locate_file('')}")
    return str(name)


def _closure() -> list[metadata.Distribution]:
    """The installed distributions ansible-core and ansible-runner need here (markers evaluated, no extras)."""
    found: dict[str, metadata.Distribution] = {}
    todo = [(name, "the controller") for name in ROOTS]
    while todo:
        name, wanted_by = todo.pop()
        canonical = canonicalize_name(name)
        if canonical in found:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            raise WheelhouseError(f"{name} (required by {wanted_by}) is not installed") from None
        found[canonical] = dist
        for line in dist.requires or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append((requirement.name, _name(dist)))
    return sorted(found.values(), key=lambda d: canonicalize_name(_name(d)))


def _write_wheel(dist: metadata.Distribution, directory: Path) -> Path:
    """Write one installed distribution back as a wheel; return its path.

    Only what lives under its site-packages directory goes in (console scripts in ../../bin are
    regenerated on the node from entry_points.txt; bytecode is compiled there), plus the
    dist-info with a new RECORD. Entries are sorted, timestamps and modes fixed.
    """
    name = _name(dist)
    files = dist.files
    direct_url = dist.read_text("direct_url.json")
    if direct_url and json.loads(direct_url).get("dir_info", {}).get("editable"):
        raise WheelhouseError(f"{name} is an editable install; install it from a wheel to ship it to nodes")
    dist_infos = {f.parts[0] for f in files or [] if len(f.parts) == 2 and f.parts[0].endswith(".dist-info")}
    if files is None or len(dist_infos) != 1:
        raise WheelhouseError(f"{name} was not installed from a wheel (no dist-info RECORD); reinstall it with pip")
    dist_info = dist_infos.pop()
    wheel_meta = dist.read_text("WHEEL") or ""
    tags = [line.split(":", 1)[1].strip() for line in wheel_meta.splitlines() if line.startswith("Tag:")]
    if not tags:
        raise WheelhouseError(f"{name}: {dist_info}/WHEEL has no Tag line")
    site = Path(str(dist.locate_file("")))
    members: dict[str, Path] = {}
    for file in files:
        rel = posixpath.normpath(file.as_posix())
        parts = rel.split("/")
        if rel.startswith("/") or parts[0] == ".." or "__pycache__" in parts or rel.endswith((".pyc", ".pyo")):
            continue
        if parts[0] == dist_info and parts[-1] in _INSTALLER_FILES and len(parts) == 2:
            continue
        members[rel] = site / rel
    ordered = sorted(r for r in members if not r.startswith(f"{dist_info}/"))
    ordered += sorted(r for r in members if r.startswith(f"{dist_info}/"))
    filename = f"{canonicalize_name(name).replace('-', '_')}-{str(Version(dist.version)).replace('-', '_')}"
    path = directory / f"{filename}-{_compressed_tags(tags)}.whl"
    record = io.StringIO()
    writer = csv.writer(record, lineterminator="\n")
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for rel in ordered:
            source = members[rel]
            try:
                data = source.read_bytes()
                executable = source.stat().st_mode & 0o111
            except OSError as error:
                raise WheelhouseError(f"{name}: {source} is listed in its RECORD but unreadable ({error})") from None
            _add(archive, rel, data, 0o755 if executable else 0o644)
            writer.writerow([rel, f"sha256={_b64_sha256(data)}", len(data)])
        writer.writerow([f"{dist_info}/RECORD", "", ""])
        _add(archive, f"{dist_info}/RECORD", record.getvalue().encode(), 0o644)
    path.chmod(0o644)
    return path


def _compressed_tags(tags: list[str]) -> str:
    """The file name's tag: all WHEEL tags as one compressed set when they form one, else the first.

    ``py2.py3-none-any``, not ``py2-none-any``: installers match the file name, so a first tag
    alone could make a wheel look incompatible with the Python it supports.
    """
    split = [tag.split("-") for tag in tags]
    if any(len(parts) != 3 for parts in split):
        return tags[0]
    columns = [list(dict.fromkeys(parts[i] for parts in split)) for i in range(3)]
    product = {(a, b, c) for a in columns[0] for b in columns[1] for c in columns[2]}
    if product != {tuple(parts) for parts in split}:
        return tags[0]
    return "-".join(".".join(column) for column in columns)


def _add(archive: zipfile.ZipFile, name: str, data: bytes, mode: int) -> None:
    info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.create_system = 3  # Unix, so that external_attr holds the mode
    info.external_attr = (stat.S_IFREG | mode) << 16
    archive.writestr(info, data)


def _b64_sha256(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def _file_sha256(path: Path) -> str:
    with path.open("rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


def _load(directory: Path, versions: dict[str, str], python: str, machine: str) -> Wheelhouse | None:
    """The wheelhouse in ``directory`` if it is complete and built from these versions, else None."""
    try:
        marker = json.loads((directory / MARKER).read_text())
        wheels = tuple(directory / name for name in marker["wheels"])
        if (
            marker["distributions"] != versions
            or marker["python"] != python
            or marker["machine"] != machine
            or sorted(p.name for p in directory.glob("*.whl")) != sorted(marker["wheels"])
            or wheelhouse_key(wheels) != marker["key"]
        ):
            return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return Wheelhouse(directory, wheels, python, machine, str(marker["key"]))


def _move_into_place(staging: Path, directory: Path, versions: dict[str, str], python: str, machine: str) -> None:
    """Rename the finished staging directory to its name, replacing a stale one (not a good one)."""
    try:
        staging.rename(directory)
        return
    except OSError:
        if _load(directory, versions, python, machine) is not None:
            return  # another build finished first; keep its (identical) wheels
    stale = Path(tempfile.mkdtemp(prefix=f".{directory.name}.stale.", dir=directory.parent))
    directory.rename(stale / "old")
    try:
        staging.rename(directory)
    finally:
        shutil.rmtree(stale, ignore_errors=True)


def _make_private_dirs(path: Path) -> None:
    """Create ``path`` and any missing parents as 0700 (the cache is the user's own)."""
    missing: list[Path] = []
    while not path.is_dir():
        missing.append(path)
        path = path.parent
    for directory in reversed(missing):
        directory.mkdir(mode=0o700, exist_ok=True)
        directory.chmod(0o700)


# The installer run on an execution node as `/usr/bin/python3 - WHEEL_DIR PREFIX KEY`, the
# script on stdin. Standalone, stdlib only: it is the first Python code of ours a node runs.
INSTALLER = r'''
"""Install a provision wheelhouse without pip: python3 - WHEEL_DIR PREFIX KEY.

Unpacks every wheel of WHEEL_DIR (PEP 427) into PREFIX/KEY/lib, checking each member against
RECORD, writes the console scripts into PREFIX/KEY/bin, proves the result imports, then points
PREFIX/current at KEY and removes older installs. Prints one JSON line; on failure one line on
stderr and exit status 1.
"""
import base64
import compileall
import configparser
import csv
import fcntl
import hashlib
import io
import itertools
import json
import os
import platform
import re
import shutil
import stat
import subprocess
import sys
import zipfile
from importlib.machinery import EXTENSION_SUFFIXES

MARKER = ".complete"
VERSIONS = "provision-wheelhouse-versions"
KEY_RE = re.compile(r"^[0-9a-f]{16}$")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
ENTRY_RE = re.compile(r"^([A-Za-z_][\w.]*)\s*:\s*([A-Za-z_][\w.]*)\s*(\[[^\]]*\])?$")
LEGACY_GLIBC = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}
SIGNATURES = ("RECORD", "RECORD.jws", "RECORD.p7s")

SCRIPT = """#!{python} -s
# {name}: written by provision's wheelhouse installer from {dist}.
import sys
sys.path.insert(0, {lib!r})
from {module} import {first}
if __name__ == "__main__":
    sys.exit({attr}())
"""

VERSIONS_SOURCE = r"""#!{python} -s
# Prints the ansible-core and ansible-runner versions this install imports, as one JSON line.
import importlib
import json
import os
import sys
import warnings
from importlib import metadata

LIB = {lib!r}
EXTENSIONS = {extensions!r}
sys.path.insert(0, LIB)
warnings.simplefilter("ignore")


def main():
    import ansible.release
    import ansible_runner
    lib = os.path.realpath(LIB) + os.sep
    for module in (ansible.release, ansible_runner):
        if not os.path.realpath(module.__file__).startswith(lib):
            sys.exit("%s is imported from %s, not from %s" % (module.__name__, module.__file__, LIB))
    for name in EXTENSIONS:  # every binary module loads here (Python, machine, glibc fit)
        importlib.import_module(name)
    versions = {{}}
    for name in ("ansible-core", "ansible-runner"):
        found = [d.version for d in metadata.distributions(name=name, path=[LIB])]
        if len(found) != 1:
            sys.exit("%s: %d installed copies of %s" % (LIB, len(found), name))
        versions[name] = found[0]
    if versions["ansible-core"] != ansible.release.__version__:
        sys.exit("ansible-core: metadata %s, module %s" % (versions["ansible-core"], ansible.release.__version__))
    print(json.dumps(versions))


main()
"""


class Refused(Exception):
    """A reason to stop; printed as one line."""


def file_sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def wheel_key(paths):
    """The same as provision.wheelhouse.wheelhouse_key on the controller."""
    digest = hashlib.sha256()
    for path in sorted(paths, key=os.path.basename):
        digest.update(("%s %s\n" % (os.path.basename(path), file_sha256(path))).encode())
    return digest.hexdigest()[:16]


def glibc():
    try:
        version = os.confstr("CS_GNU_LIBC_VERSION").split()[1]
        return tuple(int(n) for n in version.split(".")[:2])
    except (ValueError, OSError, IndexError, AttributeError):
        return None


def tag_fits(interpreter, abi, plat):
    major, minor = sys.version_info[:2]
    cpython = sys.implementation.name == "cpython"
    here = "%d%d" % (major, minor)
    if interpreter.startswith("py"):
        fits = interpreter[2:] in (str(major), here)
    elif interpreter.startswith("cp") and cpython and interpreter[2:3] == str(major) and interpreter[3:].isdigit():
        wanted = int(interpreter[3:])
        fits = wanted <= minor if abi == "abi3" else wanted == minor
    else:
        fits = False
    if not fits or abi not in ("none", "abi3", "cp" + here):
        return False
    if plat == "any":
        return True
    machine = platform.machine()
    if plat == "linux_" + machine:
        return True
    match = re.match(r"^manylinux_(\d+)_(\d+)_(.+)$", plat)
    if match:
        needed, arch = (int(match.group(1)), int(match.group(2))), match.group(3)
    else:
        match = re.match(r"^(manylinux1|manylinux2010|manylinux2014)_(.+)$", plat)
        if not match:
            return False
        needed, arch = LEGACY_GLIBC[match.group(1)], match.group(2)
    have = glibc()
    return arch == machine and have is not None and have >= needed


def check_tags(wheel, tags):
    for tag in tags:
        parts = tag.split("-")
        if len(parts) == 3 and any(tag_fits(*t) for t in itertools.product(*(p.split(".") for p in parts))):
            return
    raise Refused(
        "%s is built for %s; this node runs Python %d.%d on %s (glibc %s)"
        % (os.path.basename(wheel), ", ".join(tags), sys.version_info[0], sys.version_info[1],
           platform.machine(), ".".join(map(str, glibc() or ("?",))))
    )


def check_member(wheel, info):
    """Refuse any member that could land outside the install: absolute, `..`, links, devices."""
    name = info.filename
    parts = name.rstrip("/").split("/")
    if (
        not name
        or name.startswith("/")
        or "\\" in name
        or "\0" in name
        or re.match(r"^[A-Za-z]:", name)
        or any(part in ("", ".", "..") for part in parts)
    ):
        raise Refused("%s: member %r escapes the install directory" % (os.path.basename(wheel), name))
    kind = stat.S_IFMT(info.external_attr >> 16)
    if info.create_system == 3 and kind not in (0, stat.S_IFREG, stat.S_IFDIR):
        raise Refused("%s: member %r is a link or special file" % (os.path.basename(wheel), name))


def read_record(wheel, text):
    record = {}
    for row in csv.reader(io.StringIO(text)):
        if not row:
            continue
        if len(row) != 3:
            raise Refused("%s: bad RECORD line %r" % (os.path.basename(wheel), row))
        record[row[0]] = (row[1], row[2])
    return record


def install_wheel(wheel, staging, lib, bin_dir, python):
    """Unpack one wheel into the staging directory; return its dist-info directory name."""
    base = os.path.basename(wheel)
    try:
        archive = zipfile.ZipFile(wheel)
    except (OSError, zipfile.BadZipFile) as error:
        raise Refused("%s: not a wheel (%s)" % (base, error)) from None
    with archive:
        infos = archive.infolist()
        for info in infos:
            check_member(wheel, info)
        names = set(info.filename for info in infos)
        dist_infos = set(n.split("/")[0] for n in names if n.split("/")[0].endswith(".dist-info") and "/" in n)
        if len(dist_infos) != 1:
            raise Refused("%s: %d .dist-info directories, not one" % (base, len(dist_infos)))
        dist_info = dist_infos.pop()
        data_dir = dist_info[: -len(".dist-info")] + ".data"
        try:
            meta = archive.read(dist_info + "/WHEEL").decode()
            record = read_record(wheel, archive.read(dist_info + "/RECORD").decode())
        except KeyError as error:
            raise Refused("%s: %s" % (base, error)) from None
        fields = [line.split(":", 1) for line in meta.splitlines() if ":" in line]
        version = [v.strip() for k, v in fields if k == "Wheel-Version"]
        if not version or version[0].split(".")[0] != "1":
            raise Refused("%s: unsupported Wheel-Version %s" % (base, version))
        check_tags(wheel, [v.strip() for k, v in fields if k == "Tag"] or [base[:-4].split("-", 2)[-1]])
        listed = set(n for n in names if not n.endswith("/"))
        unlisted = sorted(n for n in listed - set(record) if n not in [dist_info + "/" + s for s in SIGNATURES])
        missing = sorted(set(record) - listed)
        if unlisted or missing:
            raise Refused("%s: RECORD does not match the archive (unlisted %s, missing %s)"
                          % (base, unlisted[:3], missing[:3]))
        for info in infos:
            name = info.filename
            if name.endswith("/"):
                continue
            parts = name.split("/")
            script = False
            if parts[0] == data_dir:
                if len(parts) < 3:
                    raise Refused("%s: stray member %r" % (base, name))
                if parts[1] in ("purelib", "platlib"):
                    root = lib
                elif parts[1] == "scripts":
                    root, script = bin_dir, True
                elif parts[1] == "data":
                    root = staging
                elif parts[1] == "headers":
                    root = os.path.join(staging, "include", dist_info.split("-")[0])
                else:
                    raise Refused("%s: unknown data directory %r" % (base, name))
                parts = parts[2:]
            else:
                root = lib
            destination = os.path.join(root, *parts)
            parent = os.path.dirname(destination)
            os.makedirs(parent, mode=0o755, exist_ok=True)
            if not os.path.realpath(parent).startswith(os.path.realpath(staging) + os.sep):
                raise Refused("%s: member %r escapes the install directory" % (base, name))
            extract(archive, info, destination, record.get(name, ("", "")), script, python, base)


def extract(archive, info, destination, expected, script, python, base):
    """Write one member (O_EXCL, never through a link) while checking its RECORD hash and size."""
    algorithm, _, wanted = expected[0].partition("=")
    if algorithm and algorithm not in ("sha256", "sha384", "sha512"):
        raise Refused("%s: %s has a %r hash in RECORD" % (base, info.filename, algorithm))
    size = int(expected[1]) if expected[1] else None
    mode = 0o755 if script or (info.external_attr >> 16) & 0o111 else 0o644
    try:
        fd = os.open(destination, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    except FileExistsError:
        raise Refused("%s: %s is installed by two wheels (or twice)" % (base, info.filename)) from None
    digest = hashlib.new(algorithm or "sha256")
    written = 0
    with os.fdopen(fd, "wb") as out, archive.open(info) as member:
        first = True
        while True:
            chunk = member.read(1 << 20)
            if not chunk:
                break
            digest.update(chunk)
            written += len(chunk)
            if size is not None and written > size:
                raise Refused("%s: %s is larger than RECORD says" % (base, info.filename))
            if script and first and re.match(rb"^#!python(w)?\b", chunk):
                chunk = b"#!" + python.encode() + b" -s" + chunk[len(re.match(rb"^#!pythonw?", chunk).group(0)):]
            first = False
            out.write(chunk)
    if algorithm and base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode() != wanted:
        raise Refused("%s: %s does not match its RECORD hash" % (base, info.filename))
    if size is not None and written != size:
        raise Refused("%s: %s is %d bytes, RECORD says %d" % (base, info.filename, written, size))


def write_file(path, text, mode):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    with os.fdopen(fd, "w") as out:
        out.write(text)


def write_scripts(lib, bin_dir, final_lib, python):
    """One script per console_scripts/gui_scripts entry point of every installed dist-info."""
    for dist_info in sorted(os.listdir(lib)):
        path = os.path.join(lib, dist_info, "entry_points.txt")
        if not dist_info.endswith(".dist-info") or not os.path.isfile(path):
            continue
        parser = configparser.ConfigParser(delimiters=("=",), interpolation=None, strict=False)
        parser.optionxform = str
        try:
            with open(path, encoding="utf-8") as stream:
                parser.read_file(stream)
        except configparser.Error as error:
            raise Refused("%s: %s" % (path, " ".join(str(error).split()))) from None
        for section in ("console_scripts", "gui_scripts"):
            if not parser.has_section(section):
                continue
            for name, value in parser.items(section):
                match = ENTRY_RE.match(value.strip())
                if not NAME_RE.match(name) or not match:
                    raise Refused("%s: bad entry point %s = %s" % (dist_info, name, value))
                module, attr = match.group(1), match.group(2)
                text = SCRIPT.format(python=python, name=name, dist=dist_info, lib=final_lib,
                                     module=module, first=attr.split(".")[0], attr=attr)
                try:
                    write_file(os.path.join(bin_dir, name), text, 0o755)
                except FileExistsError:
                    raise Refused("two console scripts named %s" % name) from None


def extension_modules(lib):
    """Dotted names of the extension modules in lib that live in importable packages."""
    found = []
    suffixes = sorted(EXTENSION_SUFFIXES, key=len, reverse=True)
    for directory, dirs, files in os.walk(lib):
        dirs.sort()
        rel = os.path.relpath(directory, lib)
        package = [] if rel == "." else rel.split(os.sep)
        if not all(p.isidentifier() for p in package):
            dirs[:] = []
            continue
        if package and "__init__.py" not in files:
            continue
        for name in sorted(files):
            suffix = next((s for s in suffixes if name.endswith(s)), None)
            if suffix and name[: -len(suffix)].isidentifier():
                found.append(".".join(package + [name[: -len(suffix)]]))
    return found


def install(wheel_dir, prefix, key, python):
    if not os.path.isdir(wheel_dir):
        raise Refused("%s: no such directory" % wheel_dir)
    wheels = sorted(os.path.join(wheel_dir, n) for n in os.listdir(wheel_dir) if n.endswith(".whl"))
    if not wheels:
        raise Refused("%s: no wheels" % wheel_dir)
    actual = wheel_key(wheels)
    if actual != key:
        raise Refused("the wheels in %s are not wheelhouse %s (they hash to %s)" % (wheel_dir, key, actual))
    target = os.path.join(prefix, key)
    staging = os.path.join(prefix, ".staging-" + key)
    for path in (staging, target):
        if os.path.islink(path):
            os.unlink(path)
        elif os.path.lexists(path):
            shutil.rmtree(path)  # an unfinished earlier attempt (no marker)
    os.mkdir(staging, 0o755)
    try:
        lib, bin_dir = os.path.join(staging, "lib"), os.path.join(staging, "bin")
        final_lib = os.path.join(target, "lib")
        os.mkdir(lib, 0o755)
        os.mkdir(bin_dir, 0o755)
        for wheel in wheels:
            install_wheel(wheel, staging, lib, bin_dir, python)
        write_scripts(lib, bin_dir, final_lib, python)
        write_file(os.path.join(bin_dir, VERSIONS),
                   VERSIONS_SOURCE.format(python=python, lib=final_lib, extensions=extension_modules(lib)), 0o755)
        # Bytecode now, as pip does: otherwise every run by a user who cannot write here compiles again.
        compileall.compile_dir(lib, ddir=final_lib, quiet=2, workers=0)
        marker = {"key": key, "python": python, "wheels": [os.path.basename(w) for w in wheels]}
        write_file(os.path.join(staging, MARKER), json.dumps(marker) + "\n", 0o644)
        os.rename(staging, target)
    finally:
        if os.path.lexists(staging):
            shutil.rmtree(staging, ignore_errors=True)


def versions_of(target):
    """Run the install's versions script: a subprocess of this python importing from its lib."""
    env = {"PATH": os.environ.get("PATH") or "/usr/bin:/bin"}
    try:
        done = subprocess.run([os.path.join(target, "bin", VERSIONS)], env=env, cwd="/", stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
    except (OSError, subprocess.SubprocessError) as error:
        raise Refused("%s does not run: %s" % (target, error)) from None
    lines = done.stderr.decode(errors="replace").strip().splitlines()
    if done.returncode != 0:
        raise Refused("%s does not import: %s" % (target, lines[-1] if lines else "exit %d" % done.returncode))
    try:
        versions = json.loads(done.stdout)
        return {"ansible-core": versions["ansible-core"], "ansible-runner": versions["ansible-runner"]}
    except (ValueError, KeyError, TypeError):
        raise Refused("%s: unexpected versions output %r" % (target, done.stdout[:200])) from None


def point_current(prefix, key):
    """Atomically make PREFIX/current a relative symlink to KEY."""
    current = os.path.join(prefix, "current")
    if os.path.lexists(current) and not os.path.islink(current):
        raise Refused("%s exists and is not a symlink" % current)
    temporary = os.path.join(prefix, ".current-%d" % os.getpid())
    if os.path.lexists(temporary):
        os.unlink(temporary)
    os.symlink(key, temporary)
    os.replace(temporary, current)


def remove_others(prefix, key):
    """Remove earlier installs (key-named directories with a marker) and leftovers; nothing else."""
    for name in os.listdir(prefix):
        path = os.path.join(prefix, name)
        if name == key or os.path.islink(path) or not os.path.isdir(path):
            continue
        if (KEY_RE.match(name) and os.path.isfile(os.path.join(path, MARKER))) or name.startswith(".staging-"):
            shutil.rmtree(path)


def main(argv):
    if len(argv) != 3:
        raise Refused("usage: python3 - WHEEL_DIR PREFIX KEY")
    wheel_dir, prefix, key = argv
    if not KEY_RE.match(key):
        raise Refused("%r is not a wheelhouse key (16 hex digits)" % key)
    python = sys.executable
    if not python or re.search(r"\s", python) or not os.path.isabs(python):
        raise Refused("cannot write a #! line for the interpreter %r" % python)
    prefix = os.path.abspath(prefix)
    if prefix == "/":
        raise Refused("the prefix cannot be /")
    os.umask(0o022)
    os.makedirs(prefix, mode=0o755, exist_ok=True)
    with open(os.path.join(prefix, ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one installer at a time per prefix
        target = os.path.join(prefix, key)
        if not os.path.isfile(os.path.join(target, MARKER)):
            install(os.path.abspath(wheel_dir), prefix, key, python)
        versions = versions_of(target)
        point_current(prefix, key)
        remove_others(prefix, key)
    result = {"key": key}
    result.update(versions)
    print(json.dumps(result))


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except Refused as error:
        sys.exit("wheelhouse install: " + " ".join(str(error).split()))
    except Exception as error:  # one line, not a traceback, for the controller's report
        sys.exit("wheelhouse install: %s: %s" % (type(error).__name__, " ".join(str(error).split())))
'''
