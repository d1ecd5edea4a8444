#!/usr/bin/python
"""Ansible module: Debian pam-auth-update profiles on or off, judged by what PAM really loads."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: provision_pam_profiles
short_description: Turn pam-auth-update profiles on and off
description:
  - Debian assembles C(/etc/pam.d/common-*) from the profiles in
    C(/usr/share/pam-configs) with C(pam-auth-update). A profile counts as on when
    every PAM module it names (C(pam_sss.so), C(pam_winbind.so), ...) appears in a
    C(common-*) file, so the module sees what PAM loads, not a record of what was asked.
  - Runs C(pam-auth-update --enable) and C(--disable) only for the profiles whose
    state differs. Supports check mode and diff mode (the profiles that are on).
version_added: "0.1.0"
author: provision maintainers
options:
  enabled:
    description: Profiles that must be on; each must be installed (C(usr/share/pam-configs)).
    type: list
    elements: str
    default: []
  disabled:
    description: Profiles that must be off; one that is not installed is off.
    type: list
    elements: str
    default: []
  root:
    description:
      - The system to work on (pam-auth-update's C(--root)); profiles are read from
        C(ROOT/usr/share/pam-configs), the assembled files from C(ROOT/etc/pam.d).
    type: path
    default: /
"""

EXAMPLES = r"""
- name: Domain logons through sssd, home directories at first logon, no winbind
  provision_pam_profiles:
    enabled: [sss, provision-mkhomedir]
    disabled: [winbind]
"""

RETURN = r"""
enabled:
  description: The profiles (of those named) that are on after the module ran.
  returned: success
  type: list
  elements: str
"""

import os  # noqa: E402
import re  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

_MODULE = re.compile(r"\bpam_[A-Za-z0-9_]+\.so\b")
_COMMON = ("common-auth", "common-account", "common-password", "common-session", "common-session-noninteractive")


def profile_modules(pam_configs: str, name: str) -> set[str] | None:
    """The PAM modules a profile adds, or None when it is not installed."""
    path = os.path.join(pam_configs, name)
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except FileNotFoundError:
        return None
    return set(_MODULE.findall(text))


def loaded_modules(pam_dir: str) -> set[str]:
    found: set[str] = set()
    for name in _COMMON:
        try:
            with open(os.path.join(pam_dir, name), encoding="utf-8") as fh:
                for line in fh:
                    if not line.lstrip().startswith("#"):
                        found.update(_MODULE.findall(line))
        except FileNotFoundError:
            continue
    return found


def is_on(modules: set[str] | None, loaded: set[str]) -> bool:
    return bool(modules) and modules is not None and modules <= loaded


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "enabled": {"type": "list", "elements": "str", "default": []},
            "disabled": {"type": "list", "elements": "str", "default": []},
            "root": {"type": "path", "default": "/"},
        },
        supports_check_mode=True,
    )
    p = module.params
    root = p["root"]
    pam_configs = os.path.join(root, "usr/share/pam-configs")
    pam_dir = os.path.join(root, "etc/pam.d")
    both = set(p["enabled"]) & set(p["disabled"])
    if both:
        module.fail_json(msg=f"profiles both enabled and disabled: {', '.join(sorted(both))}")
    modules = {name: profile_modules(pam_configs, name) for name in [*p["enabled"], *p["disabled"]]}
    missing = [name for name in p["enabled"] if not modules[name]]
    if missing:
        module.fail_json(msg=f"pam-auth-update profiles not installed in {pam_configs}: {', '.join(missing)}")
    loaded = loaded_modules(pam_dir)
    before = sorted(n for n, m in modules.items() if is_on(m, loaded))
    enable = [n for n in p["enabled"] if not is_on(modules[n], loaded)]
    disable = [n for n in p["disabled"] if is_on(modules[n], loaded)]
    changed = bool(enable or disable)
    if changed and not module.check_mode:
        env = {"DEBIAN_FRONTEND": "noninteractive"}
        for flag, names in (("--enable", enable), ("--disable", disable)):
            if names:
                argv = ["pam-auth-update", *(["--root", root] if root != "/" else []), flag, *names]
                rc, out, err = module.run_command(argv, environ_update=env)
                if rc != 0:
                    module.fail_json(msg=f"pam-auth-update {flag} {' '.join(names)} failed: {err or out}", rc=rc)
        loaded = loaded_modules(pam_dir)
        still = [n for n in enable if not is_on(modules[n], loaded)] + [n for n in disable if is_on(modules[n], loaded)]
        if still:
            module.fail_json(msg=f"pam-auth-update left these profiles in the wrong state: {', '.join(still)}")
    after = sorted((set(before) | set(enable)) - set(disable))
    result: dict[str, object] = {"changed": changed, "enabled": after}
    if module._diff and changed:
        result["diff"] = {"before": "\n".join(before) + "\n", "after": "\n".join(after) + "\n"}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
