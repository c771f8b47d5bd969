#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the maas.threescale collection
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: Apache-2.0 OR GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: workshop_credentials
short_description: Choose the workshop users' passwords and write the instructor's credentials file
version_added: 1.1.0
description:
  - The credentials file of C(bootstrap_workshop.yml), one CSV row per user and model -
    C(username,password,model,display_name,model_id,endpoint,api_key) - written with Python's C(csv)
    module (RFC 4180 quoting, so a name with a comma, a quote or a line break stays in its cell) and
    every name cell kept from being read as a spreadsheet formula.
  - Without O(models), checks the path and chooses a password for each of O(users) - the one the file
    recorded for that user in an earlier run, else O(password), else a random one - and returns them
    (RV(passwords)). Nothing is written then; run it before any change, so that a path that cannot be
    written stops the run before accounts are created whose generated passwords would be lost.
  - With O(models), writes the file (mode 0600, replaced atomically; a user with a known password and no
    application gets a row with no model, so no password this run chose is lost). A user's password is written
    when this run created the account (O(created)) or the file recorded it before; an account that
    existed before keeps its own password, which is not known here (RV(unknown)).
  - Runs on the controller (an action plugin; the playbooks run with a local connection). The result of the
    first step is always hidden from the output, as with C(no_log), because RV(passwords) holds the passwords;
    the second step's result holds none (its diff masks them) and is shown.
  - A file at O(path) that this module did not write (its first line is not the header above) is
    never overwritten nor read; the module fails naming it. An empty file is taken as a new one.
author:
  - Models-as-a-Service automation maintainers (@maas-threescale)
options:
  path:
    description: The credentials file. Its directory must exist and be writable.
    type: path
    required: true
  users:
    description: The workshop usernames, in order.
    type: list
    elements: str
    required: true
  password:
    description:
      - One password for every new user. Empty, a random password per user (O(password_length)
        letters and digits), and a password the file recorded for a user is kept.
    type: str
    default: ""
  password_length:
    description: Length of a generated password.
    type: int
    default: 24
  models:
    description:
      - The onboarded models, each with C(name), C(display_name), C(model_id), C(endpoint) and
        C(applications) (a list of C(account), C(user_key)), as the onboarding playbooks record them.
      - When given, the file is written; omit it to only check the path and choose the passwords.
    type: list
    elements: dict
  created:
    description:
      - The users whose account this run created, so whose password is the one chosen here - usernames, or the
        RV(maas.threescale.threescale_account#module:accounts) result of M(maas.threescale.threescale_account)
        (the entries whose C(action) is C(created)).
    type: list
    elements: raw
    default: []
  chosen:
    description: The passwords RV(passwords) returned before the accounts were created (when writing).
    type: dict
    default: {}
attributes:
  check_mode:
    support: full
    description: Nothing is written; the result says whether the file would change.
  diff_mode:
    support: full
    description: The rows before and after, with every password and key replaced by C(********).
"""

EXAMPLES = r"""
- name: Check the credentials path and choose the passwords (before any change)
  maas.threescale.workshop_credentials:
    path: /home/instructor/workshop.csv
    users: [user1, user2]
  register: creds
  no_log: true

- name: Write the credentials file after the onboarding
  maas.threescale.workshop_credentials:
    path: /home/instructor/workshop.csv
    users: [user1, user2]
    chosen: "{{ creds.passwords }}"
    created: [user2]
    models: "{{ onboarded }}"
  no_log: true
"""

RETURN = r"""
passwords:
  description: The password for each of O(users) (recorded earlier, given, or generated). Secret.
  returned: without O(models)
  type: dict
recorded:
  description: The users whose password the file holds (after writing, when O(models) is given).
  returned: always
  type: list
  elements: str
unknown:
  description: The users with no password in the file - their accounts existed before this run and no earlier run recorded one.
  returned: with O(models)
  type: list
  elements: str
rows:
  description: Number of rows written (one per user and model), or in the file when only read.
  returned: always
  type: int
  sample: 50
"""
