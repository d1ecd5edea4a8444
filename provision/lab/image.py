"""The cached lab image and repository, built once under /var/cache/provision/lab.

One mmdebstrap run installs a bookworm minbase with SSH, Python and systemd
plus every lab package (from bookworm, -updates and -security of the host's
mirror) into ``golden``, the read-only lower layer of every host's overlay
root; the .debs it downloaded become the local apt repository, so nothing is
fetched twice. mmdebstrap resolves and unpacks everything in one apt/dpkg
transaction, which is about twice as fast here as debootstrap followed by a
second apt run. The image carries an id derived from its package lists so a
changed list rebuilds it, and is built in a scratch directory then renamed
into place so an interrupted build never leaves a half image behind.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from provision.errors import LabError

from . import cgroups, mounts, repo
from .packages import BASE_PACKAGES, LAB_PACKAGES, SUITE
from .paths import BUILD_CGROUP, BUILD_DIR, BUILD_TOOLS, GOLDEN_DIR, LEGACY_BASE_DIR, LOG_DIR, REPO_DIR, REPO_URL
from .sources import debian_sources
from .util import CHROOT_ENV, Progress, remove_tree, run, write_file

FORMAT = 3  # bump when the way images are built changes
POOL = REPO_DIR / "pool"
IMAGE_RESOLV_CONF = (
    "# provision lab: no resolver outside the lab is configured.\n"
    "# The playbooks point this at the lab's own DNS servers.\n"
)
SSHD_CONF = (
    "# provision lab: key-only root logins with pre-generated host keys.\n"
    "HostKey /etc/ssh/ssh_host_ed25519_key\n"
    "PermitRootLogin prohibit-password\n"
    "PasswordAuthentication no\n"
    "KbdInteractiveAuthentication no\n"
    "UseDNS no\n"
    "GSSAPIAuthentication no\n"
)
# Lab hosts need no manuals, docs or translations; skipping them makes dpkg
# write a third fewer files, which is most of what installing costs here.
DPKG_NODOC = (
    "# provision lab: no docs, manuals or translations in lab images\n"
    "path-exclude=/usr/share/doc/*\n"
    "path-include=/usr/share/doc/*/copyright\n"
    "path-exclude=/usr/share/man/*\n"
    "path-exclude=/usr/share/info/*\n"
    "path-exclude=/usr/share/lintian/*\n"
    "path-exclude=/usr/share/locale/*\n"
    "path-include=/usr/share/locale/locale.alias\n"
)


def _digest(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def golden_id() -> str:
    return _digest("golden", FORMAT, SUITE, sorted(BASE_PACKAGES), sorted(LAB_PACKAGES))


def _stamp(name: str) -> Path:
    return REPO_DIR.parent / f"{name}.json"


def stamp_ok(name: str, want: str, path: Path) -> bool:
    """True when the cached image ``name`` exists and was built for ``want``."""
    try:
        data = json.loads(_stamp(name).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("id") == want and path.exists()


def write_stamp(name: str, ident: str, seconds: float) -> None:
    _stamp(name).write_text(json.dumps({"id": ident, "seconds": round(seconds, 1), "built": time.time()}) + "\n")


def drop_stamp(name: str) -> None:
    _stamp(name).unlink(missing_ok=True)


def remove_legacy() -> None:
    """What FORMAT 2 builds left: the separate debootstrap layer and its stamps."""
    remove_tree(LEGACY_BASE_DIR)
    for name in ("base", "repo"):
        drop_stamp(name)


def wipe_cache() -> None:
    """Remove the cached image and repository, so the next ``lab up`` builds them (benchmarks)."""
    remove_legacy()
    remove_tree(REPO_DIR)
    remove_tree(GOLDEN_DIR)
    drop_stamp("golden")


def chroot(root: Path, argv: list[str], log: Path, timeout: float = 1800) -> None:
    """Run a command inside an image with a private /proc.

    ``unshare`` gives it its own mount and pid namespaces, so the /proc mount
    and any daemon a maintainer script forks die with it, even on kill -9.
    """
    run(
        ["unshare", "--mount", "--pid", "--fork", f"--mount-proc={root}/proc", "chroot", str(root), *argv],
        env=CHROOT_ENV,
        log=log,
        timeout=timeout,
        cgroup=BUILD_CGROUP,
    )


def enabled_units(root: Path) -> set[str]:
    """Units enabled in an image, read offline with the host's systemctl."""
    proc = run(["systemctl", f"--root={root}", "list-unit-files", "--state=enabled", "--no-legend", "--no-pager"])
    return {line.split()[0] for line in proc.stdout.splitlines() if line.strip()}


def _systemctl(root: Path, verb: str, *units: str) -> None:
    if units:
        run(["systemctl", f"--root={root}", "--quiet", verb, *units], check=False)


def stop_stale_builds() -> None:
    """Kill what a killed build left running (a dpkg outlives a kill -9 of the tool)."""
    cgroups.kill(BUILD_CGROUP)
    cgroups.remove(BUILD_CGROUP)
    mounts.unmount_below(BUILD_DIR)


def clean_build_dir() -> None:
    """Remove leftovers of an interrupted build, unmounting first."""
    stop_stale_builds()
    remove_tree(BUILD_DIR)
    BUILD_DIR.mkdir(parents=True)


def move_debs(src: Path) -> int:
    POOL.mkdir(parents=True, exist_ok=True)
    moved = 0
    if src.is_dir():
        for deb in src.glob("*.deb"):
            deb.replace(POOL / deb.name)
            moved += 1
    return moved


def _common_config(root: Path) -> None:
    """Settings every lab image shares: no host identity, no outside resolver."""
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    write_file(root / "etc/resolv.conf", IMAGE_RESOLV_CONF)
    write_file(root / "etc/machine-id", "")
    write_file(root / "etc/hostname", "lab\n")
    write_file(root / "etc/hosts", "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
    lists = root / "var/lib/apt/lists"
    if lists.is_dir():
        for entry in lists.iterdir():
            if entry.is_file():
                entry.unlink()


# Units a bare lab host runs at boot (what the minbase and BASE_PACKAGES enable).
# Every other unit the lab packages enable is disabled in the image: a fresh
# machine runs none of those daemons, the playbooks enable what each role needs,
# and ten hosts boot fast.
BOOT_UNITS = frozenset(
    {
        "ssh.service",
        "getty@.service",
        "e2scrub_reap.service",
        "systemd-pstore.service",
        "systemd-networkd.service",
        "systemd-networkd.socket",
        "systemd-network-generator.service",
        "systemd-networkd-wait-online.service",
        "remote-fs.target",
        "dpkg-db-backup.timer",
    }
)
# printer-driver-cups-pdf's postinst polls ``lpstat`` for a cupsd that is never
# started during the build, sleeping 10 s; a stub answers it at once.
LPSTAT_STUB_HOOK = (
    'chroot "$1" dpkg-divert --local --rename --divert /usr/bin/lpstat.provision-lab --add /usr/bin/lpstat'
    ' && printf "#!/bin/sh\\necho scheduler is running\\n" > "$1/usr/bin/lpstat" && chmod 0755 "$1/usr/bin/lpstat"'
)


def _mmdebstrap_argv(root: Path) -> list[str]:
    argv = [
        "mmdebstrap",
        "--mode=root",
        "--variant=minbase",
        "--format=directory",
        f"--include={','.join((*BASE_PACKAGES, *LAB_PACKAGES))}",
        '--aptopt=APT::Install-Recommends "false"',
        '--aptopt=Acquire::Languages "none"',
        "--dpkgopt=force-unsafe-io",
        f"--essential-hook={LPSTAT_STUB_HOOK}",
        # Keep the downloaded .debs: they become the lab's apt repository.
        "--skip=cleanup/apt/cache",
    ]
    argv += [f"--dpkgopt={line}" for line in DPKG_NODOC.splitlines() if not line.startswith("#")]
    lines = [src.line(suite) for src in debian_sources(SUITE) for suite in src.suites]
    return [*argv, SUITE, str(root), *lines]


def build_golden(progress: Progress) -> float:
    """mmdebstrap the whole lab image and make its .debs the repository; returns seconds."""
    start = time.monotonic()
    clean_build_dir()
    drop_stamp("golden")
    log = LOG_DIR / "golden.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("")
    root = BUILD_DIR / "golden"
    count = len(BASE_PACKAGES) + len(LAB_PACKAGES)
    progress(f"lab image: mmdebstrap {SUITE} with {count} packages from the host's mirror (log: {log})")
    run(_mmdebstrap_argv(root), log=log, timeout=1800, cgroup=BUILD_CGROUP, env=CHROOT_ENV)
    (root / "usr/bin/lpstat").unlink()
    chroot(root, ["dpkg-divert", "--local", "--rename", "--remove", "/usr/bin/lpstat"], log)

    remove_tree(POOL)
    debs = move_debs(root / "var/cache/apt/archives")
    repo.index()
    for cache in (root / "var/cache/apt").glob("*.bin"):
        cache.unlink()

    _common_config(root)
    write_file(root / "etc/ssh/sshd_config.d/provision-lab.conf", SSHD_CONF)
    write_file(root / "etc/apt/apt.conf.d/90provision-lab", 'Acquire::Languages "none";\n')
    write_file(root / "etc/dpkg/dpkg.cfg.d/90provision-lab-nodoc", DPKG_NODOC)
    sources = f"# provision lab: the lab's own repository\ndeb [trusted=yes] {REPO_URL} ./\n"
    write_file(root / "etc/apt/sources.list", sources)
    for leftover in (root / "etc/apt/sources.list.d").glob("*"):
        leftover.unlink()
    _systemctl(root, "enable", "systemd-networkd.service")
    daemons = sorted(enabled_units(root) - BOOT_UNITS)
    _systemctl(root, "disable", *daemons)
    write_file(
        root / "etc/provision-lab/disabled-units",
        "# Units the lab image installed but left disabled:\n" + "".join(f"{u}\n" for u in daemons),
    )
    remove_tree(GOLDEN_DIR)
    root.rename(GOLDEN_DIR)
    remove_legacy()
    seconds = time.monotonic() - start
    write_stamp("golden", golden_id(), seconds)
    progress(f"lab image: {debs} packages, repository indexed, built in {seconds:.1f}s")
    return seconds


@dataclass(slots=True)
class Images:
    """What ``ensure_images`` found or built."""

    lower: str  # overlay lowerdir for hosts: the golden image
    golden_id: str
    built: dict[str, float] = field(default_factory=dict)  # image -> build seconds


def needs_build() -> bool:
    """True when ensure_images would build something (hosts must be down first)."""
    # The repository is written by the same build as the image: one stamp covers both.
    return not (stamp_ok("golden", golden_id(), GOLDEN_DIR) and (REPO_DIR / "Packages").is_file())


def ensure_images(progress: Progress) -> Images:
    """Build the image and its repository when missing or out of date."""
    for tool, package in BUILD_TOOLS.items():
        if shutil.which(tool) is None:
            raise LabError(f"{tool} not found: install {package} (and mmdebstrap, apt-utils, util-linux, systemd)")
    built: dict[str, float] = {}
    if needs_build():
        built["golden"] = build_golden(progress)
    return Images(str(GOLDEN_DIR), golden_id(), built)
