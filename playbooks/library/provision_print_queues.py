#!/usr/bin/python
"""Ansible module: CUPS print queues created, corrected and removed in one step."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: provision_print_queues
short_description: Keep CUPS print queues as wanted (device, description, enabled, accepting jobs)
description:
  - A queue is (re)defined with C(lpadmin) only when it is missing, points at another device,
    has another description, or is disabled or rejecting jobs. Queues are not shared by CUPS
    itself (C(printer-is-shared=false)); clients print through Samba.
  - Queues in I(absent) are deleted when they exist.
  - Check mode reports what would change; diff mode shows each queue before and after.
version_added: "0.1.0"
author: provision maintainers
options:
  queues:
    description: The wanted queues.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: The queue's name.
        type: str
        required: true
      uri:
        description: The device URI, e.g. C(ipp://printer.example/ipp/print) or C(file:///dev/null).
        type: str
        required: true
      description:
        description: The queue's description (what clients show).
        type: str
        default: ""
  absent:
    description: Queues to delete.
    type: list
    elements: str
    default: []
requirements: [cups-client (lpadmin, lpstat, lpoptions)]
"""

EXAMPLES = r"""
- name: Create or update the print queues
  provision_print_queues:
    queues:
      - {name: office, uri: "ipp://10.231.0.50/ipp/print", description: Office laser}
    absent: [old-queue]
"""

RETURN = r"""
defined:
  description: Queues that were (or would be) created or corrected.
  returned: success
  type: list
  elements: str
removed:
  description: Queues that were (or would be) deleted.
  returned: success
  type: list
  elements: str
"""

import re  # noqa: E402
import shlex  # noqa: E402
from typing import Any  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible.module_utils.provision_commands import run, run_or_fail  # noqa: E402

QUEUE_SPEC = {
    "name": {"type": "str", "required": True},
    "uri": {"type": "str", "required": True},
    "description": {"type": "str", "default": ""},
}


def live_queue(module: AnsibleModule, name: str) -> dict[str, Any] | None:
    """The queue as CUPS has it, or None when it does not exist."""
    rc, out, _ = run(module, ["lpstat", "-l", "-p", name])
    if rc != 0:
        return None
    info = ""
    for line in out.splitlines():
        stripped = line.strip()
        if stripped.startswith("Description: "):
            info = stripped[len("Description: ") :]
    enabled = bool(re.search(rf"^printer {re.escape(name)} .*enabled since", out, re.M))
    # lpstat -v shortens file: URIs ("///dev/null"); lpoptions shows them as given.
    _, opts, _ = run(module, ["lpoptions", "-p", name])
    uri = ""
    for word in shlex.split(opts) if opts.strip() else []:
        if word.startswith("device-uri="):
            uri = word[len("device-uri=") :]
    rc, acc, _ = run(module, ["lpstat", "-a", name])
    accepting = rc == 0 and bool(re.search(rf"^{re.escape(name)} accepting requests", acc, re.M))
    return {"uri": uri, "description": info, "enabled": enabled, "accepting": accepting}


def describe(q: dict[str, Any] | None) -> str:
    if q is None:
        return "absent\n"
    state = ("enabled" if q.get("enabled", True) else "disabled") + (
        ", accepting" if q.get("accepting", True) else ", rejecting"
    )
    return f"uri: {q['uri']}\ndescription: {q['description']}\nstate: {state}\n"


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "queues": {"type": "list", "elements": "dict", "default": [], "options": QUEUE_SPEC},
            "absent": {"type": "list", "elements": "str", "default": []},
        },
        supports_check_mode=True,
    )
    queues: list[dict[str, Any]] = module.params["queues"]
    absent: list[str] = module.params["absent"]
    clash = sorted({q["name"] for q in queues} & set(absent))
    if clash:
        module.fail_json(msg=f"queues both wanted and absent: {', '.join(clash)}")
    if module.get_bin_path("lpstat") is None:
        if queues:
            module.fail_json(msg="CUPS is not installed (no lpstat): install cups and cups-client first")
        module.exit_json(changed=False, defined=[], removed=[])  # no CUPS, so no queue to remove
    defined: list[str] = []
    removed: list[str] = []
    diffs: list[dict[str, str]] = []
    for q in queues:
        live = live_queue(module, q["name"])
        wanted = {"uri": q["uri"], "description": q["description"], "enabled": True, "accepting": True}
        if live == wanted:
            continue
        defined.append(q["name"])
        diffs.append(
            {"before_header": q["name"], "after_header": q["name"], "before": describe(live), "after": describe(wanted)}
        )
        if not module.check_mode:
            argv = [
                "lpadmin",
                "-p",
                q["name"],
                "-E",
                "-v",
                q["uri"],
                "-D",
                q["description"],
                "-o",
                "printer-is-shared=false",
            ]
            run_or_fail(module, argv, f"lpadmin could not define {q['name']}")
    for name in absent:
        live = live_queue(module, name)
        if live is None:
            continue
        removed.append(name)
        diffs.append({"before_header": name, "after_header": name, "before": describe(live), "after": "absent\n"})
        if not module.check_mode:
            run_or_fail(module, ["lpadmin", "-x", name], f"lpadmin could not delete {name}")
    result: dict[str, Any] = {"changed": bool(defined or removed), "defined": defined, "removed": removed}
    if module._diff and diffs:
        result["diff"] = diffs
    module.exit_json(**result)


if __name__ == "__main__":
    main()
