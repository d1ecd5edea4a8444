"""``provision lab``: up, status, down and ssh for the local container lab.

Only argument parsing and output live here; the work is in ``provision.lab``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from provision.errors import ProvisionError
from provision.lab import LabStatus


class _LabGroup(click.Group):
    """Reports library errors without a traceback when run on its own.

    Under ``provision`` the top-level group does the same; handling it here
    too keeps ``python -m provision.cli_lab`` usable.
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ProvisionError as exc:
            click.echo(f"provision lab: {exc}", err=True)
            ctx.exit(exc.exit_code)


def _progress(message: str) -> None:
    click.echo(f"lab: {message}", err=True)


def _seconds(value: float | None) -> str:
    return f"{value:.1f}s" if value is not None else "-"


def _mib(value: int | None) -> str:
    return f"{value / (1 << 20):.0f} MiB" if value is not None else "-"


def _table(status: LabStatus) -> str:
    header = ("HOST", "ADDRESS", "STATE", "BOOT", "MEMORY")
    rows = [(h.name, h.address, h.state, _seconds(h.boot_seconds), _mib(h.memory)) for h in status.hosts]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in [header, *rows]]
    running = [h.memory for h in status.hosts if h.memory is not None]
    if running:
        lines.append(
            f"memory: {_mib(sum(running))} for {len(running)} running host(s), "
            f"{_mib(sum(running) // len(running))} each on average (PSS)"
        )
    return "\n".join(lines)


def _summary(status: LabStatus) -> str:
    if status.fallback:
        runner = "FALLBACK runner in use: unshare + chroot running sshd only (no systemd in hosts)"
        if status.fallback_reason:
            runner += f"\n  why: {status.fallback_reason.splitlines()[0]}"
        else:
            runner += "\n  why: forced by PROVISION_LAB_RUNNER=unshare"
    else:
        runner = "runner: systemd-nspawn"
    repo = f"repository: {status.repo_url} ({'serving' if status.repo_running else 'not running'})"
    bridge = f"bridge: provlab0 {'up' if status.bridge else 'absent'}; cgroups: {status.cgroup_layout}"
    return "\n".join([runner, repo, bridge])


@click.group(
    cls=_LabGroup,
    epilog="\b\nExamples:\n  provision lab up inventories/lab-domain.yml\n"
    "  provision lab status\n  provision lab down --destroy",
)
def lab() -> None:
    """A local lab of Debian 12 containers (systemd-nspawn) to run specs against.

    \b
    Needs root. Images are built once under /var/cache/provision/lab; hosts live
    under /var/lib/provision/lab. Log in with the key /var/lib/provision/lab/id_ed25519
    and /var/lib/provision/lab/known_hosts (strict host key checking works).
    """


@lab.command(
    epilog="\b\nExamples:\n  provision lab up inventories/lab-workgroup.yml\n"
    "  provision lab up inventories/lab-nodes.yml --add"
)
@click.argument("spec_path", metavar="SPEC", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--timeout", default=120.0, show_default=True, help="Seconds to wait for every host's sshd.")
@click.option("--add", is_flag=True, help="Keep the lab's other running hosts (e.g. of another spec) beside these.")
def up(spec_path: Path, timeout: float, add: bool) -> None:
    """Build (once) and boot one container per host and execution node of SPEC; wait for SSH."""
    from provision import lab as lablib
    from provision.lab.core import HostLike
    from provision.spec import load_network

    network = load_network(spec_path)
    # Execution nodes are lab hosts too: they need only sshd and python3, which every host has.
    hosts: list[HostLike] = [*network.hosts, *network.rollout.execution_nodes]
    status = lablib.up(hosts, _progress, spec=str(spec_path.resolve()), ssh_timeout=timeout, add=add)
    for image, seconds in status.built.items():
        _progress(f"built {image} in {seconds:.1f}s")
    click.echo(_table(status))
    if status.fallback:
        click.echo(_summary(status).splitlines()[0])


@lab.command(epilog="\b\nExamples:\n  provision lab status")
def status() -> None:
    """Show the lab's hosts, runner, repository and bridge."""
    from provision import lab as lablib

    current = lablib.status()
    if current.hosts:
        click.echo(_table(current))
    else:
        click.echo("no lab hosts")
    click.echo(_summary(current))


@lab.command(epilog="\b\nExamples:\n  provision lab down\n  provision lab down --destroy")
@click.option("--destroy", is_flag=True, help="Also remove host directories, the bridge and the repository server.")
def down(destroy: bool) -> None:
    """Power every host off (cached images stay)."""
    from provision import lab as lablib

    killed = lablib.down(destroy=destroy, progress=_progress)
    if killed:
        click.echo(f"killed (did not power off in time): {', '.join(killed)}")
    click.echo("lab destroyed" if destroy else "lab stopped")


@lab.command(epilog="\b\nExamples:\n  provision lab wipe dc1 dc2 fs1\n  provision lab up lab-domain.yml")
@click.argument("hosts", nargs=-1, required=True)
def wipe(hosts: tuple[str, ...]) -> None:
    """Power HOSTS off and delete their disks and host keys, as if the machines had been replaced:
    'provision lab up SPEC' then boots them fresh (for restore drills)."""
    from provision import lab as lablib

    killed = lablib.wipe(list(hosts), progress=_progress)
    if killed:
        click.echo(f"killed (did not power off in time): {', '.join(killed)}")
    click.echo(f"wiped {', '.join(hosts)}")


@lab.command(
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
    epilog="\b\nExamples:\n  provision lab ssh dc1\n  provision lab ssh ws1 wbinfo -u",
)
@click.argument("host")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def ssh(host: str, command: tuple[str, ...]) -> None:
    """Log into HOST as root, or run COMMAND there and exit with its status."""
    from provision import lab as lablib

    argv = lablib.ssh_argv(host, command)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvp(argv[0], argv)  # noqa: S606 -- an argument list, replacing this process with ssh


if __name__ == "__main__":
    lab()
