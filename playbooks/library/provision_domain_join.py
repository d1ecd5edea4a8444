#!/usr/bin/python
"""Ansible module: test the host's machine account and join (or repair the join) only when it is broken."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: provision_domain_join
short_description: Join a Linux host to an Active Directory domain, or repair a broken join
description:
  - Tests the machine account first (C(adcli testjoin) for sssd clients, C(net ads testjoin)
    for winbind members); it fails when the host never joined, its keytab or secrets are gone
    or the computer account was deleted in the directory. A healthy join is left alone and
    reported unchanged.
  - Otherwise joins with C(adcli join) or C(net ads join), creating the computer account in
    I(computer_ou). The password reaches the tool on stdin (adcli C(--stdin-password); net
    through C(PASSWD_FD=0)), never on a command line. Failed attempts are retried with a
    doubling pause; the output of every attempt, secrets masked, goes to I(log).
  - Check mode tests the join and reports whether it would join; diff mode shows the state
    before and after.
  - Without I(admin_password) a broken join fails with a clear message, or, with I(no_secrets)
    (a dry run whose secrets were deliberately not resolved), is reported (C(join_needed))
    with a warning; such a run cannot know more.
version_added: "0.1.0"
author: provision maintainers
options:
  client:
    description: C(sssd) joins with adcli (host keytab); C(winbind) with Samba's net (smb.conf must be written).
    type: str
    choices: [sssd, winbind]
    required: true
  dns_domain:
    description: The domain's DNS name, e.g. C(lab.example).
    type: str
    required: true
  realm:
    description: The Kerberos realm (upper case); adcli only.
    type: str
  netbios_domain:
    description: The domain's NetBIOS name, for the C(DOMAIN\\user) login of net.
    type: str
  computer_name:
    description: The NetBIOS name of this computer (15 characters at most); adcli only (net takes smb.conf's).
    type: str
  host_fqdn:
    description: This host's fully qualified name; adcli only.
    type: str
  computer_ou:
    description: The OU of new computer accounts, relative to the domain, e.g. C(OU=Provisioned Computers).
    type: str
    required: true
  base_dn:
    description: The domain's base DN, e.g. C(DC=lab,DC=example).
    type: str
    required: true
  domain_controller:
    description: The DC to join at (its FQDN); the first DC, so the account exists where the others replicate from.
    type: str
    required: true
  admin_user:
    description: The account that may join computers.
    type: str
    default: Administrator
  admin_password:
    description: Its password; secret. Needed only when the join is broken.
    type: str
    default: ""
    no_log: true
  no_secrets:
    description: A dry run without secrets; a missing password is then a warning, not a failure.
    type: bool
    default: false
  retries:
    description: Extra attempts after a failed join.
    type: int
    default: 4
  backoff:
    description: First pause between attempts, in seconds; doubled each time (at most 60).
    type: float
    default: 5
  log:
    description: File the output of every attempt is appended to (mode 0600), secrets masked.
    type: path
  keytab:
    description:
      - winbind only - the host keytab (C(/etc/krb5.keytab)). A join writes it when smb.conf says
        C(kerberos method = secrets and keytab); a member joined before that setting has none, and
        gets it here from its machine account (C(net ads keytab create -P), no password needed).
    type: path
"""

EXAMPLES = r"""
- name: Join (or repair the join)
  provision_domain_join:
    client: sssd
    dns_domain: lab.example
    realm: LAB.EXAMPLE
    computer_name: WS1
    host_fqdn: ws1.lab.example
    computer_ou: OU=Provisioned Computers
    base_dn: DC=lab,DC=example
    domain_controller: dc1.lab.example
    admin_password: "{{ provision_domain_admin_password }}"
    log: /var/log/provision/domain_client.log
  no_log: true
"""

RETURN = r"""
was_joined:
  description: Whether the machine account was healthy before this run.
  returned: success
  type: bool
join_needed:
  description: Whether a join was (or, in check mode or without a password, would be) needed.
  returned: success
  type: bool
testjoin:
  description: What the test of the machine account said when it failed.
  returned: when the account was not healthy
  type: str
output:
  description: The output of the last join attempt, secrets masked.
  returned: when a join ran
  type: str
attempts:
  description: How many join attempts were made.
  returned: when a join ran
  type: int
keytab_written:
  description: Whether the keytab was (or in check mode would be) written from the machine account.
  returned: when the account was healthy or the join succeeded
  type: bool
"""

import os  # noqa: E402
from collections.abc import Mapping  # noqa: E402
from typing import Any  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible.module_utils.provision_commands import run, runner  # noqa: E402
from ansible.module_utils.provision_secrets import mask, run_with_secret  # noqa: E402


def testjoin_argv(p: Mapping[str, Any]) -> list[str]:
    if p["client"] == "sssd":
        return ["adcli", "testjoin", f"--domain={p['dns_domain']}"]
    return ["net", "ads", "testjoin"]


def ou_path(ou: str) -> str:
    """net's createcomputer wants the OU as a path from the top: OU=b,OU=a -> a/b."""
    parts = [part.strip()[3:] for part in ou.split(",") if part.strip().upper().startswith("OU=")]
    return "/".join(reversed(parts))


def join_argv(p: Mapping[str, Any]) -> list[str]:
    if p["client"] == "sssd":
        return [
            "adcli",
            "join",
            f"--domain={p['dns_domain']}",
            f"--domain-realm={p['realm']}",
            f"--domain-ou={p['computer_ou']},{p['base_dn']}",
            f"--host-fqdn={p['host_fqdn']}",
            f"--computer-name={p['computer_name']}",
            f"--domain-controller={p['domain_controller']}",
            f"--login-user={p['admin_user']}",
            "--stdin-password",
            "--show-details",
        ]
    return [
        "net",
        "ads",
        "join",
        f"-U{p['netbios_domain']}\\{p['admin_user']}",
        f"-S{p['domain_controller']}",
        "--no-dns-updates",
        f"createcomputer={ou_path(p['computer_ou'])}",
    ]


def keytab_missing(p: Mapping[str, Any]) -> bool:
    return p["client"] == "winbind" and bool(p["keytab"]) and not os.path.exists(p["keytab"])


def write_keytab(module: AnsibleModule, result: dict[str, Any]) -> dict[str, Any]:
    """The host keytab from the machine account, where a healthy winbind join lacks it."""
    if not keytab_missing(module.params):
        return {**result, "keytab_written": False}
    if not module.check_mode:
        rc, out, err = run(module, ["net", "ads", "keytab", "create", "-P"])
        if rc != 0 or not os.path.exists(module.params["keytab"]):
            module.fail_json(msg=f"net ads keytab create -P failed ({rc}): {(err or out).strip()[-400:]}", **result)
    return {**result, "changed": True, "keytab_written": True}


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "client": {"type": "str", "choices": ["sssd", "winbind"], "required": True},
            "dns_domain": {"type": "str", "required": True},
            "realm": {"type": "str"},
            "netbios_domain": {"type": "str"},
            "computer_name": {"type": "str"},
            "host_fqdn": {"type": "str"},
            "computer_ou": {"type": "str", "required": True},
            "base_dn": {"type": "str", "required": True},
            "domain_controller": {"type": "str", "required": True},
            "admin_user": {"type": "str", "default": "Administrator"},
            "admin_password": {"type": "str", "default": "", "no_log": True},
            "no_secrets": {"type": "bool", "default": False},
            "retries": {"type": "int", "default": 4},
            "backoff": {"type": "float", "default": 5.0},
            "log": {"type": "path"},
            "keytab": {"type": "path"},
        },
        required_if=[
            ("client", "sssd", ("realm", "computer_name", "host_fqdn")),
            ("client", "winbind", ("netbios_domain",)),
        ],
        supports_check_mode=True,
    )
    p = module.params
    password: str = p["admin_password"]

    rc, out, err = run(module, testjoin_argv(p))
    if rc == 0:
        module.exit_json(**write_keytab(module, {"changed": False, "was_joined": True, "join_needed": False}))

    reason = mask((out + err).strip(), [password])[-400:]
    result: dict[str, Any] = {"was_joined": False, "join_needed": True, "testjoin": reason}
    if module._diff:
        result["diff"] = {
            "before": f"joined: no ({reason.splitlines()[-1] if reason else 'no answer'})\n",
            "after": f"joined: yes ({p['domain_controller']})\n",
        }
    if not password and not p["no_secrets"]:
        module.fail_json(
            msg="the machine account is not healthy and joining needs the Administrator password "
            "(provision_domain_admin_password), which was not given",
            **result,
        )
    if not password:
        module.warn(
            f"the machine account is not healthy ({reason or 'testjoin failed'}); "
            "joining needs the Administrator password"
        )
        module.exit_json(changed=False, **result)
    if module.check_mode:
        module.exit_json(changed=True, **result)

    attempt = run_with_secret(
        runner(module),
        join_argv(p),
        secrets=[password],
        stdin=password + "\n",
        env={"PASSWD_FD": "0"} if p["client"] == "winbind" else None,
        retries=p["retries"],
        backoff=p["backoff"],
        log=p["log"],
    )
    result.update(output=attempt.output[-2000:], attempts=attempt.attempts)
    if attempt.rc != 0:
        module.fail_json(
            msg=f"joining {p['dns_domain']} at {p['domain_controller']} failed after "
            f"{attempt.attempts} attempt(s): {attempt.output.strip()[-600:]}",
            rc=attempt.rc,
            **result,
        )
    module.exit_json(**write_keytab(module, {"changed": True, **result}))


if __name__ == "__main__":
    main()
