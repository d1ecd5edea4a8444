#!/usr/bin/python
"""Ansible module: load an nftables ruleset when its file changed or its live table drifted."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: provision_firewall
short_description: Load the provision nftables table when the file changed or the live rules drifted
description:
  - Rules added or removed by hand (C(nft add rule ...)) never touch the ruleset file, so
    comparing files cannot see them. When it loads the file, this module keeps a fingerprint
    (SHA-256) of the live table as C(nft list table) prints it; on every run it compares the
    live table with that fingerprint and loads the file again when they differ, when there
    is no fingerprint yet, or when I(reload) says the file changed.
  - The file is checked with C(nft -c -f) before it is loaded; a file that does not parse is
    never loaded and the module fails, so a broken ruleset cannot drop the running one.
  - With I(service), the unit that loads the file at boot is enabled, and started when it is not
    active (starting it loads the file) - the whole firewall in one module run.
  - Supports check mode (reports whether it would load) and diff mode (fingerprints).
version_added: "0.1.0"
author: provision maintainers
options:
  path:
    description: The ruleset file, loaded with C(nft -f); it must replace the table atomically.
    type: path
    default: /etc/nftables.conf
  table:
    description: The table the file defines, as C(FAMILY NAME).
    type: str
    default: inet provision
  fingerprint_file:
    description: Where the fingerprint of the loaded table is kept (written mode 0600).
    type: path
    required: true
  reload:
    description: Load the file whatever the fingerprint says (the file was just written).
    type: bool
    default: false
  service:
    description:
      - The systemd unit that loads I(path) at boot, e.g. C(nftables.service); enabled, and
        started instead of a plain load when it is not active. Left out, no unit is touched.
    type: str
"""

EXAMPLES = r"""
- name: Run the firewall (nftables.service enabled and started; new rules, or live rules changed outside provision)
  provision_firewall:
    path: /etc/nftables.conf
    table: inet provision
    fingerprint_file: /var/lib/provision/nftables.sha256
    reload: "{{ '/etc/nftables.conf' in base_files.changed_files }}"
    service: nftables.service
"""

RETURN = r"""
reason:
  description:
    - Why the file was (or would be) loaded, C(file changed), C(no fingerprint), C(live rules changed)
      or C(service not active).
  returned: when loaded
  type: str
actions:
  description: What was (or in check mode would be) done to I(service), as C(UNIT - verb) strings.
  returned: success
  type: list
  elements: str
fingerprint:
  description: The fingerprint of the live table after the run.
  returned: success
  type: str
"""

import hashlib  # noqa: E402
import os  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible.module_utils.provision_commands import run, run_or_fail, unit_state  # noqa: E402


def live_fingerprint(module: AnsibleModule, table: list[str]) -> str:
    """SHA-256 of the table as nft prints it; of nothing when the table is absent."""
    rc, out, _ = run(module, ["nft", "list", "table", *table])
    return hashlib.sha256(out.encode() if rc == 0 else b"").hexdigest()


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "default": "/etc/nftables.conf"},
            "table": {"type": "str", "default": "inet provision"},
            "fingerprint_file": {"type": "path", "required": True},
            "reload": {"type": "bool", "default": False},
            "service": {"type": "str"},
        },
        supports_check_mode=True,
    )
    p = module.params
    table = p["table"].split()
    if len(table) != 2:
        module.fail_json(msg=f"table must be 'FAMILY NAME', not {p['table']!r}")
    try:
        with open(p["fingerprint_file"], encoding="ascii") as fh:
            recorded: str | None = fh.read().strip()
    except FileNotFoundError:
        recorded = None
    actions: list[str] = []
    active = True
    if p["service"]:
        unit = p["service"]
        props = unit_state(module, unit)
        if props["LoadState"] != "loaded":
            module.fail_json(msg=f"{unit} is not installed (LoadState {props['LoadState'] or '?'})")
        if props["UnitFileState"] not in ("enabled", "static", "alias", "indirect"):
            actions.append(f"{unit}: enable")
            if not module.check_mode:
                run_or_fail(module, ["systemctl", "enable", "--", unit], f"enabling {unit} failed")
        active = props["ActiveState"] in ("active", "reloading")
    live = live_fingerprint(module, table)
    if p["reload"]:
        reason = "file changed"
    elif not active:
        reason = "service not active"
    elif recorded is None:
        reason = "no fingerprint"
    elif recorded != live:
        reason = "live rules changed"
    else:
        module.exit_json(changed=bool(actions), fingerprint=live, actions=actions)

    result: dict[str, object] = {"changed": True, "reason": reason, "actions": actions}
    if module._diff:
        name = " ".join(table)
        result["diff"] = {"before": f"{name}: {live} ({reason})\n", "after": f"{name}: as in {p['path']}\n"}
    if not active:
        actions.append(f"{p['service']}: start")
    if module.check_mode:
        module.exit_json(fingerprint=live, **result)
    run_or_fail(module, ["nft", "-c", "-f", p["path"]], f"{p['path']} does not load", keep=600)
    if active:
        run_or_fail(module, ["nft", "-f", p["path"]], f"loading {p['path']} failed", keep=600)
    else:
        # Starting the unit loads the file (and marks it active, as a boot would).
        run_or_fail(module, ["systemctl", "start", "--", p["service"]], f"starting {p['service']} failed", keep=600)
    loaded = live_fingerprint(module, table)
    directory = os.path.dirname(p["fingerprint_file"])
    os.makedirs(directory, mode=0o700, exist_ok=True)
    fd = os.open(p["fingerprint_file"] + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(loaded + "\n")
    os.replace(p["fingerprint_file"] + ".tmp", p["fingerprint_file"])
    module.exit_json(fingerprint=loaded, **result)


if __name__ == "__main__":
    main()
