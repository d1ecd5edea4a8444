"""The provision_ad_policy module without a directory: its request checks, the sudoRole attributes of a
rule, the sudo schema it adds, and runs through ansible that must fail before Samba is needed (a bad
request, a wrong option, an interpreter without python3-samba). The directory side runs on the lab
(tests/integration/test_domain.py)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import ansible_modules
import pytest

pol = ansible_modules.load_module("provision_ad_policy")


def params(**over: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "marker": "provision login and sudo policy",
        "ou": "OU=Provision Policy",
        "logins": [{"host": "ws1", "users": ["alice"], "admins": True}],
        "sudo_ou": "OU=SUDOers",
        "sudo": [
            {"name": "provision-sudo-0", "users": ["bob"], "groups": ["admins"], "hosts": ["ws1", "ws1.lab.example"],
             "commands": ["ALL"], "nopasswd": False}
        ],
        "smb_conf": None,
    }
    out.update(over)
    return out


def test_a_good_request_passes() -> None:
    pol.check_request(params())


def test_a_member_or_rule_given_twice_and_an_empty_marker_are_refused() -> None:
    twice = params(
        marker="",
        logins=[{"host": "ws1", "users": [], "admins": False}, {"host": "WS1", "users": [], "admins": True}],
        sudo=[{"name": "r", "users": [], "groups": [], "hosts": [], "commands": ["ALL"], "nopasswd": False}],
    )
    with pytest.raises(pol.Invalid) as caught:
        pol.check_request(twice)
    text = str(caught.value)
    assert "marker must not be empty" in text and "member WS1 is given twice" in text
    assert "sudo rule r needs users or groups, hosts and commands" in text


def test_a_rule_becomes_a_sudo_role() -> None:
    rule = params()["sudo"][0] | {"nopasswd": True, "commands": ["/usr/bin/systemctl restart smbd"]}
    values = pol.rule_values(rule, 3)
    assert values == {
        "sudoUser": ["bob", "%admins"],
        "sudoHost": ["ws1", "ws1.lab.example"],
        "sudoCommand": ["/usr/bin/systemctl restart smbd"],
        "sudoRunAsUser": ["root"],
        "sudoOption": ["!authenticate"],
        "sudoOrder": ["3"],
    }
    assert pol.rule_values(params()["sudo"][0], 1)["sudoOption"] == []
    assert "sudoRole r sudoUser: %admins" in pol.rule_lines("r", values)


def test_the_sudo_schema_is_the_sudo_projects() -> None:
    attrs, cls = pol.schema_ldif("CN=Schema,CN=Configuration,DC=lab,DC=example")
    blocks = attrs.split("\n\n")
    assert len(blocks) == len(pol.SUDO_ATTRIBUTES) == 10
    ids = re.findall(r"attributeID: (\S+)", attrs)
    assert ids == [f"1.3.6.1.4.1.15953.9.1.{i}" for i in range(1, 11)]
    assert "lDAPDisplayName: sudoOrder\n" in attrs and "isSingleValued: TRUE" in blocks[9]
    assert "governsID: 1.3.6.1.4.1.15953.9.2.1\n" in cls
    assert set(re.findall(r"mayContain: (\S+)", cls)) == {*pol.SUDO_ATTRIBUTES, "description"}
    assert "possSuperiors: organizationalUnit" in cls


def test_login_groups_are_lower_case() -> None:
    assert pol.login_group("WS1") == "provision-login-ws1"


def has_samba(python: str) -> bool:
    return subprocess.run([python, "-c", "import samba, ldb"], capture_output=True, check=False).returncode == 0


def test_a_bad_request_fails_before_samba_is_needed() -> None:
    res = ansible_modules.run_module("provision_ad_policy", {"marker": "", "logins": [{"host": "a"}, {"host": "a"}]})
    assert res["_failed"] and res["changes"] == []
    assert "marker must not be empty" in res["msg"] and "member a is given twice" in res["msg"]


def test_a_wrong_option_is_refused() -> None:
    res = ansible_modules.run_module("provision_ad_policy", {"sudo": [{"name": "r", "hosts": "ws1", "nopasswd": "x"}]})
    assert res["_failed"] and "nopasswd" in res["msg"]


@pytest.mark.skipif(has_samba(sys.executable), reason="this interpreter has Samba's bindings")
def test_without_samba_the_module_says_so() -> None:
    res = ansible_modules.run_module("provision_ad_policy", {"logins": [{"host": "ws1", "users": ["alice"]}]})
    assert res["_failed"] and "python3-samba is not installed" in res["msg"]
    assert Path(sys.executable).name in res["msg"] or sys.executable in res["msg"]


def test_a_login_group_of_any_type_becomes_a_global_distribution_group_the_way_ad_allows() -> None:
    global_security, universal_security, local_security = -2147483646, -2147483640, -2147483644
    assert pol.group_type_steps(2) == []
    assert pol.group_type_steps(global_security) == [2]
    # Domain local reaches global only through universal; the security flag goes last.
    assert pol.group_type_steps(local_security) == [universal_security, global_security, 2]
    assert pol.group_type_steps(universal_security) == [global_security, 2]
    assert pol.group_type_steps(4) == [8, 2]
    assert pol.LOGIN_GROUP_TYPE == 2
