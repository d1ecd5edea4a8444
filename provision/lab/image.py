"""The cached base and golden images, built once under /var/cache/provision/lab.

``base`` is a debootstrapped bookworm minbase with SSH, Python and systemd;
``golden`` is base plus every lab package, installed from the local
repository, and is the read-only lower layer of every host's overlay root.
Each image carries an id derived from its package lists so a changed list
rebuilds it, and is built in a scratch directory then renamed into place so
an interrupted build never leaves a half image behind.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from provision.errors import LabError

from . import cgroups, mounts
from .packages import BASE_PACKAGES, LAB_PACKAGES, SUITE
from .paths import BASE_DIR, BUILD_CGROUP, BUILD_DIR, GOLDEN_DIR, LOG_DIR, REPO_DIR, REPO_URL
from .sources import primary_mirror
from .util import CHROOT_ENV, Progress, remove_tree, run, write_file

FORMAT = 2  # bump when the way images are built changes
POOL = REPO_DIR / "pool"
APT_OPTS = (
    "-o", "Dpkg::Options::=--force-unsafe-io",
    "-o", "Dpkg::Options::=--force-confdef",
    "-o", "Dpkg::Options::=--force-confold",
    "-o", "Dpkg::Use-Pty=0",
    "-o", "APT::Install-Recommends=false",
)
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
REPO_IN_IMAGE = "var/tmp/provision-lab-repo"
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


def base_id() -> str:
    return _digest("base", FORMAT, SUITE, sorted(BASE_PACKAGES))


def repo_id() -> str:
    return _digest("repo", FORMAT, base_id(), sorted(LAB_PACKAGES))


def golden_id() -> str:
    return _digest("golden", FORMAT, repo_id())


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


def chroot(root: Path, argv: list[str], log: Path, timeout: float = 1800) -> None:
    """Run a command inside an image with a private /proc.

    ``unshare`` gives it its own mount and pid namespaces, so the /proc mount
    and any daemon a maintainer script forks die with it, even on kill -9.
    """
    run(
        ["unshare", "--mount", "--pid", "--fork", f"--mount-proc={root}/proc", "chroot", str(root), *argv],
        env=CHROOT_ENV, log=log, timeout=timeout, cgroup=BUILD_CGROUP,
    )


def upgradable(root: Path) -> list[str]:
    """Packages a dist-upgrade would touch, so one apt run can do both jobs.

    One dpkg run instead of two saves a dependency resolution and a round of
    triggers (ldconfig, systemd, ca-certificates) on a slow machine.
    """
    proc = run(
        ["unshare", "--mount", "--pid", "--fork", f"--mount-proc={root}/proc", "chroot", str(root),
         "apt-get", "-s", *APT_OPTS, "dist-upgrade"],
        env=CHROOT_ENV, cgroup=BUILD_CGROUP,
    )
    return [line.split()[1] for line in proc.stdout.splitlines() if line.startswith("Inst ")]


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


def build_base(progress: Progress) -> float:
    """debootstrap minbase + BASE_PACKAGES; returns seconds taken."""
    start = time.monotonic()
    clean_build_dir()
    drop_stamp("base")
    log = LOG_DIR / "base.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("")
    tmp = BUILD_DIR / "base"
    mirror = primary_mirror(SUITE)
    progress(f"base image: debootstrap {SUITE} from the host's mirror (log: {log})")
    argv = ["debootstrap", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}", "--components=main"]
    if mirror.signed_by and Path(mirror.signed_by).is_file():
        argv.append(f"--keyring={mirror.signed_by}")
    run([*argv, SUITE, str(tmp), mirror.uri], log=log, timeout=1800, cgroup=BUILD_CGROUP)
    move_debs(tmp / "var/cache/apt/archives")
    _common_config(tmp)
    write_file(tmp / "etc/ssh/sshd_config.d/provision-lab.conf", SSHD_CONF)
    write_file(tmp / "etc/apt/sources.list", "# provision lab: see sources.list.d\n")
    write_file(tmp / "etc/apt/apt.conf.d/90provision-lab", 'Acquire::Languages "none";\n')
    write_file(tmp / "etc/dpkg/dpkg.cfg.d/90provision-lab-nodoc", DPKG_NODOC)
    _systemctl(tmp, "enable", "systemd-networkd.service")
    # Timers that would run apt behind a rollout's back, or poke at disks.
    _systemctl(tmp, "disable", "apt-daily.timer", "apt-daily-upgrade.timer", "e2scrub_all.timer", "fstrim.timer")
    remove_tree(BASE_DIR)
    tmp.rename(BASE_DIR)
    seconds = time.monotonic() - start
    write_stamp("base", base_id(), seconds)
    progress(f"base image: built in {seconds:.1f}s")
    return seconds


def build_golden(progress: Progress) -> float:
    """Install LAB_PACKAGES from the local repo on top of base, daemons kept down.

    Golden is only the overlay layer above base (hosts mount
    ``lowerdir=golden:base``), so building it copies nothing and it costs
    only the disk space of what the packages add.
    """
    start = time.monotonic()
    clean_build_dir()
    drop_stamp("golden")
    log = LOG_DIR / "golden.log"
    log.write_text("")
    tmp = BUILD_DIR / "golden"
    layer, root = tmp / "layer", tmp / "root"
    progress(f"golden image: installing {len(LAB_PACKAGES)} packages from the local repository (log: {log})")
    mounts.mount_overlay(str(BASE_DIR), layer, tmp / "work", root)
    try:
        repo_mount = root / REPO_IN_IMAGE
        repo_mount.mkdir(parents=True)
        run(["mount", "--bind", "-o", "ro", str(REPO_DIR), str(repo_mount)])
        write_file(root / "etc/apt/sources.list", f"deb [trusted=yes] file:/{REPO_IN_IMAGE} ./\n")
        policy = "#!/bin/sh\n# provision lab build: start no daemon\nexit 101\n"
        write_file(root / "usr/sbin/policy-rc.d", policy, 0o755)
        write_file(root / "etc/dpkg/dpkg.cfg.d/90provision-lab-nodoc", DPKG_NODOC)
        before = enabled_units(root)
        # printer-driver-cups-pdf's postinst polls ``lpstat`` for a cupsd that
        # policy-rc.d keeps down, sleeping 10 s; a stub answers it at once.
        chroot(root, ["dpkg-divert", "--local", "--rename", "--divert", "/usr/bin/lpstat.provision-lab",
                      "--add", "/usr/bin/lpstat"], log)
        write_file(root / "usr/bin/lpstat", "#!/bin/sh\necho scheduler is running\n", 0o755)
        chroot(root, ["apt-get", "update"], log)
        chroot(root, ["apt-get", "-y", *APT_OPTS, "install", *LAB_PACKAGES, *upgradable(root)], log)
        (root / "usr/bin/lpstat").unlink()
        chroot(root, ["dpkg-divert", "--local", "--rename", "--remove", "/usr/bin/lpstat"], log)
        # A fresh machine runs none of these daemons; the playbooks enable and
        # start what each role needs.  Keeping them off makes ten hosts boot fast.
        new_units = sorted(enabled_units(root) - before)
        _systemctl(root, "disable", *new_units)
        write_file(
            root / "etc/provision-lab/disabled-units",
            "# Units the lab's golden image installed but left disabled:\n" + "".join(f"{u}\n" for u in new_units),
        )
        chroot(root, ["apt-get", "clean"], log)
        (root / "usr/sbin/policy-rc.d").unlink()
        mounts.unmount(str(repo_mount))
        repo_mount.rmdir()
        _common_config(root)
        sources = f"# provision lab: the lab's own repository\ndeb [trusted=yes] {REPO_URL} ./\n"
        write_file(root / "etc/apt/sources.list", sources)
        for leftover in (root / "etc/apt/sources.list.d").glob("*"):
            leftover.unlink()
    finally:
        mounts.unmount_below(tmp)
    remove_tree(GOLDEN_DIR)
    layer.rename(GOLDEN_DIR)
    remove_tree(tmp)
    seconds = time.monotonic() - start
    write_stamp("golden", golden_id(), seconds)
    progress(f"golden image: built in {seconds:.1f}s")
    return seconds


@dataclass(slots=True)
class Images:
    """What ``ensure_images`` found or built."""

    lower: str  # overlay lowerdir for hosts: the golden layer above base
    golden_id: str
    built: dict[str, float] = field(default_factory=dict)  # image -> build seconds


def needs_build() -> bool:
    """True when ensure_images would build something (hosts must be down first)."""
    return not (
        stamp_ok("base", base_id(), BASE_DIR)
        and stamp_ok("repo", repo_id(), REPO_DIR / "Packages")
        and stamp_ok("golden", golden_id(), GOLDEN_DIR)
    )


def ensure_images(progress: Progress) -> Images:
    """Build whatever of base, repo and golden is missing or out of date."""
    from . import repo  # repo imports this module's helpers

    for tool in ("debootstrap", "apt-ftparchive", "unshare", "chroot", "systemctl"):
        if shutil.which(tool) is None:
            raise LabError(f"{tool} not found: install debootstrap, apt-utils, util-linux and systemd on this machine")
    built: dict[str, float] = {}
    if not stamp_ok("base", base_id(), BASE_DIR):
        built["base"] = build_base(progress)
    if not stamp_ok("repo", repo_id(), REPO_DIR / "Packages"):
        built["repo"] = repo.build_repo(progress)
    if not stamp_ok("golden", golden_id(), GOLDEN_DIR):
        built["golden"] = build_golden(progress)
    return Images(f"{GOLDEN_DIR}:{BASE_DIR}", golden_id(), built)
