"""3scale operator emulator: the capabilities controllers for Backend, Product, ActiveDoc and
ProxyConfigPromote, following /work/shared/reference/threescale-operator/CONTRACT.md.

Like the real operator it only talks HTTP: it WATCHes its kinds on the lab's Kubernetes API
(`maaslab.kubeclient`) and syncs 3scale through porta's admin REST API (Basic auth, empty user,
token as password — what porta-go-client sends). One controller per kind = one watch thread + one
worker thread + a rate-limited work queue (per-item exponential backoff 5 ms doubling; the cap is
`settings["operator_backoff_cap"]`, default 30 s instead of controller-runtime's 1000 s so lab
waits stay short). Controllers watch only their own kind, so a dependent CR (Product waiting for a
Backend) wakes up only on its backoff, as upstream.
"""
from __future__ import annotations

import base64
import copy
import heapq
import http.client
import json
import logging
import os
import re
import socket
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any
from collections.abc import Callable

import yaml

from .context import LabContext, now_iso
from .kube.client import SECRETS, KeepAlive, KubeClient, KubeError, Resource

LOG = logging.getLogger("maaslab.operator")
DEBUG_HTTP = os.environ.get("THREESCALE_DEBUG") == "1"

GROUP = "capabilities.3scale.net/v1beta1"
BACKENDS = Resource(GROUP, "backends")
PRODUCTS = Resource(GROUP, "products")
ACTIVEDOCS = Resource(GROUP, "activedocs")
PCPS = Resource(GROUP, "proxyconfigpromotes")
APIMANAGERS = Resource("apps.3scale.net/v1alpha1", "apimanagers")
BACKEND_FINALIZER = "backend.capabilities.3scale.net/finalizer"
PRODUCT_FINALIZER = "product.capabilities.3scale.net/finalizer"
PROMOTED_MSG = ("3scale product has been successfully promoted, any further interactions with this CR "
                "(apart from deletion) won't be applied")
NO_CHANGES_TAIL = ("no product changes detected. Delete this proxyConfigPromote CR, then introduce changes "
                   "to configuration, and then create a new proxyConfigPromote CR")
REQUEUE = "requeue"


class Invalid(Exception):
    """Spec error: Invalid=True, no requeue until the CR changes."""


class ProviderLookupError(Exception):
    """LookupProviderAccount failed: the reconcile stops before writing any status."""


class Orphan(Exception):
    """A dependency is not ready: Orphan=True, requeue with backoff."""


class PortaError(Exception):
    def __init__(self, status: int, body: str):
        self.status, self.body = status, body
        # the wording of porta-go-client's ApiErr, which the real operator puts into conditions
        super().__init__(f"error calling 3scale system - reason: {body} - code: {status}")


# ---------------------------------------------------------------------------------------------
# porta admin API client
# ---------------------------------------------------------------------------------------------
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
        headers = {"Authorization": self.auth, "Accept": "application/json"}
        body = None
        if params is not None and method == "GET":
            path += "?" + urllib.parse.urlencode(params, doseq=True)
        elif params is not None:
            body = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None}, doseq=True).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        status, raw = self.pool.send(method, self.prefix + path, body, headers)
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


# ---------------------------------------------------------------------------------------------
# work queue with per-item exponential backoff (client-go's ItemExponentialFailureRateLimiter)
# ---------------------------------------------------------------------------------------------
class WorkQueue:
    def __init__(self, base: float = 0.005, cap: float = 30.0):
        self.base, self.cap = base, cap
        self._heap: list[tuple[float, str]] = []
        self._due: dict[str, float] = {}
        self._failures: dict[str, int] = {}
        self._cv = threading.Condition()
        self.closed = False

    def close(self) -> None:
        with self._cv:
            self.closed = True
            self._cv.notify_all()

    def add(self, key: str, delay: float = 0.0) -> None:
        with self._cv:
            due = time.monotonic() + delay
            if key in self._due and self._due[key] <= due:
                return
            self._due[key] = due
            heapq.heappush(self._heap, (due, key))
            self._cv.notify()

    def add_rate_limited(self, key: str) -> float:
        with self._cv:
            n = self._failures.get(key, 0)
            self._failures[key] = n + 1
        delay = min(self.base * (2 ** n), self.cap)
        self.add(key, delay)
        return delay

    def forget(self, key: str) -> None:
        with self._cv:
            self._failures.pop(key, None)

    def get(self, timeout: float) -> str | None:
        end = time.monotonic() + timeout
        with self._cv:
            while not self.closed:
                now = time.monotonic()
                while self._heap and self._due.get(self._heap[0][1]) != self._heap[0][0]:
                    heapq.heappop(self._heap)  # superseded entry
                if self._heap and self._heap[0][0] <= now:
                    _, key = heapq.heappop(self._heap)
                    del self._due[key]
                    return key
                wait = end - now
                if self._heap:
                    wait = min(wait, self._heap[0][0] - now)
                if wait <= 0 and now >= end:
                    return None
                self._cv.wait(max(wait, 0.001))
            return None


class Controller:
    """Watch one kind in one namespace and feed a worker that calls reconcile(namespace, name)."""

    def __init__(self, op: Operator, kind: str, res: Resource, reconcile: Callable[[str, str], Any]):
        self.op, self.kind, self.res, self.reconcile = op, kind, res, reconcile
        self.queue = WorkQueue(cap=float(op.ctx.settings.get("operator_backoff_cap", 30.0)))
        self.threads: list[threading.Thread] = []

    def start(self) -> None:
        for target, name in ((self._watch_loop, "watch"), (self._work_loop, "worker")):
            t = threading.Thread(target=target, name=f"operator-{self.kind}-{name}", daemon=True)
            t.start()
            self.threads.append(t)

    def _watch_loop(self) -> None:
        ns, stop, rv, pause = self.op.namespace, self.op.ctx.stopping, None, 0.05
        while not stop.is_set():
            try:
                if rv is None:  # (re)list: every existing object gets reconciled
                    items, rv = self.op.kube.list(self.res, ns)
                    for it in items:
                        self.queue.add(it["metadata"]["name"])
                for etype, obj in self.op.kube.watch(self.res, ns, resource_version=rv, timeout_seconds=20):
                    md = obj.get("metadata") or {}
                    rv = md.get("resourceVersion") or rv
                    if etype in ("ADDED", "MODIFIED", "DELETED") and md.get("name"):
                        self.queue.add(md["name"])
                    if stop.is_set():
                        return
                pause = 0.05
            except KubeError as e:
                if e.status == 410:  # resourceVersion too old: relist
                    rv = None
                    continue
                LOG.warning("%s watch: %s", self.kind, e)
                stop.wait(pause)
                pause = min(pause * 2, 5.0)
            except (OSError, http.client.HTTPException, ValueError) as e:
                if stop.is_set():
                    return
                LOG.debug("%s watch interrupted: %s", self.kind, e)
                stop.wait(pause)
                pause = min(pause * 2, 5.0)

    def _work_loop(self) -> None:
        stop = self.op.ctx.stopping
        while not stop.is_set():
            name = self.queue.get(timeout=0.5)
            if name is None:
                continue
            delay = float(self.op.ctx.settings.get("reconcile_delay") or 0) + float(self.op.fault().get("delay") or 0)
            if delay and stop.wait(delay):
                return
            try:
                result = self.reconcile(self.op.namespace, name)
            except Exception as e:  # noqa: BLE001 - every error is retried with backoff
                d = self.queue.add_rate_limited(name)
                LOG.info("%s %s/%s: %s (retry in %.3fs)", self.kind, self.op.namespace, name, e, d,
                         exc_info=not isinstance(e, (PortaError, KubeError, ProviderLookupError, RuntimeError)))
                continue
            if result == REQUEUE:
                self.queue.add_rate_limited(name)
            else:
                self.queue.forget(name)


# ---------------------------------------------------------------------------------------------
# helpers on CRs
# ---------------------------------------------------------------------------------------------
def cond_true(obj: dict, ctype: str) -> bool:
    return any(c.get("type") == ctype and c.get("status") == "True"
               for c in (obj.get("status") or {}).get("conditions") or [])


def cond_message(obj: dict, ctype: str) -> str:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == ctype:
            return c.get("message") or ""
    return ""


def sync_message(what: str, spec: dict, e: Exception) -> str:
    if isinstance(e, PortaError):
        return f"error sync {what} [{spec.get('systemName')}]: {e}"
    return str(e) or repr(e)


def camel_to_snake(s: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", s).lower()


def validate_metrics(spec: dict) -> tuple[list[str], set[str]]:
    """Operator-side metric/method checks shared by Backend and Product; returns (errors, names)."""
    errs = []
    metrics, methods = spec.get("metrics") or {}, spec.get("methods") or {}
    if not metrics:
        errs.append("spec.metrics: Required value: metrics must not be empty")
    elif "hits" not in metrics:
        errs.append('spec.metrics: Invalid value: "hits": metrics must contain "hits"')
    for dup in sorted(set(metrics) & set(methods)):
        errs.append(f'spec.methods: Invalid value: "{dup}": metric and method system names must be unique')
    friendly: dict[str, str] = {}
    for sn, m in list(metrics.items()) + list(methods.items()):
        fn = (m or {}).get("friendlyName", "")
        if fn in friendly and friendly[fn] != sn:
            errs.append(f'spec.metrics: Invalid value: "{fn}": friendly names must be unique')
        friendly[fn] = sn
    names = set(metrics) | set(methods)
    for i, r in enumerate(spec.get("mappingRules") or []):
        if r.get("metricMethodRef") not in names:
            errs.append(f'spec.mappingRules[{i}].metricMethodRef: Invalid value: "{r.get("metricMethodRef")}": '
                        "metric or method not found")
    return errs, names


def check_openapi(raw: bytes) -> dict:
    """Parse + validate an OpenAPI document roughly as kin-openapi v0.94.0 (3.0.x only) would."""
    try:
        doc = json.loads(raw)
    except ValueError:
        try:
            doc = yaml.safe_load(raw)
        except yaml.YAMLError as e:
            raise Invalid(f"failed to unmarshal data: {str(e).splitlines()[0]}") from None
    if not isinstance(doc, dict):
        raise Invalid("failed to unmarshal data: json error: cannot unmarshal into openapi3.T: not an object")
    version = doc.get("openapi")
    if not isinstance(version, str) or not version:
        raise Invalid("value of openapi must be a non-empty string")
    # 3.1 (JSON Schema 2020-12) idioms break kin-openapi's 3.0 types: first at unmarshal, then at validation
    problem = _first_31_construct(doc)
    if problem:
        raise Invalid(problem)
    if not re.match(r"^3\.0\.\d+$", version):
        raise Invalid(f'unsupported openapi version "{version}": only OpenAPI 3.0.x is supported')
    if not isinstance(doc.get("info"), dict):
        raise Invalid("value of info must be an object")
    if not isinstance(doc.get("paths"), dict):
        raise Invalid("value of paths must be an object")
    return doc


def _first_31_construct(node: Any, path: str = "") -> str | None:
    unmarshal = "failed to unmarshal data: json error: json: cannot unmarshal {} into Go struct field Schema{} of type {}"
    stack = [(node, path)]
    null_type = None
    while stack:
        n, p = stack.pop(0)
        if isinstance(n, dict):
            if isinstance(n.get("type"), list):
                return unmarshal.format("array", ".type", "string")
            for k in ("exclusiveMinimum", "exclusiveMaximum"):
                if isinstance(n.get(k), (int, float)) and not isinstance(n.get(k), bool):
                    return unmarshal.format("number", "." + k, "bool")
            if n.get("type") == "null" and null_type is None:
                null_type = f'invalid components: schema "{p or "/"}": unsupported \'type\' value "null"'
            stack += [(v, f"{p}/{k}") for k, v in n.items()]
        elif isinstance(n, list):
            stack += [(v, f"{p}/{i}") for i, v in enumerate(n)]
    return null_type


class Provider:
    def __init__(self, admin_url: str, token: str):
        self.admin_url, self.token = admin_url, token

    @property
    def host(self) -> str:
        return urllib.parse.urlsplit(self.admin_url).netloc


# ---------------------------------------------------------------------------------------------
# the operator
# ---------------------------------------------------------------------------------------------
class Operator:
    def __init__(self, ctx: LabContext):
        self.ctx = ctx
        self.namespace = ctx.settings.get("namespace", "3scale")
        self.kube: KubeClient | None = None
        self.controllers: list[Controller] = []
        self._clients: dict[tuple, PortaClient] = {}
        self._lock = threading.Lock()

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        self.kube = KubeClient(self.ctx.urls["kube"], token=self.ctx.secret("kube_operator_token"),
                               ca_file=str(self.ctx.tls.ca_cert) if self.ctx.tls else None)
        self.kube.request("GET", "/version")  # fail fast when the API server is not there
        handlers = {"Backend": (BACKENDS, self.reconcile_backend), "Product": (PRODUCTS, self.reconcile_product),
                    "ActiveDoc": (ACTIVEDOCS, self.reconcile_activedoc),
                    "ProxyConfigPromote": (PCPS, self.reconcile_pcp)}
        for kind, (res, fn) in handlers.items():
            c = Controller(self, kind, res, fn)
            self.controllers.append(c)
            c.start()
        LOG.info("operator watching namespace %s", self.namespace)

    def stop(self) -> None:
        self.ctx.stopping.set()
        for c in self.controllers:
            c.queue.close()
        for c in self.controllers:
            for t in c.threads:
                if t.name.endswith("worker"):
                    t.join(timeout=5)

    def fault(self) -> dict:
        return self.ctx.faults.get("operator") if self.ctx.faults else {}

    # -- shared plumbing ---------------------------------------------------------------------
    def _secret_data(self, ns: str, name: str) -> dict[str, str] | None:
        s = self.kube.get(SECRETS, ns, name)
        if s is None:
            return None
        data = {k: base64.b64decode(v).decode() for k, v in (s.get("data") or {}).items()}
        data.update(s.get("stringData") or {})
        return data

    def lookup_provider(self, obj: dict) -> Provider:
        """LookupProviderAccount: providerAccountRef secret → threescale-provider-account → APIManager."""
        ns = obj["metadata"]["namespace"]
        ref = ((obj.get("spec") or {}).get("providerAccountRef") or {}).get("name")
        for name, explicit in ((ref, True), ("threescale-provider-account", False)):
            if not name:
                continue
            data = self._secret_data(ns, name)
            if data is None:
                if explicit:
                    raise ProviderLookupError(f'LookupProviderAccount: secrets "{name}" not found')
                continue
            for key in ("adminURL", "token"):
                if not data.get(key):
                    raise ProviderLookupError(f"LookupProviderAccount: Secret field '{key}' is required in secret '{name}'")
            return Provider(data["adminURL"], data["token"])
        try:
            apims, _ = self.kube.list(APIMANAGERS, ns)
        except KubeError as e:
            if e.status != 404:  # the lab has no APIManager kind: skip this step
                raise
            apims = []
        if apims:
            spec = apims[0].get("spec") or {}
            if not spec.get("tenantName"):
                raise ProviderLookupError("LookupProviderAccount: APIManager spec.tenantName is nil")
            seed = self._secret_data(ns, "system-seed") or {}
            if not seed.get("ADMIN_ACCESS_TOKEN"):
                raise ProviderLookupError(
                    "LookupProviderAccount: Secret field 'ADMIN_ACCESS_TOKEN' is required in secret 'system-seed'")
            admin_url = f"https://{spec['tenantName']}-admin.{spec.get('wildcardDomain', '')}"  # always https, no port
            return Provider(admin_url, seed["ADMIN_ACCESS_TOKEN"])
        raise ProviderLookupError("LookupProviderAccount: no provider account found")

    def porta(self, provider: Provider, obj: dict) -> PortaClient:
        """A client per (tenant, token, TLS mode), kept so its keep-alive connections are reused."""
        insecure = ((obj.get("metadata") or {}).get("annotations") or {}).get("insecure_skip_verify") == "true"
        key = (provider.admin_url, provider.token, insecure)
        with self._lock:
            client = self._clients.get(key)
        if client is not None:
            return client
        if insecure:
            ctx = ssl.create_default_context()
            ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        else:
            ctx = ssl.create_default_context()
            if self.ctx.tls:
                ctx.load_verify_locations(cafile=str(self.ctx.tls.ca_cert))
        client = PortaClient(provider.admin_url, provider.token, ctx)
        with self._lock:
            return self._clients.setdefault(key, client)

    def _check_fault(self, kind: str, obj: dict) -> None:
        md = obj["metadata"]
        msg = (self.fault().get("fail") or {}).get(f"{kind}/{md['namespace']}/{md['name']}")
        if msg:
            raise RuntimeError(msg)

    def _write_status(self, res: Resource, obj: dict, fields: dict, types: list[str], true: dict[str, str],
                      observed: bool = True) -> dict:
        """Recompute all condition types (sorted), keep lastTransitionTime, write only on change."""
        old = obj.get("status") or {}
        prev = {c.get("type"): c for c in old.get("conditions") or []}
        conds = []
        for t in sorted(types):
            st = "True" if t in true else "False"
            c = {"type": t, "status": st}
            if st == "True" and true[t]:
                c["message"] = true[t]
            p = prev.get(t)
            c["lastTransitionTime"] = p["lastTransitionTime"] if p and p.get("status") == st and p.get(
                "lastTransitionTime") else now_iso()
            conds.append(c)
        new = {k: v for k, v in fields.items() if v is not None}
        new["conditions"] = conds
        if observed:
            new["observedGeneration"] = obj["metadata"].get("generation", 1)
        if new == old:
            return obj
        body = copy.deepcopy(obj)
        body["status"] = new
        return self.kube.update_status(res, body)

    def _ensure_finalizer(self, res: Resource, obj: dict, fin: str) -> bool:
        fins = obj["metadata"].setdefault("finalizers", [])
        if fin in fins:
            return False
        fins.append(fin)
        self.kube.update(res, obj)
        return True

    def _drop_finalizer(self, res: Resource, obj: dict, fin: str) -> None:
        obj["metadata"]["finalizers"] = [f for f in obj["metadata"].get("finalizers") or [] if f != fin]
        self.kube.update(res, obj)

    @staticmethod
    def _set_defaults(kind: str, spec: dict) -> bool:
        before = copy.deepcopy(spec)
        if not spec.get("systemName"):
            sn = re.sub(r"[^a-zA-Z0-9]+", "", spec.get("name", ""))
            spec["systemName"] = sn.lower() if kind == "ActiveDoc" else sn
        if kind in ("Backend", "Product"):
            metrics = spec.get("metrics") or {}
            if "hits" not in metrics:
                metrics["hits"] = {"friendlyName": "Hits", "unit": "hit", "description": "Number of API hits"}
            spec["metrics"] = metrics
        if kind == "Product":
            policies = spec.get("policies") or []
            if not any(p.get("name") == "apicast" for p in policies):
                policies.append({"name": "apicast", "version": "builtin", "configuration": {}, "enabled": True})
            for p in policies:
                if p.get("configuration") is None and not p.get("configurationRef"):
                    p["configuration"] = {}
            spec["policies"] = policies
        return spec != before

    def _prologue(self, kind: str, res: Resource, ns: str, name: str, finalizer: str | None, finalize=None):
        """Steps (a)-(e) of the contract with one read of the CR. Returns (obj, provider) to go on, or
        the reconcile's result (None or REQUEUE) when it is done; `finalize(obj)` handles a deletion."""
        obj = self.kube.get(res, ns, name)
        if obj is None:
            return None
        if obj["metadata"].get("deletionTimestamp"):
            return finalize(obj) if finalize is not None else None
        if finalizer and self._ensure_finalizer(res, obj, finalizer):
            return None  # the update event brings us back
        provider = self.lookup_provider(obj)  # raises: no status written
        if self._set_defaults(kind, obj.setdefault("spec", {})):
            self.kube.update(res, obj)  # generation +1; the update event brings us back
            return None
        return obj, provider

    # -- metrics / methods / mapping rules, shared by backend_apis and services ----------------
    def _sync_metrics(self, porta: PortaClient, base: str, spec: dict) -> dict[str, int]:
        desired_metrics, desired_methods = spec.get("metrics") or {}, spec.get("methods") or {}
        metrics = porta.list(f"{base}/metrics.json", "metrics", "metric")
        top = {strip_suffix(m["system_name"]): m for m in metrics if not m.get("parent_id")}
        ids: dict[str, int] = {}
        for sn, d in desired_metrics.items():
            want = {"friendly_name": d.get("friendlyName"), "unit": d.get("unit"), "description": d.get("description") or ""}
            cur = top.get(sn)
            if cur is None:
                cur = porta.call("POST", f"{base}/metrics.json", {"system_name": sn, **want})["metric"]
            elif any((cur.get(k) or "") != (v or "") for k, v in want.items()):
                porta.call("PUT", f"{base}/metrics/{cur['id']}.json", want)
            ids[sn] = cur["id"]
        hits = ids["hits"]
        methods = {strip_suffix(m["system_name"]): m
                   for m in porta.list(f"{base}/metrics/{hits}/methods.json", "methods", "method")}
        for sn, d in desired_methods.items():
            want = {"friendly_name": d.get("friendlyName"), "description": d.get("description") or ""}
            cur = methods.get(sn)
            if cur is None:
                cur = porta.call("POST", f"{base}/metrics/{hits}/methods.json", {"system_name": sn, **want})["method"]
            elif any((cur.get(k) or "") != (v or "") for k, v in want.items()):
                porta.call("PUT", f"{base}/metrics/{hits}/methods/{cur['id']}.json", want)
            ids[sn] = cur["id"]
        # the CR is authoritative: remove what it does not name
        for sn, m in methods.items():
            if sn not in desired_methods:
                porta.call("DELETE", f"{base}/metrics/{hits}/methods/{m['id']}.json")
        for sn, m in top.items():
            if sn not in desired_metrics and sn not in methods:
                porta.call("DELETE", f"{base}/metrics/{m['id']}.json")
        return ids

    @staticmethod
    def _sync_rules(porta: PortaClient, coll: str, item: str, rules: list[dict], ids: dict[str, int]) -> None:
        existing = porta.list(coll, "mapping_rules", "mapping_rule")
        desired = [(r["httpMethod"], r["pattern"], ids[r["metricMethodRef"]], int(r.get("increment", 1)),
                    bool(r.get("last"))) for r in rules]
        missing = list(desired)
        for r in existing:
            key = (r.get("http_method"), r.get("pattern"), r.get("metric_id"), int(r.get("delta") or 0), bool(r.get("last")))
            if key in missing:
                missing.remove(key)
            else:  # includes porta's default "GET /" rule when the CR does not have it
                porta.call("DELETE", item.format(id=r["id"]))
        for pos, key in enumerate(desired, start=1):
            if key in missing:
                missing.remove(key)
                m, pattern, mid, delta, last = key
                porta.call("POST", coll, {"http_method": m, "pattern": pattern, "metric_id": mid, "delta": delta,
                                          "last": str(last).lower(), "position": pos})

    # =========================================================================================
    # Backend
    # =========================================================================================
    def reconcile_backend(self, ns: str, name: str):
        got = self._prologue("Backend", BACKENDS, ns, name, BACKEND_FINALIZER, self._finalize_backend)
        if not isinstance(got, tuple):
            return got  # None or REQUEUE: this reconcile is done
        obj, provider = got
        spec, old = obj["spec"], obj.get("status") or {}
        fields = {"backendId": old.get("backendId"), "providerAccountHost": provider.host}
        types = ["Failed", "Invalid", "Synced"]
        try:
            errs, _ = validate_metrics(spec)
            if errs:
                raise Invalid("; ".join(errs))
            self._check_fault("Backend", obj)
            fields["backendId"] = self._sync_backend(self.porta(provider, obj), spec)
        except Invalid as e:
            self._write_status(BACKENDS, obj, fields, types, {"Invalid": str(e), "Failed": str(e)})
            return None
        except Exception as e:  # porta/transport error or injected fault: Failed, retried with backoff
            self._write_status(BACKENDS, obj, fields, types, {"Failed": sync_message("backend", spec, e)})
            raise
        self._write_status(BACKENDS, obj, fields, types, {"Synced": ""})
        return None

    def _sync_backend(self, porta: PortaClient, spec: dict) -> int:
        sn = spec["systemName"]
        cur = next((b for b in porta.list("/admin/api/backend_apis.json", "backend_apis", "backend_api")
                    if b.get("system_name") == sn), None)
        want = {"name": spec["name"], "description": spec.get("description") or "",
                "private_endpoint": spec["privateBaseURL"]}
        if cur is None:  # (an existing backend with this system name is adopted)
            cur = porta.call("POST", "/admin/api/backend_apis.json", {"system_name": sn, **want})["backend_api"]
        else:
            changed = {k: v for k, v in want.items() if (cur.get(k) or "") != v}
            if changed:  # private_endpoint differs on every pass (porta adds the port): harmless, as upstream
                porta.call("PUT", f"/admin/api/backend_apis/{cur['id']}.json", changed)
        base = f"/admin/api/backend_apis/{cur['id']}"
        ids = self._sync_metrics(porta, base, spec)
        self._sync_rules(porta, f"{base}/mapping_rules.json", base + "/mapping_rules/{id}.json",
                         spec.get("mappingRules") or [], ids)
        return cur["id"]

    def _finalize_backend(self, obj: dict):
        md, spec = obj["metadata"], obj.get("spec") or {}
        if BACKEND_FINALIZER not in (md.get("finalizers") or []):
            return None
        provider = self.lookup_provider(obj)
        sn = spec.get("systemName")
        # first remove references to this backend from the Product CRs of the same tenant
        edited = False
        for p in self.kube.list(PRODUCTS, md["namespace"])[0]:
            try:
                if self.lookup_provider(p).admin_url != provider.admin_url:
                    continue
            except (ProviderLookupError, KubeError):
                continue
            pspec = p.get("spec") or {}
            before = copy.deepcopy(pspec)
            (pspec.get("backendUsages") or {}).pop(sn, None)
            for plan in (pspec.get("applicationPlans") or {}).values():
                for key in ("limits", "pricingRules"):
                    if plan.get(key):
                        plan[key] = [x for x in plan[key] if (x.get("metricMethodRef") or {}).get("backend") != sn]
            if pspec != before:
                self.kube.update(PRODUCTS, p)
                edited = True
        if edited:
            return REQUEUE
        bid = (obj.get("status") or {}).get("backendId")
        if bid:
            try:
                self.porta(provider, obj).call("DELETE", f"/admin/api/backend_apis/{bid}.json")
            except PortaError as e:
                if e.status != 404:
                    raise  # e.g. still used by a product whose CR has not been re-synced yet
        self._drop_finalizer(BACKENDS, obj, BACKEND_FINALIZER)
        return None

    # =========================================================================================
    # Product
    # =========================================================================================
    def reconcile_product(self, ns: str, name: str):
        got = self._prologue("Product", PRODUCTS, ns, name, PRODUCT_FINALIZER, self._finalize_product)
        if not isinstance(got, tuple):
            return got  # None or REQUEUE: this reconcile is done
        obj, provider = got
        spec, old = obj["spec"], obj.get("status") or {}
        fields = {"productId": old.get("productId"), "providerAccountHost": provider.host}
        types = ["Failed", "Invalid", "Orphan", "Synced"]
        try:
            self._validate_product(spec)
            backends = self._product_backends(obj, provider)
            self._check_fault("Product", obj)
            fields["productId"] = self._sync_product(self.porta(provider, obj), obj, backends)
        except Invalid as e:
            self._write_status(PRODUCTS, obj, fields, types, {"Invalid": str(e), "Failed": str(e)})
            return None
        except Orphan as e:
            self._write_status(PRODUCTS, obj, fields, types, {"Orphan": str(e), "Failed": str(e)})
            return REQUEUE
        except Exception as e:
            self._write_status(PRODUCTS, obj, fields, types, {"Failed": sync_message("product", spec, e)})
            raise
        self._write_status(PRODUCTS, obj, fields, types, {"Synced": ""})
        return None

    @staticmethod
    def _validate_product(spec: dict) -> None:
        errs, names = validate_metrics(spec)
        for pname, plan in (spec.get("applicationPlans") or {}).items():
            path = f"spec.applicationPlans[{pname}]"
            seen = set()
            for i, lim in enumerate(plan.get("limits") or []):
                ref = lim.get("metricMethodRef") or {}
                if not ref.get("backend") and ref.get("systemName") not in names:
                    errs.append(f'{path}.limits[{i}]: Invalid value: "{ref.get("systemName")}": metric or method not found')
                key = (lim.get("period"), ref.get("backend"), ref.get("systemName"))
                if key in seen:
                    errs.append(f'{path}.limits[{i}]: Duplicate value: "{lim.get("period")}"')
                seen.add(key)
            ranges: dict[tuple, list[tuple[int, int]]] = {}
            for i, pr in enumerate(plan.get("pricingRules") or []):
                ref = pr.get("metricMethodRef") or {}
                if not ref.get("backend") and ref.get("systemName") not in names:
                    errs.append(f'{path}.pricingRules[{i}]: Invalid value: "{ref.get("systemName")}": metric or method not found')
                lo, hi = int(pr.get("from", 0)), int(pr.get("to", 0))
                if lo > hi:
                    errs.append(f'{path}.pricingRules[{i}]: Invalid value: "{lo}": "from" must not be greater than "to"')
                mkey = (ref.get("backend"), ref.get("systemName"))
                if any(lo <= h and l2 <= hi for l2, h in ranges.get(mkey, [])):
                    errs.append(f'{path}.pricingRules[{i}]: Invalid value: "{lo}-{hi}": overlapping ranges')
                ranges.setdefault(mkey, []).append((lo, hi))
        if errs:
            raise Invalid("; ".join(errs))

    def _product_backends(self, obj: dict, provider: Provider) -> dict[str, dict]:
        """Backend CRs for spec.backendUsages (Synced, same tenant), else Orphan."""
        spec, ns = obj["spec"], obj["metadata"]["namespace"]
        crs = {(b.get("spec") or {}).get("systemName"): b for b in self.kube.list(BACKENDS, ns)[0]}
        found, errs = {}, []
        for sn in sorted(spec.get("backendUsages") or {}):
            b = crs.get(sn)
            ok = b is not None and (cond_true(b, "Synced") or (
                cond_true(b, "Failed") and "method is being deleted" in cond_message(b, "Failed")))
            if ok:
                try:
                    ok = self.lookup_provider(b).admin_url == provider.admin_url
                except ProviderLookupError:
                    ok = False
            if not ok:
                errs.append(f'spec.backendUsages[{sn}]: Invalid value: "{sn}": backend resource not found or not synced')
            else:
                found[sn] = b
        for pname, plan in (spec.get("applicationPlans") or {}).items():
            for key in ("limits", "pricingRules"):
                for i, x in enumerate(plan.get(key) or []):
                    ref = x.get("metricMethodRef") or {}
                    be = ref.get("backend")
                    if not be or be not in found and be in (spec.get("backendUsages") or {}):
                        continue  # unsynced used backend: already reported above
                    bspec = (found.get(be) or {}).get("spec") or {}
                    if be not in found or ref.get("systemName") not in set(bspec.get("metrics") or {}) | set(
                            bspec.get("methods") or {}):
                        errs.append(f'spec.applicationPlans[{pname}].{key}[{i}].metricMethodRef: Invalid value: '
                                    f'"{be}/{ref.get("systemName")}": backend metric or method not found')
        if errs:
            raise Orphan("; ".join(errs))
        return found

    def _sync_product(self, porta: PortaClient, obj: dict, backends: dict[str, dict]) -> int:
        spec = obj["spec"]
        sn = spec["systemName"]
        deployment = spec.get("deployment") or {}
        dep_kind = next(iter(deployment), None)
        auth = (deployment.get(dep_kind) or {}).get("authentication") or {} if dep_kind else {}
        auth_kind = next(iter(auth), None)
        want = {"name": spec["name"], "description": spec.get("description") or ""}
        if dep_kind:
            want["deployment_option"] = "hosted" if dep_kind == "apicastHosted" else "self_managed"
        if auth_kind:
            want["backend_version"] = {"userkey": "1", "appKeyAppID": "2", "oidc": "oidc"}[auth_kind]
        cur = next((s for s in porta.list("/admin/api/services.json", "services", "service")
                    if s.get("system_name") == sn), None)
        if cur is None:  # (an existing product with this system name is adopted)
            cur = porta.call("POST", "/admin/api/services.json", {"system_name": sn, **want})["service"]
        else:
            changed = {k: v for k, v in want.items() if str(cur.get(k) or "") != v}
            if changed:
                porta.call("PUT", f"/admin/api/services/{cur['id']}.json", changed)
        pid = cur["id"]
        svc = f"/admin/api/services/{pid}"

        # backend usages
        desired = {}
        for bsn, usage in (spec.get("backendUsages") or {}).items():
            bid = (backends[bsn].get("status") or {}).get("backendId")
            desired[bid] = usage.get("path", "/")
        for u in unwrap(porta.call("GET", f"{svc}/backend_usages.json"), "backend_usages", "backend_usage"):
            bid = u.get("backend_id", u.get("backend_api_id"))
            if bid not in desired:
                porta.call("DELETE", f"{svc}/backend_usages/{u['id']}.json")
            else:
                if u.get("path") != desired[bid]:
                    porta.call("PUT", f"{svc}/backend_usages/{u['id']}.json", {"path": desired[bid]})
                desired.pop(bid)
        for bid, path in desired.items():
            porta.call("POST", f"{svc}/backend_usages.json", {"backend_api_id": bid, "path": path})

        # proxy: PATCH only the changed fields
        proxy_want = self._proxy_fields(obj, dep_kind, auth_kind, auth.get(auth_kind) or {} if auth_kind else {})
        if proxy_want:
            proxy = porta.call("GET", f"{svc}/proxy.json")["proxy"]
            changed = {k: v for k, v in proxy_want.items() if str(proxy.get(k) if proxy.get(k) is not None else "") != str(v)}
            if changed:
                porta.call("PATCH", f"{svc}/proxy.json", changed)

        ids = self._sync_metrics(porta, svc, spec)
        self._sync_rules(porta, f"{svc}/proxy/mapping_rules.json", svc + "/proxy/mapping_rules/{id}.json",
                         spec.get("mappingRules") or [], ids)
        self._sync_plans(porta, pid, spec, ids, backends)

        # policy chain: replaced as a whole when it differs (order matters)
        chain = []
        for p in spec.get("policies") or []:
            conf = p.get("configuration")
            if p.get("configurationRef"):
                ref = p["configurationRef"]
                data = self._secret_data(ref.get("namespace") or obj["metadata"]["namespace"], ref.get("name")) or {}
                if "configuration" not in data:
                    raise Invalid(f'spec.policies: Invalid value: "{ref.get("name")}": secret with key "configuration" not found')
                conf = json.loads(data["configuration"])
            chain.append({"name": p["name"], "version": p["version"], "configuration": conf or {},
                          "enabled": bool(p.get("enabled"))})
        cur_chain = (porta.call("GET", f"{svc}/proxy/policies.json") or {}).get("policies_config") or []
        if [{k: c.get(k) for k in ("name", "version", "configuration", "enabled")} for c in cur_chain] != chain:
            porta.call("PUT", f"{svc}/proxy/policies.json", {"policies_config": json.dumps(chain)})
        return pid

    def _proxy_fields(self, obj: dict, dep_kind: str | None, auth_kind: str | None, auth: dict) -> dict:
        out: dict[str, Any] = {}
        if dep_kind == "apicastSelfManaged":
            sm = obj["spec"]["deployment"]["apicastSelfManaged"]
            if sm.get("productionPublicBaseURL"):
                out["endpoint"] = sm["productionPublicBaseURL"]
            if sm.get("stagingPublicBaseURL"):
                out["sandbox_endpoint"] = sm["stagingPublicBaseURL"]
        if not auth_kind:
            return out
        if auth.get("credentials"):
            out["credentials_location"] = auth["credentials"]
        if auth_kind == "userkey" and auth.get("authUserKey"):
            out["auth_user_key"] = auth["authUserKey"]
        if auth_kind == "appKeyAppID":
            if auth.get("appID"):
                out["auth_app_id"] = auth["appID"]
            if auth.get("appKey"):
                out["auth_app_key"] = auth["appKey"]
        if auth_kind == "oidc":
            out["oidc_issuer_type"] = auth.get("issuerType")
            if auth.get("issuerEndpoint"):
                out["oidc_issuer_endpoint"] = auth["issuerEndpoint"]
        sec = auth.get("security") or {}
        if sec.get("secretToken"):
            out["secret_token"] = sec["secretToken"]
        if sec.get("hostHeader"):
            out["hostname_rewrite"] = sec["hostHeader"]
        for k, v in (auth.get("gatewayResponse") or {}).items():
            out[camel_to_snake(k)] = v
        return out

    def _sync_plans(self, porta: PortaClient, pid: int, spec: dict, ids: dict[str, int], backends: dict[str, dict]):
        svc = f"/admin/api/services/{pid}"
        plans = {p.get("system_name"): p for p in
                 porta.list(f"{svc}/application_plans.json", "plans", "application_plan", paginated=False)}
        backend_ids: dict[str, dict[str, int]] = {}

        def metric_id(ref: dict) -> int:
            be = ref.get("backend")
            if not be:
                return ids[ref["systemName"]]
            if be not in backend_ids:  # look the backend's metric/method ids up in porta
                bid = (backends[be].get("status") or {}).get("backendId")
                base = f"/admin/api/backend_apis/{bid}"
                ms = porta.list(f"{base}/metrics.json", "metrics", "metric")
                m = {strip_suffix(x["system_name"]): x["id"] for x in ms}
                if "hits" in m:
                    for x in porta.list(f"{base}/metrics/{m['hits']}/methods.json", "methods", "method"):
                        m[strip_suffix(x["system_name"])] = x["id"]
                backend_ids[be] = m
            return backend_ids[be][ref["systemName"]]

        desired = spec.get("applicationPlans") or {}
        for key, p in desired.items():
            want = {"name": p.get("name") or key, "approval_required": str(bool(p.get("appsRequireApproval"))).lower()}
            if p.get("trialPeriod") is not None:
                want["trial_period_days"] = str(p["trialPeriod"])
            if p.get("setupFee") is not None:
                want["setup_fee"] = p["setupFee"]
            if p.get("costMonth") is not None:
                want["cost_per_month"] = p["costMonth"]
            cur = plans.get(key)
            if cur is None:
                extra = {"state_event": "publish"} if p.get("published") else {}
                cur = porta.call("POST", f"{svc}/application_plans.json", {"system_name": key, **want, **extra})
                cur = cur.get("application_plan", cur)
            else:
                changed = {}
                for k, v in want.items():
                    c = cur.get(k)
                    if k in ("setup_fee", "cost_per_month"):
                        same = c is not None and float(c) == float(v)
                    else:
                        same = str(c).lower() == str(v).lower()
                    if not same:
                        changed[k] = v
                if p.get("published") is not None and (cur.get("state") == "published") != bool(p["published"]):
                    changed["state_event"] = "publish" if p["published"] else "hide"
                if changed:
                    porta.call("PUT", f"{svc}/application_plans/{cur['id']}.json", changed)
            plan = f"/admin/api/application_plans/{cur['id']}"
            # limits (authoritative)
            want_l = [(metric_id(x["metricMethodRef"]), x["period"], int(x["value"])) for x in p.get("limits") or []]
            for lim in unwrap(porta.call("GET", f"{plan}/limits.json"), "limits", "limit"):
                k = (lim.get("metric_id"), lim.get("period"), int(lim.get("value") or 0))
                if k in want_l:
                    want_l.remove(k)
                else:
                    porta.call("DELETE", f"{plan}/metrics/{lim['metric_id']}/limits/{lim['id']}.json")
            for mid, period, value in want_l:
                porta.call("POST", f"{plan}/metrics/{mid}/limits.json", {"period": period, "value": value})
            # pricing rules (authoritative)
            want_p = [(metric_id(x["metricMethodRef"]), int(x["from"]), int(x["to"]), float(x["pricePerUnit"]))
                      for x in p.get("pricingRules") or []]
            for pr in unwrap(porta.call("GET", f"{plan}/pricing_rules.json"), "pricing_rules", "pricing_rule"):
                k = (pr.get("metric_id"), int(pr.get("min") or 0), int(pr.get("max") or 0), float(pr.get("cost_per_unit") or 0))
                if k in want_p:
                    want_p.remove(k)
                else:
                    porta.call("DELETE", f"{plan}/metrics/{pr['metric_id']}/pricing_rules/{pr['id']}.json")
            for mid, lo, hi, cost in want_p:
                porta.call("POST", f"{plan}/metrics/{mid}/pricing_rules.json", {"min": lo, "max": hi, "cost_per_unit": cost})
        for key, cur in plans.items():
            if key not in desired:
                porta.call("DELETE", f"{svc}/application_plans/{cur['id']}.json")

    def _finalize_product(self, obj: dict):
        md = obj["metadata"]
        if PRODUCT_FINALIZER not in (md.get("finalizers") or []):
            return None
        pid = (obj.get("status") or {}).get("productId")
        if pid:
            provider = self.lookup_provider(obj)
            try:
                self.porta(provider, obj).call("DELETE", f"/admin/api/services/{pid}.json")
            except PortaError as e:
                if e.status != 404:  # porta refuses (e.g. last product): stays Terminating, retried
                    raise RuntimeError(f"Failed to delete product: {e}") from None
        self._drop_finalizer(PRODUCTS, obj, PRODUCT_FINALIZER)
        return None

    # =========================================================================================
    # ActiveDoc (no finalizer: deleting the CR leaves the ActiveDoc in 3scale)
    # =========================================================================================
    def reconcile_activedoc(self, ns: str, name: str):
        got = self._prologue("ActiveDoc", ACTIVEDOCS, ns, name, None)
        if not isinstance(got, tuple):
            return got  # None or REQUEUE: this reconcile is done
        obj, provider = got
        spec, old = obj["spec"], obj.get("status") or {}
        fields = {"activeDocId": old.get("activeDocId"), "providerAccountHost": provider.host,
                  "productResourceName": old.get("productResourceName")}
        types = ["Failed", "Invalid", "Orphan", "Ready"]
        try:
            body = self._activedoc_body(obj)
            product = None
            if spec.get("productSystemName"):
                product = self._activedoc_product(obj, provider)
                fields["productResourceName"] = {"name": product["metadata"]["name"]}
            else:
                fields["productResourceName"] = None
            self._check_fault("ActiveDoc", obj)
            fields["activeDocId"] = self._sync_activedoc(self.porta(provider, obj), spec, body, product)
        except Invalid as e:
            self._write_status(ACTIVEDOCS, obj, fields, types, {"Invalid": str(e), "Failed": str(e)})
            return None
        except Orphan as e:
            self._write_status(ACTIVEDOCS, obj, fields, types, {"Orphan": str(e), "Failed": str(e)})
            return REQUEUE
        except Exception as e:
            self._write_status(ACTIVEDOCS, obj, fields, types, {"Failed": sync_message("activedoc", spec, e)})
            raise
        self._write_status(ACTIVEDOCS, obj, fields, types, {"Ready": ""})
        return None

    def _activedoc_body(self, obj: dict) -> dict:
        ref, ns = obj["spec"].get("activeDocOpenAPIRef") or {}, obj["metadata"]["namespace"]
        if ref.get("secretRef"):
            sref = ref["secretRef"]
            data = self._secret_data(sref.get("namespace") or ns, sref.get("name"))
            if data is None:
                raise Invalid(f'spec.activeDocOpenAPIRef.secretRef: Invalid value: "{sref.get("name")}": secret not found')
            if len(data) != 1:
                raise Invalid(f'spec.activeDocOpenAPIRef.secretRef: Invalid value: "{sref.get("name")}": '
                              f"secret must have exactly one data key, found {len(data)}")
            raw = next(iter(data.values())).encode()
        elif ref.get("url"):
            raw = self._fetch(ref["url"])
        else:
            raise Invalid("spec.activeDocOpenAPIRef: Required value: one of secretRef or url is required")
        return check_openapi(raw)

    def _fetch(self, url: str) -> bytes:
        ctx = ssl.create_default_context()
        if self.ctx.tls:
            ctx.load_verify_locations(cafile=str(self.ctx.tls.ca_cert))
        try:
            with urllib.request.urlopen(url, timeout=10, context=ctx) as r:
                return r.read()
        except urllib.error.HTTPError as e:
            raise Invalid(f'error loading "{url}": request returned status code {e.code}') from None
        except (OSError, ValueError) as e:  # worded like Go's net/http error inside kin-openapi's loader
            reason = getattr(e, "reason", e)
            u = urllib.parse.urlsplit(url)
            if isinstance(reason, socket.gaierror):
                reason = f"dial tcp: lookup {u.hostname}: no such host"
            elif isinstance(reason, ConnectionRefusedError):
                reason = f"dial tcp {u.hostname}:{u.port or (443 if u.scheme == 'https' else 80)}: connect: connection refused"
            raise Invalid(f'Get "{url}": {reason}') from None

    def _activedoc_product(self, obj: dict, provider: Provider) -> dict:
        psn = obj["spec"]["productSystemName"]
        for p in self.kube.list(PRODUCTS, obj["metadata"]["namespace"])[0]:
            if (p.get("spec") or {}).get("systemName") == psn and cond_true(p, "Synced"):
                try:
                    if self.lookup_provider(p).admin_url == provider.admin_url and (p.get("status") or {}).get("productId"):
                        return p
                except ProviderLookupError:
                    pass
        raise Orphan(f'spec.productSystemName: Invalid value: "{psn}": product resource not found or not synced')

    def _sync_activedoc(self, porta: PortaClient, spec: dict, body: dict, product: dict | None) -> int:
        sn = spec["systemName"]
        cur = next((d for d in unwrap(porta.call("GET", "/admin/api/active_docs.json"), "api_docs", "api_doc")
                    if d.get("system_name") == sn), None)
        want: dict[str, Any] = {"name": spec["name"], "description": spec.get("description") or "",
                                "published": str(bool(spec.get("published"))).lower(),
                                "skip_swagger_validations": str(bool(spec.get("skipSwaggerValidations"))).lower()}
        if product is not None:
            want["service_id"] = str(product["status"]["productId"])
        elif cur is not None and cur.get("service_id"):
            want["service_id"] = ""  # productSystemName removed: unbind
        if cur is None:
            cur = porta.call("POST", "/admin/api/active_docs.json",
                             {"system_name": sn, "body": json.dumps(body), **want})
            return cur.get("api_doc", cur)["id"]
        changed = {k: v for k, v in want.items()
                   if str(cur.get(k) if cur.get(k) is not None else "").lower() != v.lower()}
        try:
            same_body = json.loads(cur.get("body") or "null") == body
        except ValueError:
            same_body = False
        if not same_body:  # semantic comparison, not text
            changed["body"] = json.dumps(body)
        if changed:
            porta.call("PUT", f"/admin/api/active_docs/{cur['id']}.json", changed)
        return cur["id"]

    # =========================================================================================
    # ProxyConfigPromote (one-shot, no finalizer, no observedGeneration)
    # =========================================================================================
    def reconcile_pcp(self, ns: str, name: str):
        obj = self.kube.get(PCPS, ns, name)
        if obj is None or obj["metadata"].get("deletionTimestamp"):
            return None
        if cond_true(obj, "Ready"):
            return None  # promoted once: the spec is never applied again
        spec, types = obj.get("spec") or {}, ["Failed", "Ready"]
        st = obj.get("status") or {}
        keep = {"latestProductionVersion": st.get("latestProductionVersion"),
                "latestStagingVersion": st.get("latestStagingVersion")}

        def fail(msg: str, **fields):
            self._write_status(PCPS, obj, {**keep, **fields}, types, {"Failed": msg}, observed=False)

        product = self.kube.get(PRODUCTS, ns, spec.get("productCRName", ""))
        if product is None:
            fail(f'products.capabilities.3scale.net "{spec.get("productCRName")}" not found', productId="product not found")
            return REQUEUE
        if not cond_true(product, "Synced") or not (product.get("status") or {}).get("productId"):
            fail("product CR is not ready")
            return REQUEUE
        provider = self.lookup_provider(product)
        pid = product["status"]["productId"]
        try:
            self._check_fault("ProxyConfigPromote", obj)
            porta = self.porta(provider, product)
            svc = f"/admin/api/services/{pid}/proxy"

            def latest(env: str) -> int:
                try:
                    return int(porta.call("GET", f"{svc}/configs/{env}/latest.json")["proxy_config"]["version"])
                except PortaError as e:
                    if e.status == 404:
                        return 0
                    raise

            if spec.get("production"):
                porta.call("POST", f"{svc}/deploy.json", {})
                stage, prod = latest("sandbox"), latest("production")
                try:
                    porta.call("POST", f"{svc}/configs/sandbox/{stage}/promote.json", {"to": "production"})
                except PortaError as e:
                    if e.status != 422:
                        raise
                    fail("cannot promote to production as " + NO_CHANGES_TAIL, productId=str(pid),
                         latestProductionVersion=prod, latestStagingVersion=stage)
                    return None  # terminal: no retry
                fields = {"productId": str(pid), "latestProductionVersion": stage, "latestStagingVersion": stage}
            else:
                before = latest("sandbox")
                porta.call("POST", f"{svc}/deploy.json", {})
                stage, prod = latest("sandbox"), latest("production")
                if stage == before:
                    # argument-order quirk of upstream: production gets the staging version, staging 0
                    fail("cannot promote to staging as " + NO_CHANGES_TAIL, productId=str(pid),
                         latestProductionVersion=stage, latestStagingVersion=0)
                    return None
                fields = {"productId": str(pid), "latestProductionVersion": prod, "latestStagingVersion": stage}
        except Exception as e:
            fail(str(e) or repr(e), productId=str(pid))
            raise
        self._write_status(PCPS, obj, fields, types, {"Ready": PROMOTED_MSG}, observed=False)
        if spec.get("deleteCR"):
            self.kube.delete(PCPS, ns, name)
        return None
