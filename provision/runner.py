"""Drive playbooks through ansible-runner and turn its event stream into results.

ansible-runner gets a fresh private data dir per run (removed afterwards), the
inventory as a YAML file whose every string is ``!unsafe`` (Ansible never
evaluates spec data), ``suppress_env_files=True``, an allow-listed environment
and secrets only through a file on a RAM filesystem (see ``secrets``).
Success is ``status == "successful" and rc == 0``;
results come from events and stats, never from scraped stdout.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import ansible_runner
import yaml

from provision import certificates, secrets, selection
from provision.errors import ProvisionError
from provision.inventory import (
    ansible_settings,
    build_inventory,
    default_forks,
    rollout_playbook,
    write_unsafe,
)
from provision.model import Host, Network, Role
from provision.paths import fact_cache_dir, state_dir, tls_dir
from provision.resources import playbooks_dir
from provision.results import HostStats, Progress, RunResult, TaskOutcome


@dataclass
class RunOptions:
    playbook: str = "site.yml"
    check: bool = False
    diff: bool = False
    limit: Collection[str] = ()
    tags: Collection[str] = ()
    skip_tags: Collection[str] = ()
    forks: int | None = None
    keep_artifacts: Path | None = None
    extra_vars: dict[str, Any] = field(default_factory=dict)
    with_secrets: bool = True
    # A dry run for untrusted specs: resolve no secret reference, send none; the roles
    # report the tasks that need one as unknown (provision apply --check --no-secrets).
    no_secrets: bool = False
    # Run every role in full instead of skipping those the probe finds converged.
    full: bool = False
    # Spec-derived variables of a playbook (e.g. the backup plan): sent like the secrets, in a
    # 0600 file on a RAM filesystem and every string !unsafe, never as -e on a command line.
    variables: dict[str, Any] = field(default_factory=dict)


def last_failed(network: Network) -> list[str]:
    path = state_dir(network) / "last-run.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        raise ProvisionError(f"no previous run of '{network.name}' is recorded; nothing to retry") from None
    return list(data.get("failed_hosts", []))


def remember(network: Network, result: RunResult) -> None:
    """Record the run's failed hosts for --retry-failed (dry runs are not recorded)."""
    if result.check:
        return
    folder = state_dir(network)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "last-run.json").write_text(
        json.dumps({"status": result.status, "rc": result.rc, "failed_hosts": result.failed_hosts()})
    )


# Roles name the steps a --no-secrets dry run cannot judge "Unknown without secrets: ...".
UNKNOWN_TASK_PREFIX = "Unknown without secrets"


class Events:
    """Folds ansible-runner's event stream into a RunResult and progress updates."""

    def __init__(
        self, result: RunResult, group_sizes: dict[str, int], progress: Callable[[Progress], None] | None
    ) -> None:
        self.result = result
        # Each play's bar counts the play's own hosts: its pattern names role groups (or all).
        self.group_sizes = group_sizes
        self.total = group_sizes.get("all", 0)
        self.progress = progress
        self.play = ""
        self.task = ""
        self.play_ok: set[str] = set()
        self.play_failed: set[str] = set()
        self.play_unreachable: set[str] = set()
        self.stats: dict[str, Any] | None = None  # the playbook_on_stats event's, once it came

    def __call__(self, event: dict[str, Any]) -> bool:
        kind = event.get("event", "")
        data = event.get("event_data", {})
        if kind == "playbook_on_play_start":
            self.play = data.get("name") or data.get("play", "")
            # A role group, a stage's groups ("file_server:mail_server"), or all.
            pattern = str(data.get("play_pattern") or data.get("pattern") or "all")
            groups = pattern.split(":")
            if all(g in self.group_sizes for g in groups):
                self.total = sum(self.group_sizes[g] for g in groups)
            else:
                self.total = self.group_sizes.get("all", 0)
            self.play_ok, self.play_failed, self.play_unreachable = set(), set(), set()
        elif kind == "playbook_on_task_start":
            self.task = data.get("name") or data.get("task", "")
        elif kind.startswith("runner_on_") and "host" in data:
            self._host_event(kind, data)
        else:
            if kind == "playbook_on_stats":
                self.stats = data
            return True
        if self.progress is not None:
            self.progress(
                Progress(
                    self.play,
                    self.task,
                    self.total,
                    len(self.play_ok - self.play_failed),
                    len(self.play_failed),
                    len(self.play_unreachable),
                    kind,
                )
            )
        return True  # keep the event (only metadata; no_log tasks are censored by Ansible)

    def _host_event(self, kind: str, data: dict[str, Any]) -> None:
        host = data["host"]
        task = data.get("task") or self.task
        res = data.get("res") or {}
        if kind == "runner_on_ok":
            self.play_ok.add(host)
            if str(task).startswith(UNKNOWN_TASK_PREFIX):
                self.result.outcomes.append(TaskOutcome(host, self.play, task, "unknown", _message(res)))
            elif res.get("changed"):
                self.result.outcomes.append(TaskOutcome(host, self.play, task, "changed", diff=_diff_text(res)))
        elif kind == "runner_on_failed" and not data.get("ignore_errors"):
            self.play_failed.add(host)
            self.result.outcomes.append(TaskOutcome(host, self.play, task, "failed", _message(res)))
        elif kind == "runner_on_unreachable":
            self.play_unreachable.add(host)
            self.result.outcomes.append(TaskOutcome(host, self.play, task, "unreachable", _message(res)))
        elif kind in ("runner_on_skipped",):
            self.play_ok.add(host)


# What Ansible says of a loop task when any item failed.
LOOP_FAILED = "One or more items failed"


def _message(res: dict[str, Any]) -> str:
    if res.get("censored"):
        return str(res["censored"])
    msg = res.get("msg") or res.get("stderr") or res.get("reason") or ""
    if res.get("results") and (not msg or msg == LOOP_FAILED):
        # A loop: what each failed item said, not Ansible's summary of them.
        msgs = [_message(r) for r in res["results"] if isinstance(r, dict) and r.get("failed")]
        msg = "; ".join(m for m in msgs if m) or msg
    return str(msg).strip()[:2000]


def _diff_text(res: dict[str, Any]) -> str:
    diffs = res.get("diff")
    if not diffs:
        return ""
    if isinstance(diffs, dict):
        diffs = [diffs]
    parts = []
    for d in diffs:
        if isinstance(d, dict):
            if d.get("prepared"):
                parts.append(str(d["prepared"]))
            elif "before" in d or "after" in d:
                parts.append(
                    f"--- {d.get('before_header', 'before')}\n+++ {d.get('after_header', 'after')}\n"
                    f"{d.get('before', '')!s}\n=>\n{d.get('after', '')!s}"
                )
    return "\n".join(parts)[:4000]


@contextmanager
def _sigint_cancels() -> Iterator[threading.Event]:
    """Ctrl-C (or SIGTERM) asks ansible-runner to cancel instead of tearing the process down mid-write."""
    flag = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        flag.set()

    # SIGTERM (systemd stopping a unit, a CI job cancelled) cancels the same way, so the
    # run ends cleanly and the run lock is released.
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield flag
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def ansible_playbook() -> str:
    """ansible-playbook from PATH, else the one installed beside this interpreter (a venv)."""
    found = shutil.which("ansible-playbook")
    if found:
        return found
    beside = Path(sys.executable).parent / "ansible-playbook"
    if beside.exists():
        return str(beside)
    raise ProvisionError("ansible-playbook not found; install ansible-core")


def _tail(runner: Any, lines: int = 8) -> str:
    """Last lines ansible printed, only to explain a run that never reached a host."""
    try:
        text = runner.stdout.read()
    except (AttributeError, OSError, ValueError):
        return ""
    return "\n  ".join(text.strip().splitlines()[-lines:])


@dataclass
class Job:
    """One ansible-playbook run, prepared: what the controller or an execution node runs.

    ``variables`` (the rollout policy and the secrets) go to Ansible only as a file of
    ``!unsafe`` strings on a RAM filesystem, never on a command line.
    """

    targets: list[Host]
    inventory: dict[str, Any]
    cmdline: list[str]
    tags: list[str]
    forks: int
    playbook: str  # a playbook of playbooks/; site.yml becomes the spec's rollout order
    variables: dict[str, Any]
    sizes: dict[str, int]  # hosts per role group, and all: the progress bars' totals
    extra_vars: dict[str, Any] = field(default_factory=dict)  # the operator's -e, trusted


def needs_user_passwords(playbook: str, targets: Collection[Host]) -> bool:
    """Only the DCs (the directory) and peers (their own accounts) set user passwords."""
    return playbook != "site.yml" or any(h.role in (Role.DOMAIN_CONTROLLER, Role.PEER) for h in targets)


def prepare(network: Network, options: RunOptions, targets: list[Host] | None = None) -> Job:
    """The job for ``targets`` (default: the spec's hosts or the --limit ones); no host is contacted."""
    if targets is None:
        targets = selection.select(network, options.limit)
    if options.no_secrets and not options.check:
        raise ProvisionError("--no-secrets is a dry run: it needs --check")
    with_secrets = options.with_secrets and not options.no_secrets
    # The services' certificates: a dry run works on a copy of the network CA, so it never
    # makes or replaces one; without secrets no key is read.
    tls = certificates.material(network, targets, tls_dir(network), keys=with_secrets, scratch=options.check)
    # A role with no host in this run counts 0, not the whole run.
    sizes = {"all": len(targets), **{r.value: 0 for r in Role}}
    for h in targets:
        sizes[h.role.value] = sizes.get(h.role.value, 0) + 1

    cmdline: list[str] = []
    if options.check:
        cmdline.append("--check")
    if options.diff:
        cmdline.append("--diff")
    if options.skip_tags:
        cmdline += ["--skip-tags", ",".join(options.skip_tags)]

    users = needs_user_passwords(options.playbook, targets)
    secret_values = secrets.secret_vars(network, users=users) if with_secrets else {}
    if with_secrets and tls.keys:
        secret_values["provision_tls_secret_keys"] = tls.keys
    # serial and max_fail_percentage are templated before any host is chosen, so Ansible
    # only sees extra vars there: pass the rollout policy as extra vars too.
    variables: dict[str, Any] = {
        "provision_rollout_batch": network.rollout.batch,
        "provision_rollout_max_fail_percent": network.rollout.max_fail_percent,
    }
    if len(targets) < len(network.hosts):
        # The inventory holds only some hosts: roles must not take the absent ones for
        # hosts that left the spec (domain_directory would prune their accounts).
        variables["provision_inventory_partial"] = True
    if options.full:
        variables["provision_full"] = True
    if options.no_secrets:
        variables["provision_no_secrets"] = True
    return Job(
        targets=list(targets),
        inventory=build_inventory(network, targets, tls),
        cmdline=cmdline,
        tags=list(options.tags),
        forks=options.forks or default_forks(),
        playbook=options.playbook,
        variables={**variables, **options.variables, **secret_values},
        sizes=sizes,
        extra_vars=dict(options.extra_vars),
    )


def host_stats(stats: dict[str, Any], host: str) -> HostStats:
    """One host's line of a playbook_on_stats event (or of ansible-runner's stats)."""
    return HostStats(
        ok=stats.get("ok", {}).get(host, 0),
        changed=stats.get("changed", {}).get(host, 0),
        failed=stats.get("failures", {}).get(host, 0),
        unreachable=stats.get("dark", {}).get(host, 0),
        skipped=stats.get("skipped", {}).get(host, 0),
        rescued=stats.get("rescued", {}).get(host, 0),
        ignored=stats.get("ignored", {}).get(host, 0),
    )


def count_failures(result: RunResult) -> None:
    """Hosts that failed but the stats missed (interrupted runs, lost nodes) count as failed."""
    for o in result.failures():
        st = result.hosts.setdefault(o.host, HostStats())
        if o.status == "unreachable" and not st.unreachable:
            st.unreachable = 1
        elif o.status == "failed" and not st.failed:
            st.failed = 1


def run(
    network: Network,
    options: RunOptions,
    progress: Callable[[Progress], None] | None = None,
) -> RunResult:
    """Run a playbook of playbooks/ on the spec's hosts (or the --limit targets) from here."""
    result = execute(network, prepare(network, options), options, progress)
    remember(network, result)
    return result


def execute(
    network: Network,
    job: Job,
    options: RunOptions,
    progress: Callable[[Progress], None] | None = None,
) -> RunResult:
    """Run a prepared job with ansible-runner on this machine."""
    facts = fact_cache_dir(network)
    facts.mkdir(parents=True, exist_ok=True)
    envvars = ansible_settings(network, job.forks, facts)
    # ansible-runner looks ansible-playbook up on PATH: make sure ours (maybe in a venv) is found.
    envvars["PATH"] = os.pathsep.join([str(Path(ansible_playbook()).parent), os.environ.get("PATH", "")])
    result = RunResult(check=options.check)
    events = Events(result, job.sizes, progress)
    cmdline = list(job.cmdline)
    private = Path(tempfile.mkdtemp(prefix="provision-run-"))
    try:
        playbook = job.playbook
        if playbook == "site.yml":
            # site.yml's plays in the spec's rollout order (the private dir is removed afterwards).
            playbook = str(private / "rollout.yml")
            Path(playbook).write_text(yaml.safe_dump(rollout_playbook(network, playbooks_dir()), sort_keys=False))
        # The inventory as a file of !unsafe strings: ansible-runner would write a dict as
        # plain JSON, whose strings Ansible templates.
        (private / "inventory").mkdir()
        inventory_path = write_unsafe(private / "inventory" / "hosts.yml", job.inventory, mode=0o600)
        with (
            secrets.allow_listed_env(),
            secrets.secrets_file(job.variables) as secrets_path,
            _sigint_cancels() as cancelled,
        ):
            cmdline += ["-e", f"@{secrets_path}"]
            if job.extra_vars:
                # The operator's own -e KEY=VALUE: trusted like a command line, so not !unsafe;
                # last, so they override as ansible-playbook's -e does.
                extra = private / "extra-vars.json"
                extra.write_text(json.dumps(job.extra_vars))
                cmdline += ["-e", f"@{extra}"]
            runner = ansible_runner.run(
                private_data_dir=str(private),
                project_dir=str(playbooks_dir()),
                playbook=playbook,
                inventory=str(inventory_path),
                envvars=envvars,
                cmdline=" ".join(cmdline),
                tags=",".join(job.tags) or None,
                forks=job.forks,
                event_handler=events,
                cancel_callback=cancelled.is_set,
                suppress_env_files=True,
                quiet=True,
                rotate_artifacts=1,
            )
            if runner.rc not in (0, None) and not result.outcomes:
                result.diagnostic = _tail(runner)
            result.interrupted = cancelled.is_set() or runner.status == "canceled"
        result.status = runner.status
        result.rc = runner.rc
        stats = runner.stats or {}
        for host in {h.name for h in job.targets}:
            result.hosts[host] = host_stats(stats, host)
        count_failures(result)
        if options.keep_artifacts is not None:
            dest = options.keep_artifacts
            shutil.copytree(private / "artifacts", dest, dirs_exist_ok=True)
            result.artifacts = str(dest)
    finally:
        shutil.rmtree(private, ignore_errors=True)
    return result
