"""The operator's porta admin API client: Basic auth with an empty user and the token as password,
form-encoded bodies, JSON answers — what 3scale-porta-go-client sends.

Upstream: 3scale-porta-go-client v0.12.0 client/client.go (auth, error handling).
"""
from __future__ import annotations

import base64
import http.client
import json
import logging
import os
import re
import ssl
import urllib.parse
from typing import Any

from ..kube.client import KeepAlive
from .errors import PortaError

LOG = logging.getLogger("maaslab.operator")
DEBUG_HTTP = os.environ.get("THREESCALE_DEBUG") == "1"


class PortaClient:
    def __init__(self, admin_url: str, token: str, ssl_context: ssl.SSLContext | None, timeout: float = 30):
        u = urllib.parse.urlsplit(admin_url)
        self.https = u.scheme == "https"
        self.host, self.port = u.hostname, u.port or (443 if self.https else 80)
        self.prefix = u.path.rstrip("/")
        self.auth = "Basic " + base64.b64encode((":" + token).encode()).decode()
        self.ssl_context, self.timeout = ssl_context, timeout
        self.pool = KeepAlive(self._conn)

    def _conn(self) -> http.client.HTTPConnection:
        if self.https:
            return http.client.HTTPSConnection(self.host, self.port, timeout=self.timeout, context=self.ssl_context)
        return http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)

    def call(self, method: str, path: str, params: dict | None = None) -> Any:
        # no User-Agent of its own upstream: Go's net/http default goes out (porta's exclude_operator keys on it)
        headers = {"Authorization": self.auth, "Accept": "application/json", "User-Agent": "Go-http-client/1.1"}
        body = None
        if params is not None and method == "GET":
            path += "?" + urllib.parse.urlencode(params, doseq=True)
        elif params is not None:
            body = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None}, doseq=True).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        status, raw, _retry_after = self.pool.send(method, self.prefix + path, body, headers)
        if DEBUG_HTTP:  # THREESCALE_DEBUG=1, as the real operator; never logs the token
            LOG.info("porta %s %s -> %s", method, path.split("?")[0], status)
        if status >= 400:
            raise PortaError(status, raw.decode(errors="replace"))
        return json.loads(raw) if raw.strip() else None

    def list(self, path: str, plural: str, singular: str, paginated: bool = True) -> list[dict]:
        out, page = [], 1
        while True:
            resp = self.call("GET", path, {"page": page, "per_page": 500} if paginated else None)
            out += unwrap(resp, plural, singular)
            meta = resp.get("metadata") if isinstance(resp, dict) else None
            if not meta or page >= int(meta.get("total_pages") or 1):
                return out
            page += 1


def unwrap(resp: Any, plural: str, singular: str) -> list[dict]:
    """porta collections: {"plural": [{"singular": {...}}]} (backend_usages: a bare array)."""
    items = resp.get(plural, []) if isinstance(resp, dict) else (resp or [])
    out = []
    for i in items:
        if isinstance(i, dict) and singular not in i and len(i) == 1 and isinstance(next(iter(i.values())), dict):
            i = {singular: next(iter(i.values()))}  # e.g. a service's metrics list wraps methods as "method"
        out.append(i.get(singular, i) if isinstance(i, dict) else i)
    return out


def strip_suffix(system_name: str) -> str:
    # porta shows backend-level metric system names as "<name>.<backend id>"
    return re.sub(r"\.\d+$", "", system_name or "")
