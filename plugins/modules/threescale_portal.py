#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the maas.threescale collection
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: Apache-2.0 OR GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: threescale_portal
short_description: Read, set or clear the 3scale developer portal access code
version_added: 1.0.0
description:
  - Reads or changes the developer portal access code of the tenant (C(site_access_code) of
    C(/admin/api/provider.json)).
  - While an access code is set, the developer portal asks every visitor for it before showing
    anything; clearing it (O(access_code="")) opens the portal, as the workshop asks for.
  - The access code is B(not) treated as a secret. In 3scale it is a shared pre-launch gate shown in
    clear in the admin portal and handed to every tester, not a credential of any account or API,
    so it is returned and shown in diffs. Put C(no_log) on the task if your policy says otherwise.
author:
  - Models-as-a-Service automation maintainers (@maas-threescale)
options:
  access_code:
    description:
      - Access code to set. An empty string clears it and opens the portal.
      - Omit it to only read the current value.
    type: str
extends_documentation_fragment:
  - maas.threescale.threescale
  - maas.threescale.threescale.ATTRIBUTES
"""

EXAMPLES = r"""
- name: Open the developer portal (clear the access code)
  maas.threescale.threescale_portal:
    access_code: ""

- name: Read whether the portal is open
  maas.threescale.threescale_portal:
  register: portal

- name: Close the portal again for a private preview
  maas.threescale.threescale_portal:
    access_code: preview2025
"""

RETURN = r"""
access_code:
  description: The access code after the task (empty string when none).
  returned: always
  type: str
  sample: ""
portal_open:
  description: True when no access code is set, so the portal is reachable without one.
  returned: always
  type: bool
  sample: true
"""

from ansible_collections.maas.threescale.plugins.module_utils.threescale_api import ThreescaleModule


def ensure_code(module):
    client = module.client
    provider = (client.get("/provider.json") or {}).get("account") or {}
    current = provider.get("site_access_code") or ""
    wanted = module.params["access_code"]
    changed = wanted is not None and wanted != current
    after = wanted if changed else current
    if changed and not module.check_mode:
        updated = (client.put("/provider.json", data={"site_access_code": wanted}) or {}).get("account") or {}
        after = updated.get("site_access_code") or ""
    result = dict(changed=changed, access_code=after, portal_open=after == "")
    if changed:
        result["diff"] = dict(before=dict(access_code=current), after=dict(access_code=after))
    return result


def main():
    module = ThreescaleModule(argument_spec=dict(access_code=dict(type="str", no_log=False)))
    module.run(lambda: ensure_code(module))


if __name__ == "__main__":
    main()
