"""maas.threescale.workshop_credentials (plugins/plugin_utils/credentials_file.py): the credentials
file is written with the csv module, read back only when this collection wrote it, and checked before
any change. Issue 19 item 1: a display name with a newline and commas added rows to the old
join(',') file, and a later run adopted an injected row's password for a real account."""
from __future__ import annotations

import csv
import io
import os
import stat

import pytest

from ansible_collections.maas.threescale.plugins.plugin_utils import credentials_file as C

USERS = ["user1", "user2", "user3"]


def model(name="tinyllama", display="TinyLlama", users=("user1", "user2", "user3")):
    return {"name": name, "display_name": display, "model_id": "tinyllama/tinyllama-1.1b-chat-v1.0",
            "endpoint": "https://tinyllama.example.com:443",
            "applications": [{"account": u, "user_key": "key-" + u} for u in users]}


def rows_of(path):
    return list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))


def test_plan_generates_distinct_passwords_and_writes_nothing(tmp_path):
    path = tmp_path / "creds.csv"
    out = C.plan(str(path), USERS, "", 24)
    assert not path.exists() and out["changed"] is False and out["recorded"] == [] and out["rows"] == 0
    pws = list(out["passwords"].values())
    assert len(set(pws)) == 3 and all(len(p) == 24 and p.isalnum() for p in pws)


def test_plan_with_one_password_gives_it_to_everyone(tmp_path):
    out = C.plan(str(tmp_path / "c.csv"), USERS, "a very long password, with a comma", 24)
    assert set(out["passwords"].values()) == {"a very long password, with a comma"}


def test_update_writes_csv_0600_and_records_only_known_passwords(tmp_path):
    path = tmp_path / "creds.csv"
    chosen = C.plan(str(path), USERS)["passwords"]
    out = C.update(str(path), USERS, [model()], chosen, created=["user2", "user3"])
    assert out["changed"] and out["rows"] == 3 and out["unknown"] == ["user1"]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    rows = rows_of(path)
    assert rows[0] == C.HEADER
    assert [r[:2] for r in rows[1:]] == [["user1", ""], ["user2", chosen["user2"]], ["user3", chosen["user3"]]]
    assert "key-user1" in path.read_text() and C.MASK in out["diff"]["after"] and chosen["user2"] not in out["diff"]["after"]
    # The same data again: nothing changes (idempotent), and the next plan keeps the recorded passwords.
    assert C.update(str(path), USERS, [model()], chosen, created=[])["changed"] is False
    again = C.plan(str(path), USERS)["passwords"]
    assert again["user2"] == chosen["user2"] and again["user3"] == chosen["user3"] and again["user1"] != chosen["user1"]


def test_check_mode_writes_nothing(tmp_path):
    path = tmp_path / "creds.csv"
    out = C.update(str(path), USERS, [model()], {}, [], check_mode=True)
    assert out["changed"] and not path.exists()


def test_a_hostile_display_name_stays_in_its_cell_and_adds_no_row(tmp_path):
    path = tmp_path / "creds.csv"
    hostile = 'Evil\nuser1,stolen-password,x,x,x,x,x\n=HYPERLINK("http://evil")'
    chosen = {"user1": "realpassword-user1-xyz"}
    C.update(str(path), ["user1"], [model(display=hostile, users=("user1",))], chosen, created=["user1"])
    rows = rows_of(path)
    assert len(rows) == 2 and rows[1][0] == "user1" and rows[1][1] == chosen["user1"]
    assert rows[1][3] == hostile  # quoted, whole, in one cell (starts with "E": no formula)
    C.update(str(path), ["user1"], [model(display='=cmd|" /C calc"!A0', users=("user1",))], chosen, created=[])
    assert rows_of(path)[1][3] == "'=cmd|\" /C calc\"!A0"
    # A later run reads back only the real password.
    assert C.plan(str(path), ["user1"])["passwords"] == chosen


def test_a_user_without_application_keeps_its_password_in_the_file(tmp_path):
    path = tmp_path / "creds.csv"
    chosen = {"user1": "p" * 24, "user2": "q" * 24}
    C.update(str(path), ["user1", "user2"], [model(users=("user1",))], chosen, created=["user1", "user2"])
    assert [r[:3] for r in rows_of(path)[1:]] == [["user1", "p" * 24, "tinyllama"], ["user2", "q" * 24, ""]]


@pytest.mark.parametrize("content", ["name,email\nx,y\n", "#!/bin/sh\necho hi\n", "username,password\n"])
def test_an_unrelated_file_is_neither_read_nor_overwritten(tmp_path, content):
    path = tmp_path / "creds.csv"
    path.write_text(content)
    for call in (lambda: C.plan(str(path), USERS), lambda: C.update(str(path), USERS, [model()], {}, [])):
        with pytest.raises(C.CredentialsError, match="not a workshop credentials file written by this collection"):
            call()
    assert path.read_text() == content


def test_an_empty_file_is_taken_as_new(tmp_path):
    path = tmp_path / "creds.csv"
    path.write_text("")
    assert C.plan(str(path), USERS)["rows"] == 0


def test_paths_that_cannot_be_written_are_refused_before_any_change(tmp_path):
    with pytest.raises(C.CredentialsError, match="does not exist.*maas_workshop_credentials_file"):
        C.plan(str(tmp_path / "missing" / "c.csv"), USERS)
    with pytest.raises(C.CredentialsError, match="not a regular file"):
        C.plan(str(tmp_path), USERS)
    link = tmp_path / "link.csv"
    link.symlink_to(tmp_path / "elsewhere.csv")
    with pytest.raises(C.CredentialsError, match="not a regular file"):
        C.plan(str(link), USERS)
    if os.geteuid() != 0:  # root writes anywhere
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        try:
            with pytest.raises(C.CredentialsError, match="cannot be written"):
                C.plan(str(ro / "c.csv"), USERS)
        finally:
            ro.chmod(0o700)


def test_the_action_hides_only_the_result_with_passwords(tmp_path, monkeypatch):
    from ansible_collections.maas.threescale.plugins.action import workshop_credentials as action

    class Task:
        check_mode = False
        diff = True

    def run(args):
        plugin = action.ActionModule.__new__(action.ActionModule)
        plugin._task = Task()
        monkeypatch.setattr(action.ActionBase, "run", lambda self, tmp=None, task_vars=None: {})
        monkeypatch.setattr(plugin, "validate_argument_spec",
                            lambda argument_spec: (None, dict({k: v.get("default") for k, v in argument_spec.items()}, **args)),
                            raising=False)
        return plugin.run(task_vars={})

    path = str(tmp_path / "c.csv")
    first = run({"path": path, "users": USERS})
    assert first["_ansible_no_log"] is True and len(first["passwords"]) == 3
    second = run({"path": path, "users": USERS, "models": [model()], "chosen": first["passwords"], "created": USERS})
    assert "_ansible_no_log" not in second and "passwords" not in second and second["changed"]
    assert all(p not in repr(second) for p in first["passwords"].values())
    (tmp_path / "other.csv").write_text("a,b\n")
    refused = run({"path": str(tmp_path / "other.csv"), "users": USERS})
    assert refused["failed"] and "_ansible_no_log" not in refused and "Move it aside" in refused["msg"]


def test_created_users_from_names_or_the_account_modules_result(tmp_path):
    result = [{"username": "user1", "action": "none"}, {"username": "user2", "action": "created"}]
    assert C.created_users(result) == ["user2"] and C.created_users(["user3", ""]) == ["user3"]
    path = tmp_path / "c.csv"
    C.update(str(path), ["user1", "user2"], [model(users=("user1", "user2"))], {"user1": "a" * 24, "user2": "b" * 24}, result)
    assert [r[:2] for r in rows_of(path)[1:]] == [["user1", ""], ["user2", "b" * 24]]
