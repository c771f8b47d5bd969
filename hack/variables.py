#!/usr/bin/env python
"""Every maas_* variable the playbooks and roles read, known at run time and documented once.

    hack/variables.py --check   exit 1 when plugins/plugin_utils/known_variables.py is stale, or when a
                                variable is documented nowhere (a playbook variable in the example
                                inventory, an AAP one in docs/aap.md, a role's in its README)
    hack/variables.py --write   regenerate plugins/plugin_utils/known_variables.py

The known names are what the maas.threescale.unknown_variables filter compares a run's maas_* variables
with, so a misspelt one is named with the nearest known name before anything is changed.
"""
import argparse
import pathlib
import re
import sys

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
NAME = re.compile(r"(?<![\w.$-])maas_[a-z0-9_]*[a-z0-9](?![\w.-])")
SOURCES = ["playbooks", "roles", "aap", "inventories/lab"]
SUFFIXES = {".yml", ".yaml", ".j2"}
KNOWN_FILE = ROOT / "plugins/plugin_utils/known_variables.py"
PLAYBOOK_DOCS = ROOT / "inventories/openshift-example/group_vars/all.yml"
AAP_DOCS = ROOT / "docs/aap.md"
HEADER = '''# -*- coding: utf-8 -*-
# Copyright: Contributors to the maas.threescale collection
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: Apache-2.0 OR GPL-3.0-or-later
"""The maas_* variables the collection's playbooks and roles read (written by hack/variables.py --write;
make test fails when it is stale)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

'''


def roles():
    return sorted(p.name for p in (ROOT / "roles").iterdir() if (p / "meta/argument_specs.yml").exists())


def used():
    """Every maas_* name in the playbooks, roles, AAP configuration and lab inventory (not __ internals)."""
    names = set()
    for top in SOURCES:
        for path in (ROOT / top).rglob("*"):
            if path.suffix in SUFFIXES and "molecule" not in path.parts:
                names.update(NAME.findall(path.read_text()))
    return names


def role_options():
    out = {}
    for role in roles():
        spec = yaml.safe_load((ROOT / "roles" / role / "meta/argument_specs.yml").read_text())
        out[role] = set(spec["argument_specs"]["main"].get("options") or {})
    return out


def known():
    names = used()
    for options in role_options().values():
        names |= options
    return sorted(names)


def render(names):
    lines = ["KNOWN_VARIABLES = frozenset(["]
    lines += ['    "%s",' % n for n in names]
    lines.append("])")
    return HEADER + "\n".join(lines) + "\n"


def undocumented():
    """(name, where it must be documented) for each variable documented nowhere."""
    problems = []
    options = role_options()
    playbook_docs, aap_docs = PLAYBOOK_DOCS.read_text(), AAP_DOCS.read_text()
    for name in sorted(used() - set(options)):  # a role's own name (in comments, role_name) is not a variable
        role = next((r for r in sorted(options, key=len, reverse=True) if name.startswith(r + "_")), None)
        if role:
            readme = (ROOT / "roles" / role / "README.md").read_text()
            if not re.search(r"\b%s\b" % re.escape(name), readme):
                problems.append((name, "roles/%s/README.md (an option in meta/argument_specs.yml, or its outputs)" % role))
        elif name.startswith("maas_aap_"):
            if name not in aap_docs:
                problems.append((name, "docs/aap.md"))
        elif not re.search(r"\b%s\b" % re.escape(name), playbook_docs):
            problems.append((name, PLAYBOOK_DOCS.relative_to(ROOT)))
    return problems


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    group = ap.add_mutually_exclusive_group()
    group.add_argument("--check", dest="mode", action="store_const", const="--check")
    group.add_argument("--write", dest="mode", action="store_const", const="--write")
    mode = ap.parse_args().mode or "--check"
    names = known()
    text = render(names)
    if mode == "--write":
        KNOWN_FILE.write_text(text)
        print("wrote %s (%d names)" % (KNOWN_FILE.relative_to(ROOT), len(names)))
        return 0
    rc = 0
    if not KNOWN_FILE.exists() or KNOWN_FILE.read_text() != text:
        print("%s is stale: run hack/variables.py --write" % KNOWN_FILE.relative_to(ROOT))
        rc = 1
    for name, where in undocumented():
        print("%s is read by the playbooks or roles but documented nowhere: document it in %s" % (name, where))
        rc = 1
    if rc == 0:
        print("variables: %d known, every one documented" % len(names))
    return rc


if __name__ == "__main__":
    sys.exit(main())
