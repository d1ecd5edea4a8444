"""The roles' template lookup (playbooks/lookup_plugins/provision_template.py), run for real by
ansible-playbook on this machine: it must render exactly what ansible.builtin.template's lookup
renders, keep spec data unevaluated, and leave the task's variables as they were."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")

TEMPLATE = """{{ ansible_managed }}
name={{ template_path | basename }} host={{ template_host is string }}
hostile={{ hostile }}
plain={{ plain }} nested={{ nested.key }} extra={{ extra | default('none') }}
{% include 'part.j2' %}
"""

PLAY = """
- hosts: localhost
  gather_facts: false
  vars:
    hostile: !unsafe "{{ lookup('pipe', 'touch MARKER') }} {% raw %}"
    plain: 42
    nested: {key: value}
    extra_vars: {extra: x}
  tasks:
    - name: Render with both lookups, with and without template variables
      ansible.builtin.copy:
        dest: "{{ out }}/{{ item.name }}"
        content: "{{ item.content }}"
        mode: "0600"
      loop:
        - {name: ours, content: "{{ lookup('provision_template', 'main.j2') }}"}
        - {name: builtin, content: "{{ lookup('ansible.builtin.template', 'main.j2') }}"}
        - {name: ours-vars, content: "{{ lookup('provision_template', 'main.j2', template_vars=extra_vars) }}"}
        - {name: builtin-vars, content: "{{ lookup('ansible.builtin.template', 'main.j2', template_vars=extra_vars) }}"}
      loop_control: {label: "{{ item.name }}"}
    - name: The lookup's own variables stayed in its layer
      ansible.builtin.copy:
        dest: "{{ out }}/after"
        content: "{{ [template_path is defined, extra is defined, plain, nested] | to_json }}"
        mode: "0600"
    - name: A missing template fails the task
      ansible.builtin.debug:
        msg: "{{ lookup('provision_template', 'missing.j2') }}"
"""


def test_renders_as_the_builtin_lookup_without_touching_variables(tmp_path: Path) -> None:
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "main.j2").write_text(TEMPLATE)
    (tmp_path / "templates" / "part.j2").write_text("included={{ plain + 1 }}\n")
    (tmp_path / "play.yml").write_text(PLAY)
    out = tmp_path / "out"
    out.mkdir()
    env = {
        **os.environ,
        "ANSIBLE_LOOKUP_PLUGINS": str(ROOT / "playbooks" / "lookup_plugins"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOCALHOST_WARNING": "0",
    }
    proc = subprocess.run(
        [str(PLAYBOOK), "-i", "localhost,", "-c", "local", "-e", f"out={out}",
         "-e", f"ansible_python_interpreter={sys.executable}", str(tmp_path / "play.yml")],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=False, timeout=300,
    )
    # The last task fails on purpose: the missing file is named, nothing else failed.
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "missing.j2" in proc.stdout and "failed=1" in proc.stdout, proc.stdout
    ours, builtin = (out / "ours").read_text(), (out / "builtin").read_text()
    assert ours == builtin
    assert "name=main.j2 host=True\n" in ours and "plain=42 nested=value extra=none\n" in ours
    assert "included=43\n" in ours
    # Spec data stays data: the payload is printed, never run.
    assert "hostile={{ lookup('pipe', 'touch MARKER') }} {% raw %}\n" in ours
    assert not (tmp_path / "MARKER").exists()
    assert (out / "ours-vars").read_text() == (out / "builtin-vars").read_text()
    assert "extra=x\n" in (out / "ours-vars").read_text()
    assert (out / "after").read_text() == '[false, false, 42, {"key": "value"}]'
