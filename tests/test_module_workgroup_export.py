"""provision_workgroup_export: the smbpasswd lines of ``pdbedit -L -w`` read exactly (a line that does not
parse is left out, never guessed), and the local IDs read for real through ansible."""

from __future__ import annotations

import grp
import os
import pwd

import pytest
from ansible_modules import load_module, run_module

ex = load_module("provision_workgroup_export")
NT_ALICE = "8846F7EAEE8FB117AD06BDD830B7586C"
# What pdbedit -L -w prints on a peer (user:uid:LM:NT:[flags]:LCT-hex:).
PDBEDIT = f"""alice:1001:XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX:{NT_ALICE}:[U          ]:LCT-6751A3C0:
bob:1002:XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX:0CB6948805F797BF2A82807973B89537:[DU         ]:LCT-6751A400:
carol:1003:XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX:NO PASSWORDXXXXXXXXXXXXXXXXXXXXX:[NU         ]:LCT-6751A400:
mallory:1004:XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX:0CB6948805F797BF2A82807973B89537:[U          ]:LCT-6751A400:
dave:1005:broken line
"""


def test_the_wanted_users_hashes_and_change_times_are_read() -> None:
    got = ex.parse_smbpasswd(PDBEDIT, {"alice", "bob", "carol", "dave"})
    assert set(got) == {"alice", "bob"}  # carol has no password, dave's line is broken, mallory not wanted
    assert got["alice"] == {"nt": NT_ALICE.lower(), "last_set": 0x6751A3C0, "disabled": False}
    assert got["bob"]["disabled"] is True and got["bob"]["last_set"] == 0x6751A400


@pytest.mark.skipif(os.geteuid() != 0, reason="the module runs as root")
def test_local_ids_are_read_for_real_and_missing_names_left_out() -> None:
    root = pwd.getpwuid(0).pw_name
    group = grp.getgrgid(0).gr_name
    result = run_module("provision_workgroup_export", {"users": [root, "no-such-user-x"], "groups": [group]})
    assert not result["_failed"] and not result["changed"], result
    assert result["users"] == {root: {"uid": 0, "gid": 0}} and result["groups"] == {group: 0}
    assert result["hashes"] == {}
