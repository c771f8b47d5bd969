"""ThreescaleClient against a scripted local HTTP server: auth, retries, pagination, errors, redaction."""
from __future__ import annotations

import json
import socket
import threading

import pytest

from ansible_collections.maas.threescale.plugins.module_utils.threescale_api import (
    ThreescaleClient, ThreescaleError, account_lookup_kind)

TOKEN = "s3cr3t+tok/en=="  # characters that change under URL and base64 encoding


def client(url, retries=3, **kw):
    sleeps = []
    c = ThreescaleClient(url, TOKEN, retries=retries, backoff=1.0, sleep=sleeps.append, **kw)
    return c, sleeps


def script(*responses):
    """App answering with the given (status, body[, headers]) in order, then repeating the last."""
    queue = list(responses)

    def app(method, path, query, form, headers):
        resp = queue.pop(0) if len(queue) > 1 else queue[0]
        return resp if len(resp) == 3 else (resp[0], resp[1], None)
    return app


def assert_no_token(*texts):
    for text in texts:
        for form in (TOKEN, "s3cr3t%2Btok%2Fen%3D%3D", "s3cr3t"):
            assert form not in text


def test_token_is_basic_password_and_never_in_url(serve):
    srv = serve(script((200, {"account": {"id": 1}})))
    c, unused = client(srv.url)
    assert c.get("/provider.json") == {"account": {"id": 1}}
    req = srv.log[0]
    assert req["url"] == "/admin/api/provider.json"
    import base64
    assert base64.b64decode(req["headers"]["Authorization"].split()[1]).decode() == ":" + TOKEN
    assert_no_token(req["url"])
    # the collection names itself, so porta's logs (and the lab's per-client counts) can tell it apart
    assert req["headers"]["User-Agent"] == "maas.threescale-ansible-collection"


def test_form_body_and_query(serve):
    srv = serve(script((201, {"account": {"id": 9}})))
    c, unused = client(srv.url)
    c.post("/signup.json", data={"username": "a b", "org_name": "x&y"})
    c.get("/accounts/find.json", params={"email": "a+b@example.com"})
    assert srv.log[0]["form"] == {"username": "a b", "org_name": "x&y"}
    assert srv.log[1]["query"] == {"email": "a+b@example.com"}


@pytest.mark.parametrize("method,status,attempts", [
    ("GET", 503, 4), ("GET", 502, 4), ("GET", 504, 4), ("GET", 429, 4),
    ("PUT", 502, 4), ("DELETE", 504, 4), ("PATCH", 503, 4),
    ("POST", 503, 4), ("POST", 429, 4),          # refused without processing: safe to repeat
    ("POST", 502, 1), ("POST", 504, 1),          # may have been processed: a retry could duplicate
    ("GET", 500, 1), ("GET", 404, 1), ("POST", 422, 1), ("GET", 403, 1),
])
def test_retry_table(serve, method, status, attempts):
    srv = serve(script((status, {"status": "boom"})))
    c, sleeps = client(srv.url)
    with pytest.raises(ThreescaleError) as err:
        c.request(method, "/x.json", data={} if method != "GET" else None)
    assert len(srv.log) == attempts
    assert err.value.status == status and err.value.method == method and err.value.path == "/admin/api/x.json"
    assert sleeps == [1.0, 2.0, 4.0][:attempts - 1]
    if attempts > 1:
        assert "gave up after 4 attempts" in str(err.value)


def test_retry_then_success_with_retry_after(serve):
    srv = serve(script((429, {}, {"Retry-After": "7"}), (503, {}), (200, {"ok": True})))
    c, sleeps = client(srv.url)
    assert c.get("/x.json") == {"ok": True}
    assert sleeps == [7.0, 2.0]  # Retry-After wins when longer than our backoff
    assert c.request_count == 3


def test_zero_retries(serve):
    srv = serve(script((503, {})))
    c, sleeps = client(srv.url, retries=0)
    with pytest.raises(ThreescaleError):
        c.get("/x.json")
    assert len(srv.log) == 1 and sleeps == []


def _closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_connection_refused_is_retried_for_every_method(method):
    c, sleeps = client("http://127.0.0.1:%d" % _closed_port(), retries=2)
    with pytest.raises(ThreescaleError) as err:
        c.request(method, "/signup.json", data={"a": 1})
    assert sleeps == [1.0, 2.0] and err.value.status is None
    assert "cannot reach" in str(err.value) and "gave up after 3 attempts" in str(err.value)


@pytest.mark.parametrize("method,attempts", [("GET", 3), ("POST", 1)])
def test_dropped_connection_only_retried_when_idempotent(serve, method, attempts):
    srv = serve(script((None, None)))
    c, unused = client(srv.url, retries=2)
    with pytest.raises(ThreescaleError):
        c.request(method, "/x.json", data={"a": 1})
    assert len(srv.log) == attempts


def test_read_timeout_not_retried_for_post(serve):
    release = threading.Event()

    def slow(method, path, query, form, headers):
        release.wait(5)
        return 200, {}, None
    srv = serve(slow)
    c, sleeps = client(srv.url, retries=2, request_timeout=0.2)
    try:
        with pytest.raises(ThreescaleError):
            c.post("/x.json", data={"a": 1})
        assert len(srv.log) == 1 and sleeps == []
    finally:
        release.set()


def _pages(total, per_page_default=500, with_metadata=True):
    items = [{"account": {"id": i}} for i in range(1, total + 1)]

    def app(method, path, query, form, headers):
        page, per_page = int(query.get("page", 1)), int(query.get("per_page", per_page_default))
        body = {"accounts": items[(page - 1) * per_page:page * per_page]}
        if with_metadata and total > per_page:
            body["metadata"] = {"per_page": per_page, "total_entries": total, "current_page": page,
                                "total_pages": -(-total // per_page)}
        return 200, body, None
    return app


@pytest.mark.parametrize("total,metadata,requests", [
    (1201, True, 3),    # metadata: stops after the last page
    (1000, True, 2),    # metadata says page 2 of 2: no extra request although the page is full
    (7, False, 1),      # one short page, no metadata (porta omits it when everything fits)
    (500, False, 2),    # full page without metadata: one extra request instead of truncating
    (0, False, 1),
])
def test_paginate(serve, total, metadata, requests):
    srv = serve(_pages(total, with_metadata=metadata))
    c, unused = client(srv.url)
    items = c.paginate("/accounts.json", "accounts", "account")
    assert [i["id"] for i in items] == list(range(1, total + 1))
    assert len(srv.log) == requests
    assert all(r["query"]["per_page"] == "500" for r in srv.log)


def test_paginate_keeps_filters(serve):
    srv = serve(_pages(3))
    c, unused = client(srv.url)
    c.paginate("/accounts.json", "accounts", "account", params={"state": "approved"}, per_page=2)
    assert [r["query"] for r in srv.log] == [{"state": "approved", "page": "1", "per_page": "2"},
                                             {"state": "approved", "page": "2", "per_page": "2"}]


@pytest.mark.parametrize("status,body,text", [
    (422, {"errors": {"username": ["has already been taken"], "email": ["is invalid"]}},
     "POST /admin/api/signup.json failed with HTTP 422: email is invalid; username has already been taken"),
    (403, {"error": "Access denied"}, "access_token (or THREESCALE_ACCESS_TOKEN) was refused by http://127.0.0.1"),
    (404, {"status": "Not found"}, "failed with HTTP 404: Not found"),
    (400, b"Required parameter missing: account", "HTTP 400: Required parameter missing: account"),
    (422, {"error": {"from": "live", "event": "accept", "error": "cannot transition"}}, "error: cannot transition"),
    (422, {"errors": {"state": ['cannot transition via "suspend"']}}, 'state cannot transition via "suspend"'),
    (422, {"errors": {"password": ["is too short (minimum is 15 characters)"]}},
     "HTTP 422: password is too short (minimum is 15 characters)"),
])
def test_error_mapping(serve, status, body, text):
    srv = serve(script((status, body)))
    c, unused = client(srv.url)
    with pytest.raises(ThreescaleError) as err:
        c.post("/signup.json", data={"username": "u"})
    assert text in str(err.value)
    assert err.value.status == status
    assert err.value.body == (body if isinstance(body, dict) else body.decode())


def test_expected_404_returns_none(serve):
    srv = serve(script((404, {"status": "Not found"})))
    c, unused = client(srv.url)
    assert c.get("/accounts/find.json", params={"username": "nobody"}, expected_404=True) is None
    assert c.find_account("nobody") is None and c.find_product("42") is None


def test_token_redacted_everywhere(serve):
    """A server echoing the credentials (body, reason) must not leak them into our errors."""
    import base64
    basic = base64.b64encode((":" + TOKEN).encode()).decode()
    srv = serve(script((403, {"error": "Access denied for %s (%s) via Basic %s" % (TOKEN, "s3cr3t%2Btok%2Fen%3D%3D", basic)})))
    c, unused = client(srv.url)
    with pytest.raises(ThreescaleError) as err:
        c.get("/accounts/find.json", params={"username": TOKEN})
    exc = err.value
    assert "********" in str(exc)
    assert_no_token(str(exc), repr(exc), json.dumps(exc.to_result()), exc.path, json.dumps(exc.body))
    assert basic not in json.dumps(exc.to_result())


def test_token_redacted_from_transport_errors():
    c, unused = client("http://127.0.0.1:%d/%s" % (_closed_port(), TOKEN), retries=0)
    with pytest.raises(ThreescaleError) as err:
        c.get("/x.json")
    assert_no_token(str(err.value), json.dumps(err.value.to_result()))


def test_find_product_by_system_name_and_id(serve):
    services = {"services": [{"service": {"id": 3, "system_name": "api"}}, {"service": {"id": 7, "system_name": "granite"}}]}

    def app(method, path, query, form, headers):
        if path == "/admin/api/services.json":
            return 200, services, None
        if path == "/admin/api/services/7.json":
            return 200, {"service": {"id": 7, "system_name": "granite"}}, None
        return 404, {"status": "Not found"}, None
    srv = serve(app)
    c, unused = client(srv.url)
    assert c.find_product("granite")["id"] == 7
    assert c.find_product("7")["system_name"] == "granite"
    assert c.find_product("nope") is None
    assert len(srv.log) == 3


def test_non_json_answer_is_a_clear_error(serve):
    srv = serve(script((200, b"<html>Application is not available</html>")))
    c, unused = client(srv.url)
    with pytest.raises(ThreescaleError) as err:
        c.get("/services.json")
    assert "not JSON" in str(err.value) and "admin_url" in str(err.value) and len(srv.log) == 1


def test_bad_ca_bundle_is_a_clear_error(tmp_path):
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate")
    c, unused = client("https://127.0.0.1:%d" % _closed_port(), ca_path=str(bad))
    with pytest.raises(ThreescaleError) as err:
        c.get("/x.json")
    assert "Cannot load the CA bundle" in str(err.value) and str(bad) in str(err.value)


@pytest.mark.parametrize("ident, lookup, kind, request_path", [
    ("42", "auto", "id", "/admin/api/accounts/42.json"),
    ("42", "username", "username", "/admin/api/accounts/find.json?username=42"),
    ("dev@example.com", "auto", "email", "/admin/api/accounts/find.json?email=dev%40example.com"),
    ("dev", "auto", "username", "/admin/api/accounts/find.json?username=dev"),
    ("dev@corp", "username", "username", "/admin/api/accounts/find.json?username=dev%40corp"),  # RE_LOGIN_OK allows @
    ("12", "email", "email", "/admin/api/accounts/find.json?email=12"),
])
def test_account_lookup_kinds(serve, ident, lookup, kind, request_path):
    """Porta usernames may be all digits or hold '@' (app/lib/authentication.rb RE_LOGIN_OK)."""
    assert account_lookup_kind(ident, lookup) == kind
    srv = serve(script((200, {"account": {"id": 7}})))
    c, unused = client(srv.url)
    assert c.find_account(ident, lookup=lookup) == {"id": 7}
    assert srv.log[-1]["url"] == request_path


def test_account_lookup_id_needs_digits(serve):
    srv = serve(script((500, {"status": "unexpected"})))
    c, unused = client(srv.url)
    assert c.find_account("user1", lookup="id") is None and not srv.log  # no request for an impossible id


def test_create_503_is_resent_without_read_back(serve):
    """A 503 means porta did not process the POST: request() resends it, create() never reads back."""
    srv = serve(script((503, {"status": "unavailable"}), (201, {"account": {"id": 7}})))
    c, sleeps = client(srv.url, retries=2)
    found = []
    body, adopted = c.create("/signup.json", {"username": "u"}, find=lambda: found.append(1))
    assert body == {"account": {"id": 7}} and not adopted and not found and sleeps == [1.0]
    assert [r["method"] for r in srv.log] == ["POST", "POST"] and not c.recovered


def test_create_adopts_after_a_late_commit(serve):
    """Lost answer, read-back empty, the resent POST gets 422 (the first one was committed after the
    read-back): one more read-back adopts it.  Upstream: porta app/controllers/admin/api/signups_controller.rb."""
    srv = serve(script((None, None), (422, {"errors": {"username": ["has already been taken"]}})))
    c, sleeps = client(srv.url, retries=2)
    answers = [None, {"id": 9, "org_name": "u"}]
    body, adopted = c.create("/signup.json", {"username": "u"}, find=lambda: answers.pop(0), what="account u")
    assert adopted and body["id"] == 9 and len(srv.log) == 2 and sleeps == [1.0]
    assert "adopted the account u" in c.recovered[0] and "(id 9)" in c.recovered[0]


def test_create_422_without_lost_answer_is_raised(serve):
    srv = serve(script((422, {"errors": {"username": ["has already been taken"]}})))
    c, unused = client(srv.url, retries=2)
    with pytest.raises(ThreescaleError) as err:
        c.create("/signup.json", {"username": "u"}, find=lambda: {"id": 1})
    assert err.value.status == 422 and len(srv.log) == 1 and not c.recovered


def test_create_gives_up_after_retries(serve):
    srv = serve(script((502, b"Bad Gateway")))
    c, sleeps = client(srv.url, retries=2)
    with pytest.raises(ThreescaleError) as err:
        c.create("/x.json", {"a": 1}, find=lambda: None, what="thing")
    assert len(srv.log) == 3 and sleeps == [1.0, 2.0] and err.value.unanswered
    assert "no answer 3 times; the read-back found no thing, so nothing was created" in str(err.value)
