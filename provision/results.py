"""The result types the pipeline's stages hand on: a run's stats and outcomes, and checks.

preflight, verify, runner, nodes and report share them; none of those imports another
only for a type, so report stays a renderer and preflight and verify stay checkers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from provision.errors import ApplyError, Interrupted


@dataclass(frozen=True)
class Check:
    """One check of one host (preflight or verify) and how it went."""

    host: str
    name: str
    status: str  # "pass", "warn" or "fail"
    detail: str = ""


@dataclass
class HostStats:
    ok: int = 0
    changed: int = 0
    failed: int = 0
    unreachable: int = 0
    skipped: int = 0
    rescued: int = 0
    ignored: int = 0


@dataclass(frozen=True)
class TaskOutcome:
    """A task that failed, was unreachable or changed something on a host."""

    host: str
    play: str
    task: str
    status: str  # "failed", "unreachable", "changed" or "unknown" (needs a secret --no-secrets withheld)
    message: str = ""
    diff: str = ""


@dataclass(frozen=True)
class Progress:
    """What the CLI needs to draw a live progress line."""

    play: str
    task: str
    hosts_total: int
    ok: int
    failed: int
    unreachable: int
    event: str


@dataclass
class RunResult:
    status: str = "unstarted"
    rc: int | None = None
    hosts: dict[str, HostStats] = field(default_factory=dict)
    outcomes: list[TaskOutcome] = field(default_factory=list)
    check: bool = False
    interrupted: bool = False
    artifacts: str | None = None
    diagnostic: str = ""  # ansible's last words when it failed before any host ran
    # With execution nodes: the node that ran each host ("controller" for the controller).
    nodes: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "successful" and self.rc == 0

    def failed_hosts(self) -> list[str]:
        return sorted(h for h, s in self.hosts.items() if s.failed or s.unreachable)

    def failures(self) -> list[TaskOutcome]:
        return [o for o in self.outcomes if o.status in ("failed", "unreachable")]

    def changes(self) -> list[TaskOutcome]:
        return [o for o in self.outcomes if o.status == "changed"]

    def unknowns(self) -> list[TaskOutcome]:
        return [o for o in self.outcomes if o.status == "unknown"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "rc": self.rc,
            "ok": self.ok,
            "check": self.check,
            "interrupted": self.interrupted,
            "hosts": {
                h: {**asdict(s), **({"node": self.nodes.get(h, "controller")} if self.nodes else {})}
                for h, s in sorted(self.hosts.items())
            },
            "outcomes": [asdict(o) for o in self.outcomes],
        }

    def raise_for_status(self) -> None:
        """Raise unless the run fully succeeded; the message names hosts and tasks."""
        if self.interrupted:
            raise Interrupted(f"interrupted; {len(self.hosts)} host(s) touched, see the summary above")
        if self.ok:
            return
        lines = [f"{o.host}: {o.task}: {o.message}" for o in self.failures()[:20]]
        failed = self.failed_hosts()
        summary = f"run {self.status} (rc={self.rc}) on {len(failed)} host(s): {', '.join(failed) or 'none named'}"
        if self.diagnostic:
            lines.append(self.diagnostic)
        raise ApplyError("\n  ".join([summary, *lines]))


@dataclass
class VerifyResult:
    checks: list[Check]
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return all(c.status != "fail" for c in self.checks)

    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.status == "fail"]

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "seconds": round(self.seconds, 1), "checks": [asdict(c) for c in self.checks]}


@dataclass
class DriftResult:
    """What an apply would change (a check + diff run) and what verify found."""

    run: RunResult
    verify: VerifyResult

    def by_host(self) -> dict[str, list[TaskOutcome]]:
        out: dict[str, list[TaskOutcome]] = {}
        for o in self.run.changes():
            out.setdefault(o.host, []).append(o)
        return dict(sorted(out.items()))

    @property
    def drifted(self) -> bool:
        return bool(self.run.changes())

    def checks(self) -> list[Check]:
        """Every finding as a check (for JUnit): each change, each failed task, each verify check."""
        out = [Check(o.host, f"drift: {o.task}", "fail", o.diff or "would change") for o in self.run.changes()]
        out += [Check(f.host, f"apply: {f.task}", "fail", f.message) for f in self.run.failures()]
        return out + self.verify.checks

    def bad_hosts(self) -> list[str]:
        """Hosts that drifted, failed a check, or failed the dry run."""
        return sorted(set(self.by_host()) | {c.host for c in self.verify.failed()} | set(self.run.failed_hosts()))

    def to_dict(self) -> dict[str, Any]:
        return {"drifted": self.drifted, "run": self.run.to_dict(), "verify": self.verify.to_dict()}
