"""A tiny Kubernetes API client (stdlib only), shared by the KServe stand-in and the lab orchestrator.

    kc = KubeClient("https://127.0.0.1:6443", token="…", ca_file="ca.crt")
    BACKENDS = Resource("capabilities.3scale.net/v1beta1", "backends")
    kc.create(BACKENDS, {...})                    # namespace taken from metadata.namespace
    obj = kc.get(BACKENDS, "3scale", "tinyllama")  # None when it does not exist
    kc.update(BACKENDS, obj); kc.update_status(BACKENDS, obj)   # PUT (resourceVersion checked)
    kc.patch(BACKENDS, "3scale", "tinyllama", {"spec": {...}})   # merge patch
    kc.delete(BACKENDS, "3scale", "tinyllama")     # True if it existed
    items, rv = kc.list(BACKENDS, "3scale")
    for etype, obj in kc.watch(BACKENDS, "3scale", resource_version=rv, timeout_seconds=60): ...

Errors are raised as `KubeError` (`.status` = HTTP code, `.reason` from the Status body).
A watch that the server ends with an ERROR event raises KubeError with that code (410 = Gone:
relist). Plain calls reuse one keep-alive connection per thread (`KeepAlive`); a watch always
gets its own connection.
"""
from __future__ import annotations

import http.client
import json
import select
import ssl
import threading
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any
from collections.abc import Iterator


@dataclass(frozen=True)
class Resource:
    api_version: str          # "v1" (core) or "group/version"
    plural: str
    namespaced: bool = True

    def path(self, namespace: str | None = None, name: str | None = None, sub: str | None = None) -> str:
        base = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{urllib.parse.quote(namespace)}"
        base += f"/{self.plural}"
        if name:
            base += f"/{urllib.parse.quote(name)}"
        if sub:
            base += f"/{sub}"
        return base


SECRETS = Resource("v1", "secrets")
NAMESPACES = Resource("v1", "namespaces", namespaced=False)
CRDS = Resource("apiextensions.k8s.io/v1", "customresourcedefinitions", namespaced=False)


class KeepAlive:
    """One persistent HTTP(S) connection per thread (TLS handshakes cost more than lab requests).

    Like Go's net/http Transport (transport.go `shouldRetryRequest`, `Request.isReplayable`): an idle
    connection the server has closed is noticed before reuse and replaced; a request is sent again
    once on a new connection only when it could not have been processed (sending it failed) or when
    it is replayable (GET/HEAD/OPTIONS/TRACE). A POST/PUT/PATCH/DELETE whose answer was lost is not
    re-sent: the server may have committed it.
    """

    REPLAYABLE = ("GET", "HEAD", "OPTIONS", "TRACE")

    def __init__(self, make_conn):
        self.make_conn = make_conn
        self.local = threading.local()

    @staticmethod
    def _closed_by_peer(conn) -> bool:
        sock = getattr(conn, "sock", None)
        if sock is None:
            return False
        try:
            readable, _, _ = select.select([sock], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(readable)     # an idle keep-alive connection is readable only when the server hung up

    def send(self, method: str, path: str, body: bytes | None, headers: dict) -> tuple[int, bytes, int | None]:
        for attempt in (0, 1):
            conn = getattr(self.local, "conn", None)
            if conn is not None and self._closed_by_peer(conn):
                conn.close()
                conn = self.local.conn = None
            reused = conn is not None
            if conn is None:
                conn = self.local.conn = self.make_conn()
            sent = False
            try:
                conn.request(method, path, body=body, headers=headers)
                sent = True
                resp = conn.getresponse()
                raw = resp.read()
            except (http.client.RemoteDisconnected, http.client.CannotSendRequest, BrokenPipeError,
                    ConnectionResetError):
                conn.close()
                self.local.conn = None
                if attempt == 0 and ((reused and not sent) or (reused and method in self.REPLAYABLE)):
                    continue
                raise
            except Exception:
                conn.close()
                self.local.conn = None
                raise
            if resp.will_close:
                conn.close()
                self.local.conn = None
            retry_after = resp.getheader("Retry-After")
            return resp.status, raw, int(retry_after) if retry_after and retry_after.isdigit() else None
        raise AssertionError("unreachable")


class KubeError(Exception):
    def __init__(self, status: int, body: Any = None):
        self.status = status
        self.body = body
        self.reason = body.get("reason", "") if isinstance(body, dict) else ""
        msg = body.get("message") if isinstance(body, dict) else (body or "")
        super().__init__(f"{status} {self.reason}: {msg}".strip())


class KubeClient:
    def __init__(self, base_url: str, token: str | None = None, ca_file: str | None = None,
                 insecure: bool = False, timeout: float = 30.0):
        u = urllib.parse.urlsplit(base_url)
        self.https = u.scheme == "https"
        self.host, self.port = u.hostname, u.port or (443 if self.https else 80)
        self.token = token
        self.timeout = timeout
        self.ssl_context = None
        if self.https:
            self.ssl_context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
            if insecure:
                self.ssl_context.check_hostname = False
                self.ssl_context.verify_mode = ssl.CERT_NONE
        self._pool = KeepAlive(lambda: self._conn(self.timeout))

    # -- transport -----------------------------------------------------------------------
    def _conn(self, timeout: float | None) -> http.client.HTTPConnection:
        if self.https:
            return http.client.HTTPSConnection(self.host, self.port, timeout=timeout, context=self.ssl_context)
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def _headers(self, content_type: str | None) -> dict:
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if content_type:
            headers["Content-Type"] = content_type
        return headers

    def _send(self, method: str, path: str, body: Any = None, params: dict | None = None,
              content_type: str = "application/json", timeout: float | None = None):
        """A request on a connection of its own (watch streams); returns (conn, response)."""
        if params:
            path += "?" + urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
        headers = self._headers(content_type if body is not None else None)
        data = None if body is None else json.dumps(body).encode()
        conn = self._conn(timeout or self.timeout)
        try:
            conn.request(method, path, body=data, headers=headers)
        except Exception:
            conn.close()
            raise
        return conn, conn.getresponse()

    def request(self, method: str, path: str, body: Any = None, params: dict | None = None,
                content_type: str = "application/json") -> Any:
        """One call; returns the decoded JSON body, raises KubeError on status >= 400."""
        if params:
            path += "?" + urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
        data = None if body is None else json.dumps(body).encode()
        headers = self._headers(content_type if body is not None else None)
        # Like client-go (rest/request.go, retry.go): a 429 with Retry-After (a watch cache still
        # initialising, API priority and fairness) is not processed: wait and send again, up to 10 times.
        for _attempt in range(10):
            status, raw, retry_after = self._pool.send(method, path, data, headers)
            if status != 429 or retry_after is None:
                break
            time.sleep(min(retry_after, 10))
        try:
            obj = json.loads(raw) if raw else None
        except ValueError:
            obj = raw.decode(errors="replace")
        if status >= 400:
            raise KubeError(status, obj)
        return obj

    # -- verbs ---------------------------------------------------------------------------
    def get(self, res: Resource, namespace: str | None, name: str, sub: str | None = None) -> dict | None:
        try:
            return self.request("GET", res.path(namespace, name, sub))
        except KubeError as e:
            if e.status == 404:
                return None
            raise

    def list(self, res: Resource, namespace: str | None = None, label_selector: str | None = None,
             field_selector: str | None = None) -> tuple[list[dict], str]:
        out = self.request("GET", res.path(namespace), params={
            "labelSelector": label_selector, "fieldSelector": field_selector})
        return out.get("items") or [], (out.get("metadata") or {}).get("resourceVersion", "")

    def create(self, res: Resource, obj: dict, namespace: str | None = None) -> dict:
        ns = namespace or (obj.get("metadata") or {}).get("namespace")
        return self.request("POST", res.path(ns), obj)

    def update(self, res: Resource, obj: dict) -> dict:
        md = obj["metadata"]
        return self.request("PUT", res.path(md.get("namespace"), md["name"]), obj)

    def update_status(self, res: Resource, obj: dict) -> dict:
        md = obj["metadata"]
        return self.request("PUT", res.path(md.get("namespace"), md["name"], "status"), obj)

    def patch(self, res: Resource, namespace: str | None, name: str, patch: dict, sub: str | None = None) -> dict:
        return self.request("PATCH", res.path(namespace, name, sub), patch,
                            content_type="application/merge-patch+json")

    def delete(self, res: Resource, namespace: str | None, name: str) -> bool:
        try:
            self.request("DELETE", res.path(namespace, name), {"kind": "DeleteOptions", "apiVersion": "v1"})
            return True
        except KubeError as e:
            if e.status == 404:
                return False
            raise

    def watch(self, res: Resource, namespace: str | None = None, resource_version: str | None = None,
              timeout_seconds: int = 60, field_selector: str | None = None) -> Iterator[tuple[str, dict]]:
        """Yield (type, object) until the server closes the stream (timeoutSeconds).

        BOOKMARK events are yielded too (their object carries only metadata.resourceVersion), so a
        caller can resume from the newest resourceVersion. An ERROR event raises KubeError.
        """
        params = {"watch": "true", "allowWatchBookmarks": "true", "timeoutSeconds": str(timeout_seconds),
                  "resourceVersion": resource_version or None, "fieldSelector": field_selector}
        # socket timeout a little above the server-side one so a dead server is noticed
        conn, resp = self._send("GET", res.path(namespace), params=params, timeout=timeout_seconds + 15)
        try:
            if resp.status >= 400:
                raw = resp.read()
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = raw.decode(errors="replace")
                raise KubeError(resp.status, body)
            while True:
                line = resp.readline()
                if not line:
                    return
                line = line.strip()
                if not line:
                    continue
                ev = json.loads(line)
                if ev.get("type") == "ERROR":
                    st = ev.get("object") or {}
                    raise KubeError(int(st.get("code") or 500), st)
                yield ev.get("type", ""), ev.get("object") or {}
        finally:
            conn.close()
