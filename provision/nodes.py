"""Execution nodes: slices of the fleet run by ansible-runner workers on other machines.

The controller runs the domain controllers and servers itself, in the rollout's order,
then cuts the workstations (and peers) into one slice per node. Each slice travels with
ansible-runner's own remote-execution protocol, the one AWX and Receptor use: ``transmit``
packs the job (kwargs line, then the private data dir as a zip) into a stream, which
goes over SSH to ``ansible-runner worker`` on the node; the worker's events come back
on the same connection and ``process`` replays them into the run's progress, summary
and reports, as if the slice had run here.

What a slice's stream carries (its private data dir; nothing else is sent):

- ``project/``: a copy of playbooks/ (roles, modules, plugins; not its tests) and
  ``.rollout.yml``, the spec's rollout order (a dotfile: the converged probe's code digest
  leaves it out, so hosts run from a node and from the controller digest alike);
- ``inventory/hosts.yml``: the slice's hosts (every string ``!unsafe``), plus the first
  domain controller's name and address, so new computer accounts can be replicated;
- ``vars.yml`` (0600): the rollout policy and the secrets the slice's hosts need (the
  domain admin password to join; user passwords only for peers; only the slice's TLS
  keys), every string ``!unsafe``;
- ``identity`` (0600): the spec's SSH key, when it names one; ``known_hosts``: the
  controller's host keys of the slice's hosts (host keys stay checked on the node);
- ansible-runner's kwargs: the command line (``-e @<node dir>/vars.yml``, never a
  value), the ANSIBLE_* settings, forks and tags.

The stream is built in memory (ansible-runner's zip buffer lives in the run's private
folder on the controller's RAM filesystem) and never touches a disk in clear on either
side: the worker unpacks it into a 0700 folder on the node's tmpfs (``/run`` for root,
the user's runtime dir otherwise), with TMPDIR and HOME pointed there and an empty
environment apart from PATH and LANG, and removes that folder when the slice ends, the
connection drops or the worker dies. A node that dies fails only its slice: its hosts
are reported unreachable, by node, and ``--retry-failed`` reruns them on the nodes that
are left.
"""

from __future__ import annotations

import io
import json
import os
import secrets as token_source
import shlex
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ansible_runner
import paramiko

from provision import preflight as preflight_mod
from provision import results, runner, secrets, selection, wheelhouse
from provision.errors import PreflightError, ProvisionError
from provision.inventory import ansible_settings, rollout_playbook, ssh_common_args, write_unsafe
from provision.model import ExecutionNode, Host, Mode, Network, Role
from provision.plan import slice_batch, split
from provision.resources import playbooks_dir

CONTROLLER = "controller"
# Where the wheelhouse is installed on a node: per user, never on a package index.
ROOT_PREFIX = "/opt/provision-node"
USER_PREFIX = ".provision-node"  # under $HOME for other users
# SSH keepalives on the stream: a node that stops answering fails its slice in ~15 s.
ALIVE_INTERVAL, ALIVE_COUNT = 5, 3
_TEMPDIR_LOCK = threading.Lock()


@dataclass
class NodeReport(preflight_mod.HostReport):
    """A node's preflight: the host checks, and where and what it runs."""

    runtime: str = ""  # the tmpfs a slice unpacks into
    prefix: str = ""  # where ansible-runner and ansible-core are installed
    python: str = ""  # "3.11 x86_64"
    versions: dict[str, str] = field(default_factory=dict)

    @property
    def reachable(self) -> bool:
        return any(c.name == "auth" and c.status == "pass" for c in self.checks)


def _node_script() -> str:
    """One round trip per node: the facts a host's preflight reads, and the node's own."""
    return (
        preflight_mod.SYSTEM_SCRIPT
        + f"""
if [ "$(id -u)" = 0 ]; then p={ROOT_PREFIX}; r=/run; else p="$HOME/{USER_PREFIX}"; r="${{XDG_RUNTIME_DIR:-}}"; fi
echo "@@prefix"; printf '%s\\n' "$p"
echo "@@runtime"; printf '%s\\n' "$r"; [ -n "$r" ] && stat -f -c %T "$r"
echo "@@pyver"; python3 -c 'import sys, platform; print("%d.%d" % sys.version_info[:2], platform.machine())'
echo "@@runner"; "$p/current/bin/ansible-runner" --version 2>/dev/null
echo "@@core"; "$p/current/bin/ansible-playbook" --version 2>/dev/null | head -n 1
"""
    )


def check_node(
    network: Network, node: ExecutionNode, known: preflight_mod.KnownHosts, versions: bool = True
) -> NodeReport:
    """A node's preflight: like a host's, plus a RAM filesystem to unpack into and the versions."""
    report = NodeReport(node.name, node.address)
    session = preflight_mod.session(network, report, known, [_node_script()])
    if session is None:
        return report
    outputs, now = session
    facts = preflight_mod.sections(outputs[0])
    preflight_mod.judge_system(report, facts, now)
    report.prefix = (facts.get("prefix") or [""])[0]
    runtime = facts.get("runtime") or []
    report.runtime = runtime[0] if runtime else ""
    if not report.runtime:
        report.add("runtime dir", "fail", f"{network.ssh.user} has no XDG_RUNTIME_DIR (a tmpfs) to unpack slices in")
    elif (runtime[1:] or [""])[0] not in ("tmpfs", "ramfs"):
        report.add("runtime dir", "fail", f"{report.runtime} is not a RAM filesystem; a slice carries secrets")
    else:
        report.add("runtime dir", "pass", report.runtime)
    report.python = (facts.get("pyver") or [""])[0]
    if not versions:
        return report
    found_runner = (facts.get("runner") or [""])[0].strip()
    core_line = (facts.get("core") or [""])[0]
    found_core = core_line.partition("[core ")[2].partition("]")[0].strip()
    if found_runner:
        report.versions["ansible-runner"] = found_runner
    if found_core:
        report.versions["ansible-core"] = found_core
    want = wheelhouse.controller_versions()
    if not report.versions:
        report.add(
            "versions",
            "fail",
            f"ansible-runner and ansible-core are not installed in {report.prefix}; run: provision nodes setup SPEC",
        )
    elif report.versions != want:
        found = ", ".join(f"{k} {report.versions.get(k, 'missing')}" for k in sorted(want))
        wanted = ", ".join(f"{k} {v}" for k, v in sorted(want.items()))
        report.add(
            "versions",
            "fail",
            f"{found} differ from the controller's ({wanted}); run: provision nodes setup SPEC",
        )
    else:
        report.add("versions", "pass", ", ".join(f"{k} {v}" for k, v in sorted(want.items())))
    return report


def preflight(
    network: Network,
    nodes: Sequence[ExecutionNode] | None = None,
    accept_new_host_keys: bool = False,
    versions: bool = True,
) -> list[NodeReport]:
    """Check the spec's execution nodes side by side."""
    targets = list(network.rollout.execution_nodes if nodes is None else nodes)
    known = preflight_mod.KnownHosts(preflight_mod.known_hosts_path(network), accept_new_host_keys)
    if not targets:
        return []
    with ThreadPoolExecutor(max_workers=min(16, len(targets))) as pool:
        return list(pool.map(lambda n: check_node(network, n, known, versions), targets))


# --- provision nodes setup --------------------------------------------------------------


@dataclass(frozen=True)
class SetupResult:
    node: str
    versions: dict[str, str]
    seconds: float
    copied: int  # bytes of wheels sent


def setup(
    network: Network,
    reports: Sequence[NodeReport],
    progress: Callable[[str], None] = lambda _line: None,
) -> list[SetupResult]:
    """Install the controller's ansible-runner and ansible-core on each node, from its wheelhouse.

    The nodes need no package index, pip or venv: the wheels are copied over SFTP and
    unpacked by a stdlib script into ``<prefix>/<key>``; ``<prefix>/current`` then points
    at it and older installs are removed.
    """
    house = wheelhouse.build()
    want = f"{house.python} {house.machine}"
    wrong = [f"{r.host} has Python {r.python or 'unknown'}" for r in reports if r.python != want]
    if wrong:
        raise PreflightError(
            f"the wheelhouse is built from the controller's Python ({want}); {'; '.join(wrong)}: "
            "binary wheels (PyYAML, cryptography) need the same Python version and machine"
        )
    progress(f"wheelhouse {house.directory} ({len(house.wheels)} wheels)")
    with ThreadPoolExecutor(max_workers=min(8, max(1, len(reports)))) as pool:
        installed = list(pool.map(lambda r: _install(network, r, house), reports))
    for res in installed:
        progress(f"{res.node}: {res.versions} in {res.seconds:.1f} s")
    return installed


def _install(network: Network, report: NodeReport, house: wheelhouse.Wheelhouse) -> SetupResult:
    start = time.monotonic()
    client = _client(network, report.address)
    try:
        incoming = f"{report.prefix}/.incoming-{token_source.token_hex(6)}"
        _exec(client, f"umask 022 && mkdir -p {shlex.quote(report.prefix)} && mkdir {shlex.quote(incoming)}")
        sent = 0
        sftp = client.open_sftp()
        try:
            for wheel in house.wheels:
                sftp.put(str(wheel), f"{incoming}/{wheel.name}")
                sent += wheel.stat().st_size
        finally:
            sftp.close()
        argv = ["/usr/bin/python3", "-", incoming, report.prefix, house.key]
        try:
            out = _exec(client, shlex.join(argv), stdin=wheelhouse.INSTALLER.encode())
        finally:
            _exec(client, f"rm -rf {shlex.quote(incoming)}")
    finally:
        client.close()
    lines = [line for line in out.splitlines() if line.startswith("{")]
    try:
        found = json.loads(lines[-1])
    except (IndexError, ValueError):
        raise ProvisionError(f"{report.host}: the installer printed no versions: {out[-500:]}") from None
    versions = {k: str(found.get(k, "")) for k in ("ansible-core", "ansible-runner")}
    if versions != wheelhouse.controller_versions():
        raise ProvisionError(f"{report.host}: installed {versions}, not the controller's versions")
    return SetupResult(report.host, versions, time.monotonic() - start, sent)


def _client(network: Network, address: str) -> paramiko.SSHClient:
    """An SSH client to a node that preflight has just accepted (host key checked)."""
    return preflight_mod.open_client(network, address)


def _exec(client: paramiko.SSHClient, command: str, stdin: bytes = b"") -> str:
    chan_in, chan_out, chan_err = client.exec_command(command, timeout=600)
    if stdin:
        chan_in.write(stdin)
    chan_in.channel.shutdown_write()
    out = chan_out.read().decode(errors="replace")
    err = chan_err.read().decode(errors="replace")
    status = chan_out.channel.recv_exit_status()
    if status != 0:
        raise ProvisionError(f"{command.split()[0]} failed ({status}) on a node: {(err or out).strip()[-800:]}")
    return out


# --- apply through the nodes -------------------------------------------------------------


class _Combined:
    """One progress line for the controller and every slice: their counts, added up per play."""

    def __init__(self, progress: Callable[[results.Progress], None] | None) -> None:
        self.progress = progress
        self.last: dict[str, results.Progress] = {}
        self.lock = threading.Lock()

    def feed(self, source: str) -> Callable[[results.Progress], None]:
        def update(p: results.Progress) -> None:
            with self.lock:
                self.last[source] = p
                if self.progress is None:
                    return
                same = [q for q in self.last.values() if q.play == p.play]
                self.progress(
                    results.Progress(
                        p.play,
                        p.task,
                        sum(q.hosts_total for q in same),
                        sum(q.ok for q in same),
                        sum(q.failed for q in same),
                        sum(q.unreachable for q in same),
                        p.event,
                    )
                )

        return update


def apply(
    network: Network,
    options: runner.RunOptions,
    reports: Sequence[NodeReport],
    progress: Callable[[results.Progress], None] | None = None,
    transport: Transport | None = None,
) -> results.RunResult:
    """Run the controller's part of site.yml here, then the slices on the nodes, as one run.

    ``transport`` makes the command that carries a slice's stream to its worker and back
    (default: ``ssh_argv``, SSH to the node).
    """
    targets = selection.select(network, options.limit)
    usable = [r for r in reports if r.ok]
    local, slices = split(network, targets, len(usable))
    combined = _Combined(progress)
    parts: list[results.RunResult] = []
    if local:
        job = runner.prepare(network, options, local)
        part = runner.execute(network, job, options, combined.feed(CONTROLLER))
        part.nodes = dict.fromkeys(part.hosts, CONTROLLER)
        parts.append(part)
        if not part.ok or part.interrupted:
            waiting = [h.name for s in slices for h in s]
            parts.append(_not_started(waiting, options.check, "the controller's part of the run failed"))
            slices = []
    if slices and not usable:
        raise PreflightError("no execution node is usable; nothing was run on the workstations")
    if slices:
        with secrets.private_folder() as folder, _tempdir(folder):
            pairs = list(zip(usable, slices, strict=False))
            parts += _run_slices(network, options, pairs, folder, combined, transport or ssh_argv)
    result = merge(parts, options.check)
    runner.remember(network, result)
    return result


@contextmanager
def _tempdir(folder: Path) -> Iterator[None]:
    """ansible-runner's zip buffers (transmit and process) in the run's RAM folder, not /tmp."""
    with _TEMPDIR_LOCK:
        saved = tempfile.tempdir
        tempfile.tempdir = str(folder)
        try:
            yield
        finally:
            tempfile.tempdir = saved


def _not_started(hosts: Sequence[str], check: bool, why: str) -> results.RunResult:
    part = results.RunResult(status="failed", rc=1, check=check)
    for name in hosts:
        part.outcomes.append(results.TaskOutcome(name, "", "not started", "failed", why))
        part.nodes[name] = ""
    runner.count_failures(part)
    return part


def merge(parts: Sequence[results.RunResult], check: bool) -> results.RunResult:
    """The parts of one apply as one result: successful only if every part is."""
    result = results.RunResult(check=check)
    for part in parts:
        result.hosts.update(part.hosts)
        result.outcomes += part.outcomes
        result.nodes.update(part.nodes)
        result.interrupted = result.interrupted or part.interrupted
        if part.diagnostic:
            result.diagnostic = "\n  ".join(filter(None, [result.diagnostic, part.diagnostic]))
    if parts and all(p.ok for p in parts):
        result.status, result.rc = "successful", 0
    else:
        failed = [p for p in parts if not p.ok]
        result.status = "canceled" if result.interrupted else "failed"
        result.rc = next((p.rc for p in failed if p.rc), 1)
    return result


@dataclass
class Slice:
    report: NodeReport
    hosts: list[Host]
    local: Path  # the slice's folder on the controller's RAM filesystem
    remote: str  # its folder on the node's
    process: subprocess.Popen[bytes] | None = None
    stderr: bytes = b""


def _run_slices(
    network: Network,
    options: runner.RunOptions,
    pairs: list[tuple[NodeReport, list[Host]]],
    folder: Path,
    combined: _Combined,
    transport: Transport,
) -> list[results.RunResult]:
    todo: list[tuple[Slice, bytes, runner.Job]] = []
    sliced = sum(len(hosts) for _, hosts in pairs)
    for report, hosts in pairs:
        token = token_source.token_hex(8)
        item = Slice(report, hosts, folder / report.host, f"{report.runtime}/provision-node/slice-{token}")
        job = runner.prepare(network, options, hosts)
        # The slices run side by side: together they take rollout.batch hosts at once, no more.
        job.variables["provision_rollout_batch"] = slice_batch(network.rollout.batch, len(hosts), sliced)
        todo.append((item, _pack(network, options, item, job), job))
    parts: list[results.RunResult | None] = [None] * len(todo)
    cancelled = threading.Event()

    def work(i: int) -> None:
        item, stream, job = todo[i]
        feed = combined.feed(item.report.host)
        parts[i] = _stream(network, options, item, stream, job, feed, cancelled, transport)

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(len(todo))]
    for t in threads:
        t.start()
    try:
        for t in threads:
            while t.is_alive():
                t.join(0.2)
    except KeyboardInterrupt:
        cancelled.set()
        for item, _stream_bytes, _job in todo:
            if item.process is not None and item.process.poll() is None:
                item.process.kill()
        for t in threads:
            t.join(30)
    out = [r for r in parts if r is not None]
    if cancelled.is_set():
        for r in out:
            r.interrupted = True
    return out


def _pack(network: Network, options: runner.RunOptions, item: Slice, job: runner.Job) -> bytes:
    """The slice's private data dir and ansible-runner kwargs, as transmit's stream (in memory)."""
    job_dir = item.local / "job"
    project = copy_project(job_dir / "project")
    playbook = project / ".rollout.yml"
    if job.playbook == "site.yml":
        # Imports relative to .rollout.yml, which sits in the project beside the plays.
        plays = rollout_playbook(network, Path())
        playbook.write_text(json.dumps(plays))
    else:
        playbook = project / job.playbook
    remote = item.remote
    (job_dir / "inventory").mkdir()
    inventory = _slice_inventory(network, job, remote)
    write_unsafe(job_dir / "inventory" / "hosts.yml", inventory, mode=0o600)
    write_unsafe(job_dir / "vars.yml", job.variables, mode=0o600)
    cmdline = [*job.cmdline, "-e", f"@{remote}/vars.yml"]
    if job.extra_vars:
        (job_dir / "extra-vars.json").write_text(json.dumps(job.extra_vars))
        cmdline += ["-e", f"@{remote}/extra-vars.json"]
    if network.ssh.identity_file:
        shutil.copyfile(network.ssh.identity_file, job_dir / "identity")
        (job_dir / "identity").chmod(0o600)
    _write_known_hosts(network, job, job_dir / "known_hosts")
    envvars = ansible_settings(network, job.forks, Path(f"{remote}/facts"))
    envvars.update(
        {
            "PATH": f"{item.report.prefix}/current/bin:/usr/bin:/bin",
            "ANSIBLE_LOCAL_TEMP": f"{remote}/tmp",
            "ANSIBLE_HOME": f"{remote}/home/.ansible",
            "ANSIBLE_SSH_CONTROL_PATH_DIR": f"{remote}/cp",
        }
    )
    buffer = _Buffer()
    ansible_runner.run(
        streamer="transmit",
        _output=buffer,
        private_data_dir=str(job_dir),
        playbook=str(playbook),
        inventory=str(job_dir / "inventory" / "hosts.yml"),
        envvars=envvars,
        cmdline=shlex.join(cmdline),
        tags=",".join(job.tags) or None,
        forks=job.forks,
        suppress_env_files=True,
        quiet=True,
        cancel_callback=lambda: False,  # else ansible-runner takes over SIGINT for good
    )
    shutil.rmtree(job_dir, ignore_errors=True)  # the stream is all that is left of it
    return buffer.getvalue()


def copy_project(dest: Path) -> Path:
    """playbooks/ without its tests, caches and dotfiles: what the roles run, and exactly what the
    converged probe digests (its SKIP_DIRS), so a host run from a node is not dirty on the controller."""
    return Path(shutil.copytree(playbooks_dir(), dest, ignore=shutil.ignore_patterns("tests", "__pycache__", ".*")))


class _Buffer(io.BytesIO):
    """The stream, in memory; transmit asks its output for a name (to tell it from stdout)."""

    name = "<slice stream>"


def _slice_inventory(network: Network, job: runner.Job, remote: str) -> dict[str, Any]:
    """The slice's inventory with the node's paths, and the first DC to delegate replication to."""
    out: dict[str, Any] = json.loads(json.dumps(job.inventory))
    variables = out["all"]["vars"]
    if network.ssh.identity_file:
        variables["ansible_ssh_private_key_file"] = f"{remote}/identity"
    variables["ansible_ssh_common_args"] = ssh_common_args(f"{remote}/known_hosts")
    first = _first_dc(network)
    if first is not None and first not in job.targets:
        # Ungrouped: no play targets it; roles delegate the replication of new accounts to it.
        out["all"]["hosts"] = {first.name: {"ansible_host": first.address}}
    return out


def _first_dc(network: Network) -> Host | None:
    if network.mode is not Mode.DOMAIN:
        return None
    return next((h for h in network.hosts if h.role is Role.DOMAIN_CONTROLLER), None)


def _write_known_hosts(network: Network, job: runner.Job, path: Path) -> None:
    """The controller's keys of the slice's hosts (and the first DC): host keys stay checked."""
    known = paramiko.HostKeys()
    source = preflight_mod.known_hosts_path(network)
    if source.exists():
        known.load(str(source))
    addresses = {h.address for h in job.targets}
    first = _first_dc(network)
    if first is not None:
        addresses.add(first.address)
    lines = []
    for address in sorted(addresses):
        label = preflight_mod.host_label(address, network.ssh.port)
        for ktype, key in (known.lookup(label) or {}).items():
            lines.append(f"{label} {ktype} {key.get_base64()}\n")
    path.write_text("".join(lines))
    path.chmod(0o600)


# The command line that carries a slice's stream to its worker (stdin) and the events back (stdout).
Transport = Callable[[Network, "Slice"], list[str]]


def remote_command(item: Slice) -> str:
    """The worker, in an empty environment, in a 0700 folder on the node's tmpfs removed at the end."""
    d = shlex.quote(item.remote)
    base = shlex.quote(item.remote.rsplit("/", 1)[0])
    runner_bin = shlex.quote(f"{item.report.prefix}/current/bin/ansible-runner")
    path = shlex.quote(f"{item.report.prefix}/current/bin:/usr/bin:/bin")
    return (
        f"umask 077; mkdir -p {base} && mkdir {d} && mkdir {d}/tmp {d}/home || exit 97; "
        f"trap 'rm -rf {d}' EXIT; trap 'exit 129' HUP; trap 'exit 130' INT; trap 'exit 143' TERM; "
        f"env -i PATH={path} LANG=C.UTF-8 HOME={d}/home TMPDIR={d}/tmp "
        f"{runner_bin} worker --private-data-dir {d}"
    )


def ssh_argv(network: Network, item: Slice) -> list[str]:
    ssh = network.ssh
    argv = [
        "ssh",
        "-T",
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        f"UserKnownHostsFile={preflight_mod.known_hosts_path(network)}",
        "-o",
        f"ServerAliveInterval={ALIVE_INTERVAL}",
        "-o",
        f"ServerAliveCountMax={ALIVE_COUNT}",
        "-o",
        "ConnectTimeout=15",
        "-p",
        str(ssh.port),
    ]
    if ssh.identity_file:
        argv += ["-o", "IdentitiesOnly=yes", "-i", ssh.identity_file]
    return [*argv, "-l", ssh.user, "--", item.report.address, remote_command(item)]


def _stream(
    network: Network,
    options: runner.RunOptions,
    item: Slice,
    stream: bytes,
    job: runner.Job,
    progress: Callable[[results.Progress], None],
    cancelled: threading.Event,
    transport: Transport,
) -> results.RunResult:
    """Send one slice to its node's worker and replay what comes back."""
    result = results.RunResult(check=options.check)
    events = runner.Events(result, job.sizes, progress)
    node = item.report.host
    process_dir = item.local / "process"
    process_dir.mkdir(parents=True)
    statuses: list[dict[str, Any]] = []
    item.process = subprocess.Popen(  # an argument list; the command holds no secret
        transport(network, item),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        # ssh gets the allow-listed environment: the spec's {env:} secrets stay in this process.
        env={**secrets.allowed_env(), "PATH": os.environ.get("PATH", os.defpath)},
    )
    proc = item.process
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    stderr_chunks: list[bytes] = []

    def feed() -> None:
        try:
            proc.stdin.write(stream)  # type: ignore[union-attr]
            proc.stdin.close()  # type: ignore[union-attr]
        except OSError:
            pass  # the node went away; the reader reports it

    def drain() -> None:
        stderr_chunks.append(proc.stderr.read()[-4000:])  # type: ignore[union-attr]

    writer = threading.Thread(target=feed, daemon=True)
    reader = threading.Thread(target=drain, daemon=True)
    writer.start()
    reader.start()
    processor = ansible_runner.run(
        streamer="process",
        _input=proc.stdout,
        private_data_dir=str(process_dir),
        event_handler=events,
        status_handler=lambda data, runner_config: statuses.append(data),
        quiet=True,
    )
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    writer.join(5)
    reader.join(5)
    item.stderr = b"".join(stderr_chunks)
    result.status = processor.status
    result.rc = processor.rc
    if result.rc is None and statuses:
        result.rc = statuses[-1].get("rc")
    names = [h.name for h in item.hosts]
    if events.stats is not None and processor.status in ("successful", "failed"):
        for name in names:
            result.hosts[name] = runner.host_stats(events.stats, name)
        if result.rc is None:
            result.rc = 0 if processor.status == "successful" else 2
    else:
        # No final stats: the node or its stream died. The whole slice is unreachable, by node.
        why = next((s.get("job_explanation") for s in reversed(statuses) if s.get("job_explanation")), "")
        ssh_said = item.stderr.decode(errors="replace").strip().splitlines()[-1:] or [f"ssh exit {proc.returncode}"]
        message = (
            f"execution node {node} ({item.report.address}) was lost before the slice ended: "
            f"{ssh_said[0]}; {why}".strip("; ")
        )
        result.status = "canceled" if cancelled.is_set() else "failed"
        result.rc = result.rc or 1
        result.interrupted = cancelled.is_set()
        for name in names:
            result.hosts[name] = results.HostStats(unreachable=1)
            result.outcomes.append(results.TaskOutcome(name, "", f"execution node {node}", "unreachable", message))
    runner.count_failures(result)
    result.nodes = dict.fromkeys(names, node)
    if options.keep_artifacts is not None:
        artifacts = process_dir / "artifacts"
        if artifacts.is_dir():
            shutil.copytree(artifacts, options.keep_artifacts / node, dirs_exist_ok=True)
            result.artifacts = str(options.keep_artifacts)
    return result
