"""ansible.builtin.template's lookup, without its deep copy of every variable.

ansible-core 2.19's template lookup deep-copies all of the task's variables for each
file it renders, only to add a few of its own (``template_path``, ``ansible_managed``,
...); its own comment asks why that is not a ChainMap. On a domain's first apply that
copy was about a quarter of the controller's CPU (py-spy, domain + 10 workstations:
every role writes its files through template lookups). This lookup puts the template's
variables in a ChainMap layer over the task's, which it never writes to: the same file,
search path, options and result, without the copy. Spec data in the variables stays
unsafe (the values are not copied, so their tags are untouched).
"""

from __future__ import annotations

import os
from collections import ChainMap
from typing import Any

from ansible._internal._templating import _template_vars
from ansible._internal._templating._engine import TemplateOptions, TemplateOverrides
from ansible.errors import AnsibleError
from ansible.plugins.lookup.template import LookupModule as _TemplateLookup
from ansible.template import trust_as_template

DOCUMENTATION = """
name: provision_template
author: provision
short_description: Render a template file, like ansible.builtin.template's lookup, without copying the variables
description:
  - The same as ansible.builtin.template's lookup (search path, options, C(ansible_managed),
    C(template_path) and friends), but the template's own variables are layered over the
    task's variables instead of added to a deep copy of all of them.
options:
  _terms:
    description: The template files to render (searched in the role's C(templates/)).
    required: true
  template_vars:
    description: Variables only this template sees.
    type: dict
    default: {}
  variable_start_string:
    description: The string marking the beginning of a print statement.
    type: str
    default: "{{"
  variable_end_string:
    description: The string marking the end of a print statement.
    type: str
    default: "}}"
  comment_start_string:
    description: The string marking the beginning of a comment statement.
    type: str
    default: "{#"
  comment_end_string:
    description: The string marking the end of a comment statement.
    type: str
    default: "#}"
  trim_blocks:
    description: Whether to remove the first newline after a block.
    type: bool
    default: true
"""

EXAMPLES = """
- name: Write /etc/hosts
  provision_files:
    files:
      - path: /etc/hosts
        content: "{{ lookup('provision_template', 'hosts.j2') }}"
"""

RETURN = """
_raw:
  description: The rendered text of each file.
  type: list
  elements: str
"""


def _search_path(variables: Any, lookupfile: str) -> list[str]:
    """Jinja's include path: the template's folder, then each search path and its templates/."""
    paths = [os.path.dirname(lookupfile)]
    for p in variables.get("ansible_search_path", []):
        paths += [os.path.join(p, "templates"), p]
    return paths


class LookupModule(_TemplateLookup):  # type: ignore[misc]
    """The template lookup with a ChainMap where ansible-core deep-copies."""

    def run(self, terms: list[str], variables: Any = None, **kwargs: Any) -> list[Any]:
        self.set_options(var_options=variables, direct=kwargs)
        overrides = TemplateOverrides.from_kwargs(
            {
                name: self.get_option(name)
                for name in (
                    "variable_start_string",
                    "variable_end_string",
                    "comment_start_string",
                    "comment_end_string",
                    "trim_blocks",
                )
            }
        )
        variables = variables or {}
        ret = []
        for term in terms:
            lookupfile = self.find_file_in_search_path(variables, "templates", term)
            if not lookupfile:
                raise AnsibleError(f"the template file {term} could not be found for the lookup")
            own: dict[str, Any] = dict(
                _template_vars.generate_ansible_template_vars(
                    path=term,
                    fullpath=lookupfile,
                    include_ansible_managed="ansible_managed" not in variables,
                )
            )
            own.update(self.get_option("template_vars"))
            data_templar = self._templar.copy_with_new_env(
                available_variables=ChainMap(own, variables), searchpath=_search_path(variables, lookupfile)
            )
            template = trust_as_template(self._loader.get_text_file_contents(lookupfile))
            ret.append(
                data_templar._engine.template(
                    template, options=TemplateOptions(escape_backslashes=False, overrides=overrides)
                )
            )
        return ret
