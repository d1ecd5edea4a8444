"""Render run and check results: a text table for people, JSON and JUnit XML for CI."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

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


# The JSON reports' format; a change that removes or renames a field raises it.
JSON_VERSION = 1


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
