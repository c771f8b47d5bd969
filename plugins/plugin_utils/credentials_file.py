# -*- coding: utf-8 -*-
# Copyright: Contributors to the maas.threescale collection
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: Apache-2.0 OR GPL-3.0-or-later
"""The workshop credentials file (maas.threescale.workshop_credentials): read only when this
collection wrote it, written with the csv module, each name cell kept from being a formula.

Pure functions of plain data and paths, unit-tested in tests/unit/plugins/action."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import csv
import io
import os
import secrets
import string
import tempfile

from ansible_collections.maas.threescale.plugins.module_utils.spreadsheet import spreadsheet_cell

HEADER = ["username", "password", "model", "display_name", "model_id", "endpoint", "api_key"]
ALPHABET = string.ascii_letters + string.digits
MASK = "********"
SETTING = "maas_workshop_credentials_file"


class CredentialsError(Exception):
    pass


def read_rows(path):
    """The rows of a file this collection wrote (header left out); [] for no file or an empty one.
    Anything else at that path is a CredentialsError: it is neither read nor overwritten."""
    if not os.path.lexists(path):
        return []
    if not os.path.isfile(path) or os.path.islink(path):
        raise CredentialsError("%s is not a regular file; nothing was changed. Choose another %s." % (path, SETTING))
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise CredentialsError("%s cannot be read (%s); nothing was changed. Fix its permissions or choose another %s."
                               % (path, exc, SETTING))
    if not text.strip():
        return []
    rows = list(csv.reader(io.StringIO(text)))
    if rows[0] != HEADER:
        raise CredentialsError(
            "%s exists and is not a workshop credentials file written by this collection (its first line is not %s); "
            "nothing was changed. Move it aside or choose another %s." % (path, ",".join(HEADER), SETTING))
    return rows[1:]


def check_writable(path):
    """A CredentialsError unless the file can be written (replaced) at path."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise CredentialsError("The directory of %s does not exist; nothing was changed. Create it or choose another %s."
                               % (path, SETTING))
    if not os.access(directory, os.W_OK | os.X_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        raise CredentialsError("%s cannot be written (permission denied); nothing was changed. Choose a writable %s."
                               % (path, SETTING))


def recorded_passwords(rows):
    """username -> the first non-empty password the file gives it."""
    found = {}
    for row in rows:
        if len(row) >= 2 and row[0] and row[1] and row[0] not in found:
            found[row[0]] = row[1]
    return found


def generate(length):
    return "".join(secrets.choice(ALPHABET) for _index in range(length))


def choose(users, password, length, recorded):
    """The password each user gets when its account is created: the given one for all, else the one
    an earlier run recorded, else a new random one."""
    if password:
        return dict((user, password) for user in users)
    return dict((user, recorded.get(user) or generate(length)) for user in users)


def build_rows(users, models, passwords):
    """One row per application of each model; a user with a known password and no application still
    gets a row (empty model), so that no password this run chose is lost."""
    rows, seen = [], set()
    for model in models or []:
        for app in model.get("applications") or []:
            account = app.get("account") or ""
            seen.add(account)
            rows.append([account, passwords.get(account, ""), spreadsheet_cell(model.get("name")),
                         spreadsheet_cell(model.get("display_name")), spreadsheet_cell(model.get("model_id")),
                         spreadsheet_cell(model.get("endpoint")), app.get("user_key") or ""])
    rows.extend([user, passwords[user], "", "", "", "", ""] for user in users if user not in seen and passwords.get(user))
    return rows


def render(rows):
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    writer.writerows(rows)
    return out.getvalue()


def masked(rows):
    """The rows for a diff: every password and key replaced by a mask."""
    return render([[r[0], MASK if r[1:2] and r[1] else ""] + list(r[2:6]) + [MASK if r[6:7] and r[6] else ""] for r in rows])


def write_atomically(path, content, mode=0o600):
    """Write content to path through a temporary file in the same directory (mode set before any
    byte is written), then rename it over path."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".maas-credentials-", dir=directory)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(content)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def plan(path, users, password="", length=24):
    """Before any change: check the path, read what an earlier run recorded, choose the passwords."""
    rows = read_rows(path)
    check_writable(path)
    recorded = recorded_passwords(rows)
    return {"passwords": choose(users, password, length, recorded), "recorded": sorted(set(recorded) & set(users)),
            "rows": len(rows), "changed": False}


def created_users(created):
    """Usernames from a list of usernames, or from threescale_account's ``accounts`` result (those it created)."""
    out = []
    for entry in created or []:
        if isinstance(entry, dict):
            if entry.get("action") == "created" and entry.get("username"):
                out.append(entry["username"])
        elif entry:
            out.append(str(entry))
    return out


def update(path, users, models, chosen, created, check_mode=False, mode=0o600):
    """After the onboarding: write the rows. A password is written for an account this run created
    (chosen[user]) or one the file recorded before; the others' passwords are not known (unknown)."""
    old = read_rows(path)
    check_writable(path)
    known = recorded_passwords(old)
    known.update((user, chosen[user]) for user in created_users(created) if chosen.get(user))
    rows = build_rows(users, models, known)
    content = render(rows)
    exists = os.path.exists(path)
    changed = not exists or (render(old) != content) or (os.stat(path).st_mode & 0o777) != mode
    if changed and not check_mode:
        write_atomically(path, content, mode)
    unknown = [u for u in users if u not in known]
    return {"changed": changed, "recorded": sorted(set(r[0] for r in rows if r[1])), "unknown": unknown, "rows": len(rows),
            "diff": {"before": masked(old) if exists else "", "after": masked(rows),
                     "before_header": path, "after_header": path}}
