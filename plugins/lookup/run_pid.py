# -*- coding: utf-8 -*-
# Copyright: Contributors to the maas.threescale collection
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: Apache-2.0 OR GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: run_pid
short_description: The process id of this ansible-playbook run
version_added: 1.1.0
description:
  - Returns the process id of the C(ansible-playbook) (or C(ansible)) process running the play, as a
    one-element list. Lookups run in a task's worker process, which that process forked; its parent is
    the run.
  - "For a background task (C(async), C(poll: 0)) that must end with the run, for example
    M(maas.threescale.k8s_lease) with O(maas.threescale.k8s_lease#module:state=kept), which keeps the
    run's Leases renewed only while this process lives, so a run killed with C(-9) lets its Leases expire."
author:
  - Models-as-a-Service automation maintainers (@maas-threescale)
options: {}
notes:
  - "Meaningful on the controller, with C(connection: local), where the background task runs beside the run."
"""

EXAMPLES = r"""
- name: Keep the Leases renewed while this run lives
  maas.threescale.k8s_lease:
    state: kept
    namespace: 3scale
    holder: "{{ holder }}"
    held: "{{ locks.held }}"
    lease_duration: 60
    watch_pid: "{{ lookup('maas.threescale.run_pid') }}"
  async: 86400
  poll: 0
"""

RETURN = r"""
_raw:
  description: The process id of the run, one element.
  type: list
  elements: int
"""

import os

from ansible.plugins.lookup import LookupBase


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        return [os.getppid()]
