#!/usr/bin/python
"""Ansible module: a role's systemd services enabled, started and restarted in one step."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: provision_services
short_description: Enable, start, stop and restart a role's systemd services in one step
description:
  - One module run for all of a role's services instead of one systemd task (and one
    handler) each. For every service, C(systemctl) is asked whether it is enabled and
    active and only what differs is changed.
  - C(restart) restarts a service that should run because something it reads changed
    (typically C(item in files.changed_files) of M(provision_files)); a service started
    by this very run is not restarted again.
  - C(daemon_reload) reloads systemd first (after a unit or drop-in changed).
  - C(clear) names files (shell patterns) a restart removes while the service is stopped,
    such as caches that may hold answers from before a configuration change.
  - C(ready) is a command that must succeed after the service was started or restarted
    by this run (retried every two seconds up to C(ready_timeout)); the module fails with
    its last output otherwise. Nothing waits when nothing was started.
  - Supports check mode (reports what it would do).
version_added: "0.1.0"
author: provision maintainers
options:
  services:
    description: The services, in the order they are handled.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: The unit, e.g. C(chrony.service).
        type: str
        required: true
      enabled:
        description: Whether it starts at boot; leave out to keep it as it is.
        type: bool
      state:
        description: C(started) or C(stopped); leave out to keep it as it is.
        type: str
        choices: [started, stopped]
      restart:
        description: Restart it (when it should run) because its configuration changed.
        type: bool
        default: false
      masked:
        description: Whether the unit is masked; leave out to keep it as it is.
        type: bool
      clear:
        description: Files (shell patterns) removed while the service is stopped for a restart.
        type: list
        elements: path
        default: []
      ready:
        description: A command (argv) that succeeds once the service answers.
        type: list
        elements: str
      ready_timeout:
        description: Seconds to wait for C(ready).
        type: int
        default: 120
  daemon_reload:
    description: Run C(systemctl daemon-reload) first.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Run chrony
  provision_services:
    services:
      - name: chrony.service
        enabled: true
        state: started
        restart: "{{ '/etc/chrony/chrony.conf' in base_files.changed_files }}"

- name: Start sssd, restarted with an empty cache after a join, and wait for it
  provision_services:
    services:
      - name: sssd.service
        enabled: true
        state: started
        restart: "{{ domain_client_join is changed }}"
        clear: [/var/lib/sss/db/cache_*.ldb, /var/lib/sss/mc/*]
        ready: [getent, passwd, Administrator]
"""

RETURN = r"""
actions:
  description: What was (or in check mode would be) done, as C(UNIT - verb) strings.
  returned: success
  type: list
  elements: str
"""

import glob  # noqa: E402
import os  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible.module_utils.provision_commands import unit_state  # noqa: E402

SERVICE_SPEC = {
    "name": {"type": "str", "required": True},
    "enabled": {"type": "bool"},
    "state": {"type": "str", "choices": ["started", "stopped"]},
    "restart": {"type": "bool", "default": False},
    "masked": {"type": "bool"},
    "clear": {"type": "list", "elements": "path", "default": []},
    "ready": {"type": "list", "elements": "str"},
    "ready_timeout": {"type": "int", "default": 120},
}


def systemctl(module: AnsibleModule, *args: str, check_rc: bool = True) -> tuple[int, str]:
    rc, out, err = module.run_command(["systemctl", *args], environ_update={"SYSTEMD_PAGER": "", "LC_ALL": "C"})
    if check_rc and rc != 0:
        module.fail_json(msg=f"systemctl {' '.join(args)} failed: {(err or out).strip()}", rc=rc)
    return rc, out.strip()


def clear_files(patterns: list[str]) -> None:
    for pattern in patterns:
        for path in glob.glob(pattern):
            if os.path.isfile(path) or os.path.islink(path):
                os.unlink(path)


def wait_ready(module: AnsibleModule, name: str, argv: list[str], timeout: int, actions: list[str]) -> None:
    deadline = time.monotonic() + timeout
    while True:
        rc, out, err = module.run_command(argv, environ_update={"LC_ALL": "C"})
        if rc == 0:
            return
        if time.monotonic() >= deadline:
            said = (err or out).strip()[-300:]
            module.fail_json(msg=f"{name} not ready within {timeout}s: {' '.join(argv)} said {said}", actions=actions)
        time.sleep(0.5)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "services": {"type": "list", "elements": "dict", "required": True, "options": SERVICE_SPEC},
            "daemon_reload": {"type": "bool", "default": False},
        },
        supports_check_mode=True,
    )
    check = module.check_mode
    actions: list[str] = []

    def act(name: str, verb: str, *args: str) -> None:
        actions.append(f"{name}: {verb}")
        if not check:
            systemctl(module, *args)

    if module.params["daemon_reload"]:
        act("systemd", "daemon-reload", "daemon-reload")
    for svc in module.params["services"]:
        name = svc["name"]
        st = unit_state(module, name)
        masked = st["UnitFileState"] in ("masked", "masked-runtime") or st["LoadState"] == "masked"
        if svc["masked"] is not None and svc["masked"] != masked:
            act(name, "mask" if svc["masked"] else "unmask", "mask" if svc["masked"] else "unmask", "--", name)
            masked = svc["masked"]
            if not check:
                st = unit_state(module, name)
        if st["LoadState"] == "not-found" and (svc["state"] == "started" or svc["enabled"]):
            module.fail_json(msg=f"{name} is not installed (no such unit)", actions=actions)
        if svc["enabled"] is not None and not masked:
            enabled = st["UnitFileState"] in ("enabled", "enabled-runtime", "alias", "static", "indirect")
            if svc["enabled"] != enabled and st["UnitFileState"] != "static":
                verb = "enable" if svc["enabled"] else "disable"
                act(name, verb, verb, "--", name)
        active = st["ActiveState"] in ("active", "activating", "reloading")
        started_now = False
        if svc["state"] == "started" and not active:
            act(name, "start", "start", "--", name)
            started_now = True
        elif svc["state"] == "stopped" and active:
            act(name, "stop", "stop", "--", name)
        should_run = svc["state"] == "started" or (svc["state"] is None and active)
        if svc["restart"] and should_run and not started_now:
            if svc["clear"]:
                act(name, "stop", "stop", "--", name)
                actions.append(f"{name}: clear {' '.join(svc['clear'])}")
                if not check:
                    clear_files(svc["clear"])
                act(name, "start", "start", "--", name)
            else:
                act(name, "restart", "restart", "--", name)
            started_now = True
        if started_now and svc["ready"] and not check:
            wait_ready(module, name, svc["ready"], svc["ready_timeout"], actions)
    result: dict[str, Any] = {"changed": bool(actions), "actions": actions}
    if module._diff and actions:
        result["diff"] = {"before": "", "after": "\n".join(actions) + "\n", "after_header": "systemctl"}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
