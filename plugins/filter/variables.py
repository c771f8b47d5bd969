# -*- coding: utf-8 -*-
# Copyright: Contributors to the maas.threescale collection
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: Apache-2.0 OR GPL-3.0-or-later
"""The maas_* variables of a run that no playbook or role of the collection reads: a misspelt one
(close to a known name) is named with that name so the run can stop before any change; the others
are only reported. Documented in plugins/filter/unknown_variables.yml."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import difflib

from ansible_collections.maas.threescale.plugins.plugin_utils.known_variables import KNOWN_VARIABLES

CUTOFF = 0.8  # difflib similarity from which a name is taken for a typo of the known one


def unknown_variables(names, known=None):
    """{'typos': [message per misspelt name], 'unknown': [other unknown maas_* names]}, both sorted."""
    known = sorted(known if known is not None else KNOWN_VARIABLES)
    typos, unknown = [], []
    for name in sorted(set(str(n) for n in names or [] if str(n).startswith("maas_"))):
        if name in known:
            continue
        close = difflib.get_close_matches(name, known, n=1, cutoff=CUTOFF)
        if close:
            typos.append("%s is not a variable of maas.threescale, nothing was changed: did you mean %s? Fix: rename it "
                         "(inventories/openshift-example/group_vars/all.yml explains every variable)." % (name, close[0]))
        else:
            unknown.append(name)
    return {"typos": typos, "unknown": unknown}


class FilterModule(object):
    def filters(self):
        return {"unknown_variables": unknown_variables}
