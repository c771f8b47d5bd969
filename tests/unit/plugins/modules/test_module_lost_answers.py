"""Creates that cannot double, in-process against FakePorta: porta commits a POST, then the answer is
lost (connection closed, or a router's 502).  The module must read back, adopt what porta committed,
report the change, and never send a second create for something that exists.  Also the module half
of issue 10 item 6: a refused token, an unreachable admin URL and a failed TLS verification fail
with a message naming the setting, before any write.

Upstream: porta app/controllers/admin/api/signups_controller.rb (signup, 422 on a taken username),
app/controllers/admin/api/service_subscriptions_controller.rb (422 "already subscribed"),
app/controllers/admin/api/buyers_applications_controller.rb (no uniqueness on application names),
app/lib/api_authentication/by_access_token.rb (403 "Access denied" for a bad token).
"""
from __future__ import annotations

import os
import re
import socket
import ssl
import subprocess
import sys
import threading

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from fake_porta import FakePorta  # noqa: E402

from ansible_collections.maas.threescale.plugins.modules import (  # noqa: E402
    threescale_account, threescale_application, threescale_subscription)

TOKEN = "unit-token-0123456789"


class Lossy:
    """FakePorta whose first ``count`` successful ``method`` calls on ``pattern`` are processed and
    committed, then answered with nothing (``answer=None``: connection closed) or ``answer`` (e.g. 502).
    With ``commit=False`` the call is dropped before porta sees it."""

    def __init__(self, fake, method, pattern, count=1, answer=None, commit=True):
        self.fake, self.method, self.pattern = fake, method, re.compile(pattern)
        self.left, self.answer, self.commit, self.injected = count, answer, commit, 0

    def __call__(self, method, path, query, form, headers):
        hit = method == self.method and self.pattern.search(path) and self.left > 0
        if hit and not self.commit:
            self.left -= 1
            self.injected += 1
            return None, None, None
        result = self.fake(method, path, query, form, headers)
        if hit and result[0] < 300:
            self.left -= 1
            self.injected += 1
            return (None, None, None) if self.answer is None else (self.answer, b"<html>Bad Gateway</html>", None)
        return result


@pytest.fixture
def lossy(serve, run_module):
    def start(method, pattern, retries=0, new_api=True, **kw):
        fake = FakePorta(token=TOKEN, new_api=new_api)
        app = Lossy(fake, method, pattern, **kw)
        srv = serve(app)
        conn = dict(admin_url=srv.url, access_token=TOKEN, retries=retries)

        def run(module, **args):
            result = run_module(module, dict(conn, **args))
            assert TOKEN not in str(result)
            return result
        return fake, app, srv, run
    return start


def posts(srv, pattern):
    return [r for r in srv.log if r["method"] == "POST" and re.search(pattern, r["path"])]


@pytest.mark.parametrize("answer", [None, 502])
def test_signup_lost_answer_adopts_the_account(lossy, answer):
    fake, app, srv, run = lossy("POST", r"/signup\.json$", answer=answer)
    before = len(fake.accounts)
    res = run(threescale_account, username="newdev", email="newdev@example.com", password="a-long-password-123")
    assert app.injected == 1 and not res.get("failed"), res
    assert res["changed"] and res["account"]["action"] == "created" and res["account"]["id"]
    assert len(fake.accounts) == before + 1 and len(posts(srv, r"/signup\.json$")) == 1
    assert "adopted the account newdev" in res["recovered_writes"][0]
    again = run(threescale_account, username="newdev", email="newdev@example.com")
    assert not again["changed"] and len(fake.accounts) == before + 1 and "recovered_writes" not in again


def test_signup_dropped_before_porta_is_sent_again(lossy):
    fake, app, srv, run = lossy("POST", r"/signup\.json$", commit=False, retries=1)
    before = len(fake.accounts)
    res = run(threescale_account, username="newdev2", email="newdev2@example.com")
    assert app.injected == 1 and res["changed"] and "recovered_writes" not in res
    assert len(fake.accounts) == before + 1 and len(posts(srv, r"/signup\.json$")) == 2


def test_signup_dropped_and_no_retries_left_says_nothing_was_created(lossy):
    fake, app, srv, run = lossy("POST", r"/signup\.json$", commit=False, retries=0)
    before = len(fake.accounts)
    res = run(threescale_account, username="newdev3")
    assert res["failed"] and "no answer 1 times" in res["msg"] and "nothing was created" in res["msg"]
    assert len(fake.accounts) == before


@pytest.mark.parametrize("new_api,pattern", [(True, r"/service_subscriptions\.json$"), (False, r"/buy\.json$")])
@pytest.mark.parametrize("answer", [None, 504])
def test_subscription_lost_answer_subscribes_once(lossy, new_api, pattern, answer):
    fake, app, srv, run = lossy("POST", pattern, new_api=new_api, answer=answer, count=2)
    res = run(threescale_subscription, accounts=["user1", "user2"], product="api")
    assert app.injected == 2 and not res.get("failed"), res
    assert res["changed"] and [s["action"] for s in res["subscriptions"]] == ["subscribed", "subscribed"]
    assert all(s["subscription_id"] in fake.contracts for s in res["subscriptions"])
    assert len(fake.contracts) == 2 and len(posts(srv, pattern)) == 2 and len(res["recovered_writes"]) == 2
    again = run(threescale_subscription, accounts=["user1", "user2"], product="api")
    assert not again["changed"] and len(fake.contracts) == 2


@pytest.mark.parametrize("answer", [None, 502])
def test_application_lost_answer_creates_one_application(lossy, answer):
    fake, app, srv, run = lossy("POST", r"/applications\.json$", answer=answer)
    res = run(threescale_application, account="user1", product="api", plan="basic", name="user1-api")
    assert app.injected == 1 and not res.get("failed"), res
    assert len(fake.apps) == 1 and len(posts(srv, r"/applications\.json$")) == 1
    (committed,) = fake.apps.values()
    assert res["changed"] and res["application"]["id"] == committed["id"] and res["user_key"] == committed["user_key"]
    assert "application 'user1-api'" in res["recovered_writes"][0]
    again = run(threescale_application, account="user1", product="api", plan="basic", name="user1-api")
    assert not again["changed"] and again["user_key"] == committed["user_key"] and len(fake.apps) == 1


def test_application_dropped_before_porta_is_created_once(lossy):
    fake, app, srv, run = lossy("POST", r"/applications\.json$", commit=False, retries=1)
    res = run(threescale_application, account="user1", product="api", plan="basic", name="user1-api")
    assert app.injected == 1 and res["changed"] and len(fake.apps) == 1 and "recovered_writes" not in res
    assert len(posts(srv, r"/applications\.json$")) == 2


def test_lost_delete_answer_is_not_an_error(lossy):
    fake, app, srv, run = lossy("DELETE", r"/applications/\d+\.json$", retries=1)
    run(threescale_application, account="user1", product="api", plan="basic", name="gone")
    res = run(threescale_application, account="user1", product="api", name="gone", state="absent")
    assert app.injected == 1 and res["changed"] and not res.get("failed") and not fake.apps


# -- item 6: the setting is named, nothing is written ------------------------------------------------

def writes(srv):
    return [r for r in srv.log if r["method"] != "GET"]


@pytest.mark.parametrize("module,args", [
    (threescale_account, dict(username="newdev")),
    (threescale_subscription, dict(accounts=["user1"], product="api")),
    (threescale_application, dict(account="user1", product="api", plan="basic", name="x")),
])
def test_wrong_token_names_the_setting(serve, run_module, module, args):
    fake = FakePorta(token=TOKEN)
    srv = serve(fake)
    res = run_module(module, dict(args, admin_url=srv.url, access_token="wrong-token", retries=0))
    assert res["failed"] and res["msg"].startswith("access_token (or THREESCALE_ACCESS_TOKEN) was refused by %s" % srv.url)
    assert "HTTP 403 Access denied" in res["msg"] and "wrong-token" not in str(res)
    assert not writes(srv) and len(fake.accounts) == 5 and not fake.contracts and not fake.apps


def test_read_only_token_names_the_setting_at_the_first_write(serve, run_module):
    fake = FakePorta(token=TOKEN)

    def read_only(method, path, query, form, headers):
        if method != "GET":
            return 403, {"error": "Your access token does not have the correct permissions"}, None
        return fake(method, path, query, form, headers)
    srv = serve(read_only)
    res = run_module(threescale_account, dict(admin_url=srv.url, access_token=TOKEN, retries=0, username="newdev"))
    assert res["failed"] and "access_token (or THREESCALE_ACCESS_TOKEN) was refused" in res["msg"]
    assert "read-write" in res["msg"] and len(writes(srv)) == 1 and len(fake.accounts) == 5


def test_forbidden_feature_is_not_reported_as_a_token_problem(serve, run_module):
    fake = FakePorta(token=TOKEN, multiple_users=False)
    srv = serve(fake)
    res = run_module(threescale_account, dict(admin_url=srv.url, access_token=TOKEN, retries=0, username="user1",
                                              activate_user=True))
    assert res["failed"] and "multiple_users" in res["msg"] and "access_token" not in res["msg"]


def _closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_admin_url_names_the_setting_and_host(run_module):
    port = _closed_port()
    res = run_module(threescale_account, dict(admin_url="http://127.0.0.1:%d" % port, access_token=TOKEN, retries=0,
                                              username="newdev"))
    assert res["failed"] and "cannot reach admin_url http://127.0.0.1:%d (host 127.0.0.1:%d)" % (port, port) in res["msg"]
    assert "THREESCALE_ADMIN_URL" in res["msg"]


@pytest.fixture
def tls_server(tmp_path):
    """A TLS endpoint with a self-signed certificate that nobody trusts; counts completed HTTP requests."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    try:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                        "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip("openssl cannot make a test certificate: %s" % exc)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(cert), str(key))
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    state = dict(requests=0, handshakes_failed=0)

    def serve():
        while True:
            try:
                conn, unused = listener.accept()
            except OSError:
                return
            try:
                with ctx.wrap_socket(conn, server_side=True) as tls:
                    if tls.recv(1024):
                        state["requests"] += 1
            except (ssl.SSLError, OSError):
                state["handshakes_failed"] += 1
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield "https://127.0.0.1:%d" % listener.getsockname()[1], state, cert
    listener.close()


def test_untrusted_certificate_names_ca_path(run_module, tls_server, tmp_path):
    url, state, unused = tls_server
    res = run_module(threescale_account, dict(admin_url=url, access_token=TOKEN, retries=0, username="newdev"))
    assert res["failed"] and "TLS with 127.0.0.1" in res["msg"] and "(admin_url)" in res["msg"]
    for setting in ("ca_path", "THREESCALE_CA_BUNDLE", "validate_certs"):
        assert setting in res["msg"]
    assert state["requests"] == 0


def test_missing_ca_file_names_the_setting(run_module, tmp_path):
    missing = tmp_path / "no-such-ca.pem"
    res = run_module(threescale_account, dict(admin_url="https://127.0.0.1:%d" % _closed_port(), access_token=TOKEN,
                                              retries=0, username="newdev", ca_path=str(missing)))
    assert res["failed"] and str(missing) in res["msg"] and "ca_path (or THREESCALE_CA_BUNDLE)" in res["msg"]


@pytest.mark.parametrize("state,action", [("suspended", "suspend"), ("present", "resume")])
def test_transition_whose_answer_was_lost(lossy, state, action):
    """The PUT is resent (idempotent method), porta refuses it with 422 because the first one took effect:
    the module reads the application back and reports success."""
    fake, app, srv, run = lossy("PUT", r"/applications/\d+/%s\.json$" % action, retries=1)
    run(threescale_application, account="user1", product="api", plan="basic", name="t")
    if action == "resume":
        run(threescale_application, account="user1", product="api", name="t", state="suspended")
    res = run(threescale_application, account="user1", product="api", name="t", state=state)
    (committed,) = fake.apps.values()
    assert app.injected == 1 and not res.get("failed"), res
    assert res["changed"] and committed["state"] == ("suspended" if action == "suspend" else "live")
    assert res["application"]["state"] == committed["state"] and "had applied it" in res["recovered_writes"][0]
    puts = [r for r in srv.log if r["method"] == "PUT" and r["path"].endswith("/%s.json" % action)]
    assert len(puts) == 2


def test_unsubscribe_survives_lost_answers(lossy):
    """Suspending the live application and deleting the subscription both lose their answer."""
    fake, app, srv, run = lossy("PUT", r"/suspend\.json$", retries=1)
    run(threescale_application, account="user1", product="api", plan="basic", name="u")
    app.pattern, app.method, app.left = re.compile(r"/suspend\.json$|/service_subscriptions/\d+\.json$"), "PUT", 1
    deleting = Lossy(fake, "DELETE", r"/service_subscriptions/\d+\.json$")
    srv.httpd.app = lambda *a: (deleting if a[0] == "DELETE" else app)(*a)
    res = run(threescale_subscription, accounts=["user1"], product="api", state="absent", suspend_applications=True)
    assert app.injected == 1 and deleting.injected == 1 and not res.get("failed"), res
    assert res["changed"] and not fake.contracts and not fake.apps


def test_application_created_meanwhile_converges_on_the_oldest(lossy, capsys):
    """Another run (or a timed-out attempt committed late) creates the same application just before this
    task's POST: the task deletes its own and adopts the oldest, so both runs end with one application."""
    fake, app, srv, run = lossy("POST", r"/never$")

    def racing(method, path, query, form, headers):
        if method == "POST" and path.endswith("/applications.json") and not fake.apps:
            fake(method, path, query, dict(form), headers)  # the other run commits first
        return fake(method, path, query, form, headers)
    srv.httpd.app = racing
    res = run(threescale_application, account="user1", product="api", plan="basic", name="race")
    (oldest,) = fake.apps.values()
    assert res["changed"] and res["application"]["id"] == oldest["id"] and res["user_key"] == oldest["user_key"]
    warned = " ".join(res.get("warnings") or []) + capsys.readouterr().err  # ansible-core 2.19 prints warnings
    assert "kept the oldest (id %s)" % oldest["id"] in warned
    assert [r["method"] for r in srv.log if "/applications/" in r["path"] and r["method"] != "GET"] == ["DELETE"]
