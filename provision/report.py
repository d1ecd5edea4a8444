"""Render run and check results: a text table for people, JSON and JUnit XML for CI."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from provision.changes import Change, Changes
from provision.errors import Problem
from provision.plan import Plan, mail_summary, node_slices, summarize_names
from provision.results import Check, RunResult


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A plain aligned text table (no colours: CI logs stay readable)."""
    data = [[str(c) for c in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in data)]) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in data]
    return "\n".join(out)


def run_summary(result: RunResult) -> str:
    """Per-host table, then each failure with its task and message."""
    rows = []
    nodes = bool(result.nodes)  # with execution nodes: which ran each host
    for host, s in sorted(result.hosts.items()):
        state = "UNREACHABLE" if s.unreachable else "FAILED" if s.failed else "ok"
        where = (result.nodes.get(host) or "-",) if nodes else ()
        rows.append((host, *where, s.ok, s.changed, s.failed, s.unreachable, s.skipped, state))
    headers = ("host", *(("node",) if nodes else ()), "ok", "changed", "failed", "unreachable", "skipped", "result")
    text = table(headers, rows)
    failures = result.failures()
    if failures:
        text += "\n\nFailures:\n" + "\n".join(f"  {o.host}: [{o.task}] {o.message}" for o in failures)
    unknown = result.unknowns()
    if unknown:
        text += "\n\nUnknown without secrets (--no-secrets):\n" + "\n".join(
            f"  {o.host}: [{o.task.removeprefix('Unknown without secrets: ')}] {o.message}" for o in unknown
        )
    totals = {
        "hosts": len(result.hosts),
        "changed": sum(s.changed for s in result.hosts.values()),
        "failed": len(result.failed_hosts()),
    }
    mode = "check mode, nothing changed; " if result.check else ""
    text += (
        f"\n\n{mode}{totals['hosts']} host(s), {totals['changed']} change(s), "
        f"{totals['failed']} host(s) failed; status {result.status}, rc {result.rc}"
    )
    return text


def plan_text(p: Plan) -> str:
    """``provision plan`` for people: the network as the spec makes it, the rollout, the advice."""
    from provision import policy, requirements

    n = p.network
    out = [f"Network {n.name} ({n.mode.value}), subnets {', '.join(n.subnets)}, {len(n.hosts)} hosts"]
    if n.domain is not None:
        d = n.domain
        out.append(f"  domain: realm {d.realm}, NetBIOS {d.netbios}, DCs {', '.join(d.dcs)}")
    else:
        out.append(f"  workgroup: {n.workgroup}")
    out.append("Hosts by role:")
    out += [f"  {role.value:<18} {summarize_names(hosts)}" for role, hosts in n.hosts_by_role().items()]
    out.append(f"Users ({len(n.users)}):")
    out += [f"  {u.name:<18} groups: {', '.join(u.groups) or '-'}" for u in n.users]
    out.append(f"Groups ({len(n.groups)}): {', '.join(g.name for g in n.groups) or '-'}")
    shares = [(h, s) for h in n.hosts for s in h.shares]
    out.append(f"Shares ({len(shares)}):")
    for h, s in shares:
        access = ", ".join([*s.users, *("@" + g for g in s.groups)]) or "everyone authenticated"
        out.append(f"  \\\\{h.name}\\{s.name:<14} {s.path:<20} {'ro' if s.read_only else 'rw'}  {access}")
    out += [f"  printer {pr.name} on {h.name}" for h in n.hosts for pr in h.printers]
    databases = [(h, db) for h in n.hosts for db in h.databases]
    if databases:
        out.append(f"Databases ({len(databases)}; one left out of the spec is kept, as unmanaged):")
        for h, db in databases:
            rw = ", ".join([*db.read_write_users, *("@" + g for g in db.read_write_groups)]) or "-"
            ro = ", ".join([*db.read_only_users, *("@" + g for g in db.read_only_groups)]) or "-"
            out.append(f"  {db.name} on {h.name}: owner {db.owner}; read-write {rw}; read-only {ro}")
    mail = mail_summary(n)
    if mail:
        out.append(f"Mail for {mail['domain']} on {', '.join(mail['servers'])} (MX {mail['mx']}):")
        out.append(f"  mailboxes ({len(mail['mailboxes'])}): {summarize_names(mail['mailboxes'])}")
        for address, members in mail["lists"].items():
            out.append(f"  list {address}: {', '.join(members) or 'no member in the spec'}")
        for server, account in mail["lookups"].items():
            out.append(f"  {server} looks users up as {account} (its own account, not the Administrator)")
    pol = n.policies
    access = "spec" if pol.access is not None else "default"
    sudo = "spec" if pol.sudo is not None else "default"
    out.append(f"Login and sudo (access: {access} policy, sudo: {sudo} policy; root's key always):")
    for item in policy.effective(n):
        where = item["role"] + (f" ({summarize_names(item['hosts'])})" if item["hosts"] else "")
        out.append(f"  {where:<18} login: {', '.join(item['login']) or 'nobody'}")
        out.append(f"  {'':<18} sudo:  {', '.join(item['sudo']) or 'nobody'}")
    r = n.rollout
    out.append(f"Rollout: batch {r.batch}, stop past {r.max_fail_percent}% failed, {len(p.batches)} step(s):")
    out += [f"  {i:>3}. {b.role:<18}  {summarize_names(list(b.hosts))}" for i, b in enumerate(p.batches, 1)]
    if r.execution_nodes:
        out.append("Execution nodes (after the controller's hosts, each runs a slice):")
        for item in node_slices(n):
            hosts = summarize_names(item["hosts"])
            out.append(f"  {item['node']:<18} {item['address']:<15}  {hosts} ({item['batch']} at once)")
    out.append("System requirements (preflight fails below the minimum, warns below the recommendation):")
    out += [f"  {who} ({role}): {text}" for who, role, text in requirements.lines(n)]
    if p.warnings:
        out.append("Warnings:")
        out += [f"  {w.path}: {w.message}" + (f" (line {w.line})" if w.line else "") for w in p.warnings]
    out += advice_lines(p.advice)
    return "\n".join(out)


# Past this many changes, additions and changes are folded per kind (removals never are).
CHANGES_LISTED = 200


def _field_text(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_field_text(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_field_text(v)}" for k, v in value.items()) + "}"
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= 80 else text[:77] + "..."


def _change_line(c: Change) -> str:
    mark = {"add": "+", "change": "~", "remove": "-"}[c.action]
    line = f"{mark} {c.kind} {c.name}"
    if c.action == "change":
        line += ": " + "; ".join(f"{f.name} {_field_text(f.before)} → {_field_text(f.after)}" for f in c.fields)
    return line


def changes_text(changes: Changes, name: str, recorded: str | None) -> str:
    """What the next apply adds (+), changes (~) and removes (-), per host, then every removal
    again with what it really does, so removals stand out; ends with the counts."""
    if recorded is None:
        out = [f"No apply of '{name}' is recorded on this controller: everything is an addition."]
    else:
        out = [f"Changes since the last apply of '{name}' ({recorded}):"]
    if not changes:
        return "\n".join([*out, "  none: the hosts get what they got last time.", "Plan: no changes."])
    listed = [c for c in changes if c.action != "remove"]
    if len(changes) <= CHANGES_LISTED:
        for host, items in changes.by_host().items():
            shown = [c for c in items if c.action != "remove"]
            if shown:
                out.append(f"  {host or 'network-wide'}:")
                out += [f"    {_change_line(c)}" for c in shown]
    else:
        folded: dict[tuple[str, str], list[str]] = {}
        for c in listed:
            by_host = c.host and c.kind in ("host", "computer account", "dns record")
            folded.setdefault((c.action, c.kind), []).append(c.host if by_host and c.host else c.name)
        for (action, kind), names in folded.items():
            mark = "+" if action == "add" else "~"
            out.append(f"  {mark} {kind} ({len(names)}): {summarize_names(names)}")
    removals = changes.removals()
    if removals:
        out.append(f"To remove ({len(removals)}), as the apply does it:")
        for c in removals:
            where = f" on {c.host}" if c.host else ""
            out.append(f"  - REMOVE {c.kind} {c.name}{where}" + (f": {c.note}" if c.note else ""))
    add, change, remove = changes.counts()
    out.append(f"Plan: {add} to add, {change} to change, {remove} to remove.")
    return "\n".join(out)


def advice_lines(items: Sequence[Problem]) -> list[str]:
    if not items:
        return ["Advice: none; the topology fits the network's size."]
    return ["Advice:", *(f"  {a.severity}: {a.message}" for a in items)]


# The JSON reports' format; a change that removes or renames a field raises it.
# 2: plan's host lists became lists of names (they were display strings).
JSON_VERSION = 2


def document(kind: str, body: dict[str, Any]) -> dict[str, Any]:
    """A JSON report (``--format json``, ``--report-json``): its format version, the command
    that made it and provision's version, then the command's own fields."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        tool = version("provision")
    except PackageNotFoundError:  # pragma: no cover - run from a source tree
        tool = "unknown"
    return {"version": JSON_VERSION, "kind": kind, "provision": tool, **body}


def dumps(kind: str, body: dict[str, Any]) -> str:
    return json.dumps(document(kind, body), indent=2)


def write_json(path: Path, kind: str, body: dict[str, Any]) -> None:
    path.write_text(dumps(kind, body) + "\n")


def run_junit(result: RunResult, name: str = "provision apply") -> ET.ElementTree:
    """One testcase per host per task that failed or changed; hosts with neither get one passing case."""
    suite = ET.Element("testsuite", name=name)
    cases = 0
    failures = 0
    touched = set()
    for o in result.outcomes:
        touched.add(o.host)
        case = ET.SubElement(suite, "testcase", classname=o.host, name=f"{o.play}: {o.task}")
        _node_property(case, result, o.host)
        cases += 1
        if o.status in ("failed", "unreachable"):
            failures += 1
            f = ET.SubElement(case, "failure", type=o.status, message=o.message[:500])
            f.text = o.message
        elif o.status == "unknown":
            ET.SubElement(case, "skipped", message=f"unknown without secrets: {o.message[:400]}")
        elif o.diff:
            ET.SubElement(case, "system-out").text = o.diff
    for host in sorted(set(result.hosts) - touched):
        _node_property(ET.SubElement(suite, "testcase", classname=host, name="converged"), result, host)
        cases += 1
    suite.set("tests", str(cases))
    suite.set("failures", str(failures))
    suite.set("errors", "0")
    return _wrap(suite)


def _node_property(case: ET.Element, result: RunResult, host: str) -> None:
    """With execution nodes, each case says which ran its host."""
    if result.nodes:
        props = ET.SubElement(case, "properties")
        ET.SubElement(props, "property", name="node", value=result.nodes.get(host) or "none")


def checks_junit(checks: Sequence[Check], name: str) -> ET.ElementTree:
    """One testcase per host per check."""
    suite = ET.Element(
        "testsuite",
        name=name,
        tests=str(len(checks)),
        failures=str(sum(c.status == "fail" for c in checks)),
        errors="0",
    )
    for c in checks:
        case = ET.SubElement(suite, "testcase", classname=c.host, name=c.name)
        if c.status == "fail":
            ET.SubElement(case, "failure", message=c.detail[:500]).text = c.detail
        elif c.detail:
            ET.SubElement(case, "system-out").text = c.detail
    return _wrap(suite)


def _wrap(suite: ET.Element) -> ET.ElementTree:
    root = ET.Element("testsuites", tests=suite.get("tests", "0"), failures=suite.get("failures", "0"))
    root.append(suite)
    return ET.ElementTree(root)


def write_junit(path: Path, tree: ET.ElementTree) -> None:
    ET.indent(tree)
    tree.write(path, encoding="utf-8", xml_declaration=True)
