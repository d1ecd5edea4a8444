#!/usr/bin/python
"""Ansible module: run samba-tool (inside the module) or a program with secrets that never reach a command line."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: provision_secret_run
short_description: Run samba-tool or another program with secrets kept off every command line
description:
  - A command line is readable by every local user (C(ps), C(/proc/PID/cmdline)) for as long
    as the program runs. This module hands secrets over without one.
  - In C(samba_tool) mode samba-tool runs inside the module's own Python process, the very
    code C(/usr/bin/samba-tool) runs (C(samba.netcmd.main)). An argument containing
    C({secret:NAME}) gets secret I(NAME) substituted inside the process, and I(creds) puts a
    secret into the process's C(PASSWD) variable, which Samba's credential code reads as the
    password of the C(-U) user; set after the process started, it is not in
    C(/proc/PID/environ) either. The host's Python needs Samba's bindings (python3-samba).
  - In C(exec) mode I(argv) runs as a child process; I(stdin_secret) writes a secret and a
    newline to its stdin, I(env_secrets) puts secrets into its environment (readable by root
    and the owner only). C({secret:NAME}) placeholders are refused there, a child's argv being
    public.
  - The output (stdout and stderr together) is returned and logged with every secret masked.
    Failed attempts can be retried with a doubling pause, only when the output matches
    I(retry_on) if given.
  - Like M(ansible.builtin.command), a run reports a change (the task may say otherwise with
    C(changed_when)) and nothing runs when I(creates) exists. Check mode runs nothing and
    reports a change unless I(creates) exists.
version_added: "0.1.0"
author: provision maintainers
options:
  mode:
    description:
      - C(samba_tool) runs samba-tool in the module's process, I(argv) being what follows C(samba-tool).
      - C(exec) runs the program I(argv) as a child process.
    type: str
    choices: [samba_tool, exec]
    required: true
  argv:
    description:
      - C(samba_tool) mode - the subcommand and its arguments, e.g. C([domain, provision, ...]); an argument
        may contain C({secret:NAME}) placeholders.
      - C(exec) mode - the program and its arguments, taken literally (no shell, no variable expansion).
    type: list
    elements: str
    required: true
  secrets:
    description:
      - "The secrets by name, e.g. C({admin: ...}); every value is masked in the output and the log."
    type: dict
    default: {}
    no_log: true
  creds:
    description:
      - C(samba_tool) mode - the name of the secret that becomes the module process's C(PASSWD) variable, the
        password of samba-tool's C(-U) user.
    type: str
  stdin_secret:
    description: C(exec) mode - the name of the secret written, with a newline, to the child's stdin.
    type: str
  env_secrets:
    description:
      - "C(exec) mode - environment variables of the child, each set to a secret, as C({VAR: NAME})."
    type: dict
    default: {}
  retries:
    description: Extra attempts after a failed one.
    type: int
    default: 0
  backoff:
    description: First pause between attempts, in seconds; doubled each time.
    type: float
    default: 5
  max_delay:
    description: Longest pause between attempts, in seconds.
    type: float
    default: 60
  retry_on:
    description: A regular expression; only a failure whose output matches it is retried (without it, any failure).
    type: str
  log:
    description:
      - File the output of every attempt is appended to (mode 0600, directory created 0700), secrets masked, so
        that a failure can be examined although C(no_log) hides the task.
    type: path
  creates:
    description: A path (glob); when it exists nothing runs, as with M(ansible.builtin.command).
    type: path
notes:
  - Use C(no_log) on the task; its input holds the secrets.
  - Without I(stdin_secret) the child's stdin is the module's (empty under Ansible); samba-tool reads
    C(/dev/null), so a prompt fails instead of waiting.
"""

EXAMPLES = r"""
- name: Provision the domain
  provision_secret_run:
    mode: samba_tool
    argv: [domain, provision, --realm=LAB.EXAMPLE, --domain=LAB, "--adminpass={secret:admin}"]
    secrets:
      admin: "{{ samba_dc_admin_password }}"
    log: /var/log/provision/samba_dc.log
    creates: /var/lib/samba/private/sam.ldb
  no_log: true

- name: Join as an additional DC, the password of -U through PASSWD
  provision_secret_run:
    mode: samba_tool
    argv: [domain, join, lab.example, DC, "-ULAB\\Administrator"]
    secrets:
      admin: "{{ samba_dc_admin_password }}"
    creds: admin
    retries: 4
    backoff: 10
  no_log: true

- name: Leave the domain, the password on net's stdin
  provision_secret_run:
    mode: exec
    argv: [net, ads, leave, "-ULAB\\Administrator"]
    secrets:
      admin: "{{ admin_password }}"
    stdin_secret: admin
  environment:
    PASSWD_FD: "0"
  register: leave
  no_log: true
"""

RETURN = r"""
rc:
  description: The exit status of the last attempt (0 when nothing ran).
  returned: always
  type: int
stdout:
  description: The output of the last attempt, stdout and stderr together, secrets masked.
  returned: always
  type: str
attempts:
  description: How many attempts were made (0 when nothing ran).
  returned: always
  type: int
cmd:
  description: What ran, placeholders unsubstituted (samba_tool mode starts with C(samba-tool)).
  returned: always
  type: list
  elements: str
msg:
  description: Why it failed or did not run, secrets masked.
  returned: on failure, when I(creates) exists and in check mode
  type: str
"""

import glob  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Mapping  # noqa: E402
from typing import Any, NoReturn  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible.module_utils.provision_commands import runner  # noqa: E402
from ansible.module_utils.provision_secrets import (  # noqa: E402
    Runner,
    SecretError,
    append_log,
    mask,
    placeholders,
    run_with_secret,
    samba_tool_entry,
    samba_tool_runner,
    secret_value,
)

# The exit status of a refusal before anything ran (EX_USAGE, as the shipped helper had).
USAGE = 64


def secret_names(p: Mapping[str, Any]) -> list[str]:
    """Every secret name the run needs."""
    names: list[str] = placeholders(p["argv"])
    names += [p["creds"]] if p["creds"] else []
    names += [p["stdin_secret"]] if p["stdin_secret"] else []
    return names + [str(name) for name in p["env_secrets"].values()]


def summary(text: str, head: int = 400, tail: int = 800) -> str:
    """The start (where samba-tool says what it refuses) and the end (where a join says why it failed)."""
    text = text.strip()
    if len(text) <= head + tail:
        return text
    return f"{text[:head]}\n[...]\n{text[-tail:]}"


def refusal(p: Mapping[str, Any]) -> str | None:
    """What is wrong with the request itself, whatever the secrets' values."""
    if not p["argv"]:
        return "argv is empty"
    if p["mode"] == "exec":
        if placeholders(p["argv"]):
            return "{secret:NAME} placeholders are refused in exec mode: a child's argv is public"
        if p["creds"]:
            return "creds is for samba_tool mode; exec mode takes stdin_secret or env_secrets"
    elif p["stdin_secret"] or p["env_secrets"]:
        return "stdin_secret and env_secrets are for exec mode; samba_tool mode takes {secret:NAME} and creds"
    if any(not str(var) or "=" in str(var) for var in p["env_secrets"]):
        return "env_secrets wants {VAR: NAME} with valid variable names"
    if p["retry_on"]:
        try:
            re.compile(p["retry_on"])
        except re.error as exc:
            return f"retry_on is not a regular expression: {exc}"
    return None


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "mode": {"type": "str", "choices": ["samba_tool", "exec"], "required": True},
            "argv": {"type": "list", "elements": "str", "required": True},
            "secrets": {"type": "dict", "default": {}, "no_log": True},
            "creds": {"type": "str"},
            "stdin_secret": {"type": "str"},
            "env_secrets": {"type": "dict", "default": {}},
            "retries": {"type": "int", "default": 0},
            "backoff": {"type": "float", "default": 5.0},
            "max_delay": {"type": "float", "default": 60.0},
            "retry_on": {"type": "str"},
            "log": {"type": "path"},
            "creates": {"type": "path"},
        },
        supports_check_mode=True,
    )
    p = module.params
    samba = p["mode"] == "samba_tool"
    cmd: list[str] = (["samba-tool"] if samba else []) + list(p["argv"])
    shown = " ".join(cmd[:3])
    # Scalars (a password YAML read as a number) as text; None and "" count as not given.
    secrets: dict[str, str] = {
        str(name): str(value) for name, value in p["secrets"].items() if value is not None and value != ""
    }
    values = list(secrets.values())
    result: dict[str, Any] = {"cmd": cmd, "rc": 0, "stdout": "", "attempts": 0}

    def refuse(msg: str, rc: int = USAGE) -> NoReturn:
        msg = mask(msg, values)
        if not module.check_mode:
            append_log(p["log"], f"== {time.strftime('%Y-%m-%d %H:%M:%S')} {shown}: not run: {msg}")
        module.fail_json(msg=f"{shown}: {msg}", **{**result, "rc": rc})
        raise SystemExit(1)  # not reached: fail_json exits

    if any(isinstance(v, (dict, list)) for v in p["secrets"].values()):
        refuse("secrets wants {NAME: value} with text values")
    problem = refusal(p)
    if problem:
        refuse(problem)

    if p["creates"] and glob.glob(p["creates"]):
        module.exit_json(
            changed=False,
            msg=f"Did not run command since '{p['creates']}' exists",
            **{**result, "stdout": f"skipped, since {p['creates']} exists"},
        )
    if module.check_mode:
        # No secret is needed to say what would run (a dry run may have none).
        module.exit_json(changed=True, msg=f"{shown} would run (check mode)", **result)

    try:
        for name in secret_names(p):
            secret_value(secrets, name)
    except SecretError as exc:
        refuse(str(exc))

    if samba:
        try:
            samba_tool_entry()
        except ImportError as exc:
            refuse(
                f"samba-tool runs inside this module, which needs Samba's Python bindings (python3-samba) "
                f"for the host's Python, {sys.executable} ({exc})",
                rc=1,
            )
        run: Runner = samba_tool_runner(secrets, p["creds"])
        stdin, env = None, None
    else:
        run = runner(module)
        stdin = secrets[p["stdin_secret"]] + "\n" if p["stdin_secret"] else None
        env = {str(var): secrets[str(name)] for var, name in p["env_secrets"].items()}

    try:
        attempt = run_with_secret(
            run,
            cmd,
            secrets=values,
            stdin=stdin,
            env=env,
            retries=p["retries"],
            backoff=p["backoff"],
            max_delay=p["max_delay"],
            retry_on=p["retry_on"],
            log=p["log"],
        )
    except ValueError as exc:  # a secret's value on the command line
        refuse(f"{exc}: pass it as a {{secret:NAME}} placeholder, creds, stdin_secret or env_secrets")
    result.update(changed=True, rc=attempt.rc, stdout=attempt.output, attempts=attempt.attempts)
    if attempt.rc != 0:
        module.fail_json(
            msg=f"{shown} failed with status {attempt.rc} after {attempt.attempts} attempt(s): "
            f"{summary(attempt.output)}",
            **result,
        )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
