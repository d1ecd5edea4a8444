"""Benchmarks of the apply engine (issue 4). Prints figures; asserts nothing.

(a) provision's runner vs plain ansible-playbook, same generated inventory and
    playbook, 200 hosts over ansible_connection=local (loopback only). Target <= 1.05.
(b) generated connection settings vs Ansible defaults over SSH to lab hosts
    (needs a running lab: `provision lab up inventories/lab-workgroup.yml`). Target <= 0.75.
(c) --limit one host of a 10,000-host spec vs a 10-host spec. Target <= 2.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from provision import inventory, runner, spec  # noqa: E402
from provision.resources import playbooks_dir  # noqa: E402

BIN = Path(sys.executable).parent
PLAYBOOK = """---
- name: Engine benchmark
  hosts: all
  gather_facts: false
  tasks:
    - name: Ping
      ansible.builtin.ping:
    - name: Command
      ansible.builtin.command: "true"
      changed_when: false
"""


def fleet(n: int, mode: str = "workgroup") -> str:
    body = f"  - {{name: \"h[00001:{n:05d}]\", address: 10.100.0.1+, role: peer}}\n"
    return ("network: {name: bench, mode: workgroup, subnets: [10.100.0.0/16]}\n"
            "users: []\nhosts:\n" + body)


def bench_a(tmp: Path, n: int = 200) -> None:
    spec_file = tmp / "a.yml"
    spec_file.write_text(fleet(n))
    net = spec.load_network(spec_file)
    (playbooks_dir() / "_bench.yml").write_text(PLAYBOOK)
    try:
        extra = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
        inv_dir = tmp / "inv"
        inventory.write_inventory(net, inv_dir)
        env = dict(os.environ)
        settings = inventory.ansible_settings(net, inventory.default_forks(), tmp / "facts")
        env.update(settings)
        t = time.perf_counter()
        subprocess.run([str(BIN / "ansible-playbook"), "-i", str(inv_dir / "hosts.yml"), "-e", json.dumps(extra),
                        "--forks", settings["ANSIBLE_FORKS"], str(playbooks_dir() / "_bench.yml")],
                       env=env, check=True, capture_output=True)
        plain = time.perf_counter() - t
        t = time.perf_counter()
        res = runner.run(net, runner.RunOptions(playbook="_bench.yml", extra_vars=extra, with_secrets=False))
        ours = time.perf_counter() - t
        assert res.ok, res.status
        print(f"(a) {n} local hosts: ansible-playbook {plain:.1f} s, provision runner {ours:.1f} s, "
              f"ratio {ours / plain:.2f} (target <= 1.05)")
    finally:
        (playbooks_dir() / "_bench.yml").unlink()


def bench_c(tmp: Path) -> None:
    big, small = tmp / "big.yml", tmp / "small.yml"
    big.write_text(fleet(10_000))
    small.write_text(fleet(10))
    times = {}
    for label, path in (("10,000-host spec", big), ("10-host spec", small)):
        t = time.perf_counter()
        out = subprocess.run([str(BIN / "provision"), "inventory", str(path), "--limit", "h00001"],
                             check=True, capture_output=True, text=True)
        times[label] = time.perf_counter() - t
        assert "h00001" in out.stdout
    r = times["10,000-host spec"] / times["10-host spec"]
    print(f"(c) --limit one host: 10,000-host spec {times['10,000-host spec']:.2f} s, "
          f"10-host spec {times['10-host spec']:.2f} s, ratio {r:.2f} (target <= 2)")


def bench_b(tmp: Path) -> None:
    lab_spec = ROOT / "inventories" / "lab-workgroup.yml"
    state = Path("/var/lib/provision/lab/state.json")
    if not state.exists():
        print("(b) skipped: no running lab (provision lab up inventories/lab-workgroup.yml)")
        return
    net = spec.load_network(lab_spec)
    (playbooks_dir() / "_bench.yml").write_text(PLAYBOOK.replace("tasks:", "tasks:\n" + "\n".join(
        f"    - name: Step {i}\n      ansible.builtin.command: \"true\"\n      changed_when: false" for i in range(20)
    ) + "\n    # end of generated steps\n", 1))
    try:
        inv_dir = tmp / "invb"
        inventory.write_inventory(net, inv_dir)
        results = {}
        for label, env_extra in (
            ("ansible defaults", {"ANSIBLE_HOST_KEY_CHECKING": "True"}),
            ("provision settings", inventory.ansible_settings(net, inventory.default_forks(), tmp / "f")),
        ):
            env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")} | env_extra
            t = time.perf_counter()
            subprocess.run([str(BIN / "ansible-playbook"), "-i", str(inv_dir / "hosts.yml"),
                            str(playbooks_dir() / "_bench.yml")], env=env, check=True, capture_output=True)
            results[label] = time.perf_counter() - t
        r = results["provision settings"] / results["ansible defaults"]
        print(f"(b) 3 lab hosts over SSH, 22 tasks: defaults {results['ansible defaults']:.1f} s, "
              f"provision {results['provision settings']:.1f} s, ratio {r:.2f} (target <= 0.75)")
    finally:
        (playbooks_dir() / "_bench.yml").unlink()


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("XDG_STATE_HOME", str(Path(tmp) / "state"))
        os.environ.setdefault("XDG_CACHE_HOME", str(Path(tmp) / "cache"))
        bench_c(Path(tmp))
        bench_a(Path(tmp))
        bench_b(Path(tmp))


if __name__ == "__main__":
    main()
