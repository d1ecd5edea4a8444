"""Benchmark: validate + build the model of 10,000-host specs, against a bare YAML load.

Prints figures; targets (issue 2): explicit hosts ratio <= 1.25 of a bare
CSafeLoader load, ranges < 0.5 s.
"""

from __future__ import annotations

import gc
import sys
import tempfile
import time
from pathlib import Path

import yaml

from provision import spec

HEADER = """version: 1
network: {name: big, mode: domain, subnets: [10.0.0.0/8], dns_forwarders: [10.0.0.1]}
domain: {realm: AD.BIG.TEST, netbios: BIG, admin_password: {env: BIG_PW}}
users:
  - {name: alice, password: {env: ALICE_PW}, groups: [staff]}
groups: [{name: staff}]
"""


def explicit(n: int) -> str:
    lines = [HEADER, "hosts:\n", "  - {name: dc1, address: 10.0.0.2, role: domain_controller}\n",
             "  - {name: dc2, address: 10.0.0.3, role: domain_controller}\n"]
    for i in range(n - 2):
        a = 10 * 2**24 + 2**16 + i
        lines.append(f"  - name: ws{i:05d}\n    address: {a >> 24}.{(a >> 16) & 255}.{(a >> 8) & 255}.{a & 255}\n"
                     "    role: workstation\n")
    return "".join(lines)


def ranges(n: int) -> str:
    per = (n - 2) // 4
    body = "".join(
        f"  - {{name: \"r{k}ws[00001:{per:05d}]\", address: 10.{k + 1}.0.1+, role: workstation}}\n" for k in range(4)
    )
    return HEADER + "hosts:\n  - {name: \"dc[1:2]\", address: 10.0.0.2+, role: domain_controller}\n" + body


def best(fn, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    with tempfile.TemporaryDirectory() as tmp:
        for label, text in (("explicit", explicit(n)), ("ranges", ranges(n))):
            path = Path(tmp) / f"{label}.yml"
            path.write_text(text)
            net = spec.load_network(path)  # warm caches (schema compile) once
            assert len(net.hosts) >= n - 2, len(net.hosts)
            t_yaml = best(lambda p=path: yaml.load(p.read_text(), Loader=yaml.CSafeLoader))
            t_full = best(lambda p=path: spec.load_network(p))
            gc.disable()
            t_yaml_nogc = best(lambda p=path: yaml.load(p.read_text(), Loader=yaml.CSafeLoader))
            gc.enable()
            print(f"{label:9} hosts={len(net.hosts):6d} size={len(text) / 1024:7.0f} KiB  "
                  f"yaml.load={t_yaml * 1000:7.1f} ms  validate+model={t_full * 1000:7.1f} ms  "
                  f"ratio={t_full / t_yaml:5.2f}  (vs yaml.load with gc off {t_yaml_nogc * 1000:.1f} ms: "
                  f"{t_full / t_yaml_nogc:4.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
