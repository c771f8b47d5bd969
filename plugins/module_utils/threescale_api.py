# -*- coding: utf-8 -*-
# Copyright: Contributors to the maas.threescale collection
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: Apache-2.0 OR GPL-3.0-or-later

"""Small client for the 3scale Account Management (admin) REST API ("porta").

Shared by every module of the collection.  Built on ansible.module_utils.urls.Request so it needs no
third-party package on the managed node.  The access token travels as the HTTP Basic password
(never in the URL), and is redacted from every message this file produces.

Retry policy (documented in the doc fragment too):
* connection refused / name resolution failures (nothing reached the server): every method;
* HTTP 429 and 503 (the server refused the request without processing it): every method;
* HTTP 502 / 504, read timeouts, connection resets (the request may have been processed):
  only GET, HEAD, PUT, PATCH and DELETE, never POST, so a retry cannot duplicate a create.
Backoff: ``backoff * 2 ** attempt`` seconds (capped at 30), or Retry-After when it is larger.

Creates that cannot double (``ThreescaleClient.create``): a POST that failed without an answer
(connection closed or reset, timeout, 502/504 from a router) may have been committed by porta.
``create`` then reads back with a finder chosen by the caller before the write (the unique username,
the (account, product) pair, the application name on the account...) and adopts what it finds;
it sends the POST again only when the read-back finds nothing.

Errors name the setting to fix: a refused token (HTTP 401, or 403 ``Access denied`` / token
permissions) names ``access_token``/``THREESCALE_ACCESS_TOKEN``, an unreachable host names
``admin_url``, a failed TLS verification names ``validate_certs``/``ca_path``/``THREESCALE_CA_BUNDLE``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import errno
import json
import socket
import ssl
import time

from ansible.module_utils.basic import AnsibleModule, env_fallback
from ansible.module_utils.common.text.converters import to_native, to_text
from ansible.module_utils.six.moves import http_client
from ansible.module_utils.six.moves.urllib.error import HTTPError, URLError
from ansible.module_utils.six.moves.urllib.parse import quote, urlencode, urlsplit
from ansible.module_utils.urls import ConnectionError as UrlsConnectionError, Request, make_context

try:  # Request.open takes a ready SSL context from ansible-core 2.17 on; 2.16 takes the CA file
    from inspect import signature
    _OPEN_TAKES_CONTEXT = "context" in signature(Request.open).parameters
except (ImportError, TypeError, ValueError):
    _OPEN_TAKES_CONTEXT = False

IDEMPOTENT_METHODS = frozenset(("GET", "HEAD", "PUT", "PATCH", "DELETE"))
RETRY_ANY_METHOD = frozenset((429, 503))
RETRY_IDEMPOTENT = frozenset((502, 504))
MAX_PER_PAGE = 500
REDACTED = "********"
# what porta's logs (and the lab's per-client counts) see as the caller of the admin API
USER_AGENT = "maas.threescale-ansible-collection"

THREESCALE_ARGSPEC = dict(
    admin_url=dict(type="str", required=True, fallback=(env_fallback, ["THREESCALE_ADMIN_URL"])),
    access_token=dict(type="str", required=True, no_log=True, fallback=(env_fallback, ["THREESCALE_ACCESS_TOKEN"])),
    validate_certs=dict(type="bool", default=True, fallback=(env_fallback, ["THREESCALE_VALIDATE_CERTS"])),
    ca_path=dict(type="path", fallback=(env_fallback, ["THREESCALE_CA_BUNDLE"])),
    request_timeout=dict(type="int", default=30),
    retries=dict(type="int", default=3),
    allow_insecure_http=dict(type="bool", default=False, fallback=(env_fallback, ["THREESCALE_ALLOW_INSECURE_HTTP"])),
)


def plain_http_remote(url):
    """Whether url is plain http:// to a host other than this one (a loopback address or localhost),
    so that a token sent to it would cross the network unencrypted."""
    if not url.lower().startswith("http://"):
        return False
    host = (urlsplit(url).hostname or "").lower()
    return not (host == "localhost" or host == "::1" or host.startswith("127."))


def insecure_url_problem(url, allowed):
    """Why the token may not be sent to url ("" when it may): a plain http:// admin URL of another host
    would carry the access token (HTTP Basic) unencrypted, so it needs allow_insecure_http."""
    if plain_http_remote(url) and not allowed:
        return ("admin_url %s is plain http: the access token would cross the network unencrypted, so nothing was "
                "sent and nothing was changed. Fix: use the tenant admin portal's https:// URL, or for a throwaway "
                "test tenant set allow_insecure_http (maas_admin_allow_insecure_http, or "
                "THREESCALE_ALLOW_INSECURE_HTTP=true)." % url)
    return ""


class ThreescaleError(Exception):
    """Any failure talking to the admin API.  ``status`` is None for transport errors."""

    def __init__(self, message, method=None, path=None, status=None, body=None, unanswered=False):
        super(ThreescaleError, self).__init__(message)
        self.message = message
        self.method = method
        self.path = path
        self.status = status
        self.body = body
        # True when the request may have been processed but no answer came back (timeout, reset,
        # connection closed, 502/504): a POST may have been committed.
        self.unanswered = unanswered
        self.after_lost_answer = False  # an earlier attempt of this request went unanswered

    def __str__(self):
        return self.message

    def to_result(self):
        return dict(msg=self.message, method=self.method, path=self.path, status=self.status, error=self.body)


def error_summary(body):
    """Human-readable text of a porta error body (``errors`` hash, ``error`` or ``status``)."""
    if isinstance(body, dict):
        errors = body.get("errors")
        if isinstance(errors, dict):
            return "; ".join("%s %s" % (k, ", ".join(to_text(m) for m in (v if isinstance(v, list) else [v])))
                             for k, v in sorted(errors.items()))
        if isinstance(body.get("error"), dict):
            return "; ".join("%s: %s" % (k, v) for k, v in sorted(body["error"].items()))
        for key in ("error", "status"):
            if body.get(key):
                return to_text(body[key])
        return json.dumps(body, sort_keys=True)
    return to_text(body or "").strip()[:500]


TOKEN_REFUSED = ("access denied", "access token")
UNANSWERED_STATUS = frozenset((502, 504))


def token_refused(status, body):
    """HTTP 401, or porta's 403 for a missing/invalid/expired token or one without the scope or rw permission.

    Porta answers a bad token with 403 ``{"error": "Access denied"}`` (contract section 2); a CanCan denial
    (``{"status": "Forbidden"}``, for example the users list without multiple_users) is not about the token.
    """
    if status == 401:
        return True
    if status != 403 or not isinstance(body, dict) or not isinstance(body.get("error"), str):
        return False
    return any(marker in body["error"].lower() for marker in TOKEN_REFUSED)


def _tls_failure(exc, reason):
    return isinstance(reason, ssl.SSLError) or isinstance(exc, (ssl.SSLError, UrlsConnectionError)) or \
        "CERTIFICATE_VERIFY_FAILED" in to_native(reason)


def _refused_before_sending(reason):
    """True when the TCP connection never reached the server (safe to retry even a POST)."""
    if isinstance(reason, socket.gaierror):
        return True
    if isinstance(reason, (ConnectionRefusedError,)):
        return True
    return isinstance(reason, OSError) and getattr(reason, "errno", None) in (errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH)


class ThreescaleClient(object):
    """Thin REST client; every method returns parsed JSON (or None for empty bodies)."""

    def __init__(self, admin_url, access_token, validate_certs=True, ca_path=None, request_timeout=30,
                 retries=3, backoff=1.0, sleep=time.sleep):
        self.base = admin_url.rstrip("/")
        self._token = access_token or ""
        self.validate_certs = validate_certs
        self.ca_path = ca_path
        self.timeout = request_timeout
        self.retries = max(0, int(retries))
        self.backoff = backoff
        self._sleep = sleep
        self.request_count = 0
        self.recovered = []  # what create() adopted after a lost answer (see create)
        self._auth = "Basic " + to_native(base64.b64encode((":" + self._token).encode("utf-8")))
        self._context = None  # one TLS context for all requests: building it costs ~30 ms each time
        self._http = Request(use_proxy=True, force=True, timeout=request_timeout, follow_redirects="none",
                             use_netrc=False, http_agent=USER_AGENT)

    def _tls_context(self):
        if self._context is None:  # urllib wants one even for http://
            try:
                self._context = make_context(cafile=self.ca_path, validate_certs=self.validate_certs)
            except (IOError, OSError, ssl.SSLError) as exc:
                raise ThreescaleError("Cannot load the CA bundle %s given as ca_path (or THREESCALE_CA_BUNDLE): %s; give "
                                      "a readable PEM file with the CA that signed the admin portal's certificate"
                                      % (self.ca_path, to_native(exc)))
        return self._context

    def _tls_args(self):
        """The TLS argument of Request.open: the SSL context (made once, with a clear error for a bad CA
        file), or on ansible-core 2.16 the CA file itself (checked the same way first)."""
        context = self._tls_context()
        return dict(context=context) if _OPEN_TAKES_CONTEXT else dict(ca_path=self.ca_path)

    # -- helpers -----------------------------------------------------------------------------
    def redact(self, text):
        """Remove the token (raw, URL-encoded and Basic-encoded) from any text."""
        text = to_text(text)
        if self._token:
            for form in (self._token, quote(self._token, safe=""), self._auth.split(" ", 1)[1]):
                text = text.replace(form, REDACTED)
        return text

    def redact_obj(self, obj):
        if isinstance(obj, dict):
            return dict((self.redact(k), self.redact_obj(v)) for k, v in obj.items())
        if isinstance(obj, list):
            return [self.redact_obj(v) for v in obj]
        return self.redact(obj) if isinstance(obj, (str, bytes)) else obj

    def _delay(self, attempt, retry_after=None):
        delay = min(30.0, self.backoff * (2 ** attempt))
        try:
            if retry_after is not None:
                delay = max(delay, min(60.0, float(retry_after)))
        except ValueError:
            pass  # HTTP-date form of Retry-After: keep our own backoff
        return delay

    @staticmethod
    def _url_path(path):
        if not path.startswith("/"):
            path = "/" + path
        if not path.startswith(("/admin/api/", "/lab/", "/stats/")):  # /stats/: the analytics API
            path = "/admin/api" + path
        return path

    def request(self, method, path, params=None, data=None, expected_404=False, raw=False):
        """Send one request.  ``params`` go to the query string, ``data`` form-encoded in the body.

        Returns the parsed JSON body (None when empty).  With ``expected_404`` a 404 returns None.
        With ``raw`` the body's bytes are returned unparsed (for a ``.xml`` path, e.g. the account list).
        """
        method = method.upper()
        path = self._url_path(path)
        url = self.base + path
        if params:
            url += "?" + urlencode(params, doseq=True)
        body = urlencode(data, doseq=True) if data is not None else None
        headers = {"Authorization": self._auth, "Accept": "application/xml" if path.endswith(".xml") else "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        attempt, unanswered_before = 0, False
        while True:
            retry, retry_after, failure = False, None, None
            self.request_count += 1
            try:
                resp = self._http.open(method, url, data=body, headers=headers, validate_certs=self.validate_certs,
                                       timeout=self.timeout, **self._tls_args())
                body_bytes = resp.read()
                if raw:
                    return body_bytes
                try:
                    return json.loads(body_bytes) if body_bytes and body_bytes.strip() else None
                except ValueError:
                    raise ThreescaleError("%s %s answered with something that is not JSON; is admin_url the tenant "
                                          "admin portal (https://<tenant>-admin.<domain>)?" % (method, path),
                                          method=method, path=self.redact(path), status=resp.getcode())
            except HTTPError as exc:
                err_raw = exc.read() if hasattr(exc, "read") else b""
                try:
                    err_body = json.loads(err_raw) if err_raw else None
                except ValueError:
                    err_body = to_text(err_raw, errors="replace")[:500]
                if exc.code == 404 and (expected_404 or (method == "DELETE" and unanswered_before)):
                    return None  # a DELETE whose first answer was lost: porta had deleted it
                if exc.code in RETRY_ANY_METHOD or (exc.code in RETRY_IDEMPOTENT and method in IDEMPOTENT_METHODS):
                    retry = True
                    retry_after = exc.headers.get("Retry-After") if exc.headers else None
                summary = error_summary(err_body) or exc.reason
                if token_refused(exc.code, err_body):
                    message = ("access_token (or THREESCALE_ACCESS_TOKEN) was refused by %s: %s %s answered HTTP %s %s. "
                               "Give a valid, unexpired token with the account_management scope and read-write "
                               "permission (on OpenShift: ADMIN_ACCESS_TOKEN of the system-seed Secret), and check "
                               "that admin_url is the tenant admin portal (https://<tenant>-admin.<domain>)"
                               % (self.base, method, path, exc.code, summary))
                else:
                    message = "%s %s failed with HTTP %s: %s" % (method, path, exc.code, summary)
                failure = ThreescaleError(self.redact(message), method=method, path=self.redact(path), status=exc.code,
                                          body=self.redact_obj(err_body), unanswered=exc.code in UNANSWERED_STATUS)
            except ThreescaleError:
                raise
            except (URLError, UrlsConnectionError, socket.timeout, ssl.SSLError, OSError,
                    http_client.HTTPException) as exc:
                failure = self._transport_failure(method, path, exc)
                retry = not failure.tls and (failure.refused or method in IDEMPOTENT_METHODS)
            failure.after_lost_answer = unanswered_before
            unanswered_before = unanswered_before or failure.unanswered
            if not retry or attempt >= self.retries:
                if retry and attempt:
                    failure.message += " (gave up after %d attempts)" % (attempt + 1)
                raise failure
            self._sleep(self._delay(attempt, retry_after))
            attempt += 1

    def _transport_failure(self, method, path, exc):
        """ThreescaleError for a request that got no HTTP answer, naming the setting to fix."""
        reason = getattr(exc, "reason", exc)
        host = urlsplit(self.base).netloc or self.base
        tls = _tls_failure(exc, reason)
        refused = not tls and _refused_before_sending(reason)
        if tls:
            if self.validate_certs:
                fix = ("give the CA that signed its certificate with ca_path (or the THREESCALE_CA_BUNDLE environment "
                       "variable), for example the cluster ingress CA; validate_certs: false (THREESCALE_VALIDATE_CERTS"
                       "=false) turns verification off, for labs only")
                if self.ca_path:
                    fix = "ca_path (or THREESCALE_CA_BUNDLE) is %s: %s" % (self.ca_path, fix)
            else:
                fix = "check admin_url (it must be the https:// URL of the tenant admin portal)"
            message = ("%s %s failed: TLS with %s (admin_url) failed: %s; %s"
                       % (method, path, host, to_native(reason), fix))
        elif refused:
            message = ("%s %s failed: cannot reach admin_url %s (host %s): %s; check admin_url (or THREESCALE_ADMIN_URL) "
                       "and that the host can be reached from where the module runs"
                       % (method, path, self.base, host, to_native(reason)))
        else:
            message = ("%s %s failed: no answer from admin_url %s (host %s): %s"
                       % (method, path, self.base, host, to_native(reason) or type(reason).__name__))
        failure = ThreescaleError(self.redact(message), method=method, path=self.redact(path),
                                  unanswered=not tls and not refused)
        failure.tls, failure.refused = tls, refused
        return failure

    def create(self, path, data, find, what="object"):
        """POST ``data`` to ``path`` so that a lost answer cannot create the object twice.

        ``find()`` reads back (GETs only) and returns the object the POST would create, or None; it must
        identify it by what the caller chose before writing (a unique username, the (account, product)
        pair, the application name on the account).  Returns ``(body, adopted)``: ``body`` is porta's
        answer, or ``find()``'s object when a POST lost its answer and porta had committed it
        (``adopted`` True, and the event is recorded in ``self.recovered``).

        Retries here come on top of ``request``'s own (429, 503, refused connections): only a POST that
        went unanswered (timeout, reset or closed connection, 502/504) is followed by a read-back, and the
        POST is sent again only when the read-back found nothing, at most ``retries`` times.  A 409/422
        answer to such a repeated POST (porta committed the first one after the read-back) is followed
        by one more read-back.
        """
        attempt, lost = 0, 0
        while True:
            try:
                return self.request("POST", path, data=data), False
            except ThreescaleError as exc:
                if lost and exc.status in (409, 422):
                    found = find()
                    if found:
                        return self._adopt(path, what, found, lost)
                if not exc.unanswered:
                    raise
                lost += 1
                found = find()
                if found:
                    return self._adopt(path, what, found, lost)
                if attempt >= self.retries:
                    exc.message += (" (no answer %d times; the read-back found no %s, so nothing was created)"
                                    % (lost, what))
                    raise
            self._sleep(self._delay(attempt))
            attempt += 1

    def transition(self, path, done):
        """PUT a state-machine event (suspend, resume, activate...) that survives a lost answer.

        ``request`` resends a PUT that went unanswered; if porta had applied the event, the resent one is
        refused with 422 (no transition from the new state).  Then ``done()`` reads the object back and
        returns its body when the event took effect (the wanted state holds), else None and the 422 stands.
        """
        try:
            return self.put(path)
        except ThreescaleError as exc:
            if exc.status == 422 and exc.after_lost_answer:
                body = done()
                if body:
                    self.recovered.append("PUT %s lost its answer; 3scale had applied it" % self._url_path(path))
                    return body
            raise

    def _adopt(self, path, what, found, lost):
        self.recovered.append("POST %s lost its answer %d time(s); adopted the %s that 3scale had created (id %s)"
                              % (self._url_path(path), lost, what, found.get("id") if isinstance(found, dict) else "?"))
        return found, True

    def get(self, path, params=None, expected_404=False):
        return self.request("GET", path, params=params, expected_404=expected_404)

    def post(self, path, data=None):
        return self.request("POST", path, data=data or {})

    def put(self, path, data=None):
        return self.request("PUT", path, data=data or {})

    def delete(self, path):
        return self.request("DELETE", path)

    def paginate(self, path, collection, entity, params=None, per_page=MAX_PER_PAGE):
        """Every item of a paginated collection: ``{"<collection>": [{"<entity>": {...}}], "metadata": ...}``.

        Stops on a short page, or when ``metadata`` says the last page was read.  Porta omits
        metadata when everything fits one page, so a full page without metadata costs one extra
        (empty) request rather than silently truncating.
        """
        items, page = [], 1
        while True:
            query = dict(params or {}, page=page, per_page=per_page)
            data = self.get(path, params=query) or {}
            chunk = [unwrap(i, entity) for i in data.get(collection) or []]
            items.extend(chunk)
            meta = data.get("metadata") or {}
            if len(chunk) < per_page or (meta and int(meta.get("current_page", page)) >= int(meta.get("total_pages", page))):
                return items
            page += 1

    def list(self, path, collection, entity, params=None):
        """Items of a non-paginated collection."""
        data = self.get(path, params=params) or {}
        return [unwrap(i, entity) for i in data.get(collection) or []]

    # -- lookups shared by several modules ------------------------------------------------------
    def find_product(self, product):
        """Product (service) by numeric id or system_name; None when absent."""
        ident = to_text(product).strip()
        if ident.isdigit():
            data = self.get("/services/%s.json" % ident, expected_404=True)
            return unwrap(data, "service") if data else None
        for service in self.paginate("/services.json", "services", "service"):
            if service.get("system_name") == ident:
                return service
        return None

    def find_account(self, ident, lookup="auto"):
        """Developer account by numeric id, username or email (``accounts/find``); None when absent.

        ``lookup`` (see ``account_lookup_kind``): ``auto`` (digits = id, with ``@`` = email, else
        username), ``id``, ``username`` or ``email``.  Porta accepts all-digit usernames and ``@`` in
        usernames (``RE_LOGIN_OK``), so ``auto`` can guess wrong; the explicit kinds cannot.
        """
        ident = to_text(ident).strip()
        kind = account_lookup_kind(ident, lookup)
        if kind == "id":
            if not ident.isdigit():
                return None
            data = self.get("/accounts/%s.json" % ident, expected_404=True)
        else:
            data = self.get("/accounts/find.json", params={kind: ident}, expected_404=True)
        return unwrap(data, "account") if data else None

    def account_users(self, account_id, role=None):
        """Users of a developer account (needs the tenant's multiple_users switch, else HTTP 403)."""
        return self.list("/accounts/%s/users.json" % account_id, "users", "user",
                         params={"role": role} if role else None)


ACCOUNT_LOOKUPS = ("auto", "id", "username", "email")


def account_lookup_kind(ident, lookup="auto"):
    """How ``find_account`` resolves ``ident``: ``id``, ``username`` or ``email``."""
    if lookup and lookup != "auto":
        return lookup
    ident = to_text(ident).strip()
    if ident.isdigit():
        return "id"
    return "email" if "@" in ident else "username"


def unwrap(item, entity):
    """``{"service": {...}}`` -> ``{...}`` (tolerates already-unwrapped items)."""
    if isinstance(item, dict) and isinstance(item.get(entity), dict) and len(item) == 1:
        return item[entity]
    return item


def strip_links(obj):
    return dict((k, v) for k, v in (obj or {}).items() if k != "links")


class ThreescaleModule(AnsibleModule):
    """AnsibleModule with the shared connection options and a ready client."""

    def __init__(self, argument_spec=None, **kwargs):
        spec = dict(THREESCALE_ARGSPEC)
        spec.update(argument_spec or {})
        kwargs.setdefault("supports_check_mode", True)
        super(ThreescaleModule, self).__init__(argument_spec=spec, **kwargs)
        url = self.params["admin_url"].strip()
        if not url.lower().startswith(("https://", "http://")):
            self.fail_json(msg="admin_url must start with https:// (the tenant admin portal URL, e.g. "
                               "https://3scale-admin.apps.example.com); got %r" % url)
        problem = insecure_url_problem(url, self.params["allow_insecure_http"])
        if problem:
            self.fail_json(msg=problem)
        if plain_http_remote(url):
            self.warn("admin_url %s is plain http: the access token crosses the network unencrypted "
                      "(allow_insecure_http is set)." % url)
        if self.params["retries"] < 0 or self.params["request_timeout"] <= 0:
            self.fail_json(msg="retries must be >= 0 and request_timeout > 0")
        self.client = ThreescaleClient(url, self.params["access_token"], validate_certs=self.params["validate_certs"],
                                       ca_path=self.params["ca_path"], request_timeout=self.params["request_timeout"],
                                       retries=self.params["retries"])

    def fail_api(self, exc, **extra):
        result = exc.to_result() if isinstance(exc, ThreescaleError) else dict(msg=self.client.redact(to_native(exc)))
        result.update(extra)
        self.fail_json(**result)

    def run(self, func):
        """Run ``func()`` and turn API errors into fail_json; ``func`` returns the exit_json kwargs."""
        try:
            result = func()
        except ThreescaleError as exc:
            if self.client.recovered:
                exc.message += "; earlier in this task: " + "; ".join(self.client.recovered)
            self.fail_api(exc)
        if self.client.recovered:
            result["recovered_writes"] = list(self.client.recovered)
        self.exit_json(**result)
