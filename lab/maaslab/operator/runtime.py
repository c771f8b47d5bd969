"""Controller machinery shared by every capabilities controller: watch + rate-limited work queue
(controller-runtime), conditions and status writes, provider account lookup, finalizers, the task
runner, and the reconcile prologue.

Upstream: 3scale-operator pkg/controller/helper/lookup_provider_account.go, pkg/helper/task_runner.go,
pkg/apispkg/common/status_conditions.go, controllers/capabilities/{backend,product}_controller.go
(reconcile sequence); client-go util/workqueue (ItemExponentialFailureRateLimiter: 5 ms doubling,
capped at 1000 s upstream, `operator_backoff_cap` here).
"""
from __future__ import annotations

import base64
import copy
import heapq
import http.client
import logging
import re
import ssl
import threading
import time
from typing import Any
from collections.abc import Callable

from ..context import LabContext, now_iso
from ..kube.client import SECRETS, KubeClient, KubeError, Resource
from .errors import PORTA_METHOD_IN_USE, MethodInUse, PortaError, ProviderLookupError, SpecError, task_failed
from .porta_client import PortaClient

LOG = logging.getLogger("maaslab.operator")

GROUP = "capabilities.3scale.net/v1beta1"
BACKENDS = Resource(GROUP, "backends")
PRODUCTS = Resource(GROUP, "products")
ACTIVEDOCS = Resource(GROUP, "activedocs")
PCPS = Resource(GROUP, "proxyconfigpromotes")
APIMANAGERS = Resource("apps.3scale.net/v1alpha1", "apimanagers")
DEFAULT_PROVIDER_SECRET = "threescale-provider-account"
REQUEUE = "requeue"


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

    def __init__(self, op: Runtime, kind: str, res: Resource, reconcile: Callable[[str, str], Any]):
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
                         exc_info=not isinstance(e, (PortaError, KubeError, ProviderLookupError, RuntimeError,
                                                    TaskFailed, MethodInUse, SpecError)))
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


def camel_to_snake(s: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", s).lower()


class Provider:
    def __init__(self, admin_url: str, token: str):
        self.admin_url, self.token = admin_url, token


def run_tasks(tasks: list[tuple[str, Callable[[], Any]]]) -> None:
    """pkg/helper/task_runner.go: tasks in order; porta's "method used by the latest gateway
    configuration" refusal skips the rest of that task only, and after the last task becomes
    ErrReferencedMethodIsBeingDeleted; any other error stops the run as "task failed <name>: <err>"."""
    method_in_use = False
    for name, fn in tasks:
        try:
            fn()
        except MethodInUse:
            raise
        except Exception as e:  # noqa: BLE001 - wrapped like upstream, then handled by the caller
            if PORTA_METHOD_IN_USE in str(e):
                method_in_use = True
                continue
            raise TaskFailed(task_failed(name, e)) from e
    if method_in_use:
        raise MethodInUse()


class TaskFailed(Exception):
    """A wrapped task error (a plain error for the status: Failed=True, retried)."""


class Runtime:
    """What every controller shares: the Kubernetes client, porta clients, lookups and status writes."""

    def __init__(self, ctx: LabContext):
        self.ctx = ctx
        self.namespace = ctx.settings.get("namespace", "3scale")
        self.kube: KubeClient | None = None
        self._clients: dict[tuple, PortaClient] = {}
        self._lock = threading.Lock()

    def fault(self) -> dict:
        return self.ctx.faults.get("operator") if self.ctx.faults else {}

    def check_fault(self, kind: str, obj: dict) -> None:
        md = obj["metadata"]
        msg = (self.fault().get("fail") or {}).get(f"{kind}/{md['namespace']}/{md['name']}")
        if msg:
            raise RuntimeError(msg)

    def secret_data(self, ns: str, name: str) -> dict[str, str] | None:
        s = self.kube.get(SECRETS, ns, name)
        if s is None:
            return None
        data = {k: base64.b64decode(v).decode() for k, v in (s.get("data") or {}).items()}
        data.update(s.get("stringData") or {})
        return data

    def lookup_provider(self, obj: dict) -> Provider:
        """LookupProviderAccount (lookup_provider_account.go): providerAccountRef Secret (must exist) →
        Secret threescale-provider-account (if it exists) → first APIManager + system-seed. A key is
        missing only when absent (an empty value passes), as GetSecretDataValue."""
        ns = obj["metadata"]["namespace"]
        ref = ((obj.get("spec") or {}).get("providerAccountRef") or {}).get("name")
        if ref:
            data = self.secret_data(ns, ref)
            if data is None:
                raise ProviderLookupError(f'secrets "{ref}" not found', not_found=True)
            for key in ("adminURL", "token"):
                if key not in data:
                    raise ProviderLookupError(f"secret field '{key}' is required in secret '{ref}'")
            return Provider(data["adminURL"], data["token"])
        data = self.secret_data(ns, DEFAULT_PROVIDER_SECRET)
        if data is not None:
            for key in ("adminURL", "token"):
                if key not in data:
                    raise ProviderLookupError(f"providerAccountFromDefaultSecretSource: Secret field '{key}' "
                                              f"is required in secret '{DEFAULT_PROVIDER_SECRET}'")
            return Provider(data["adminURL"], data["token"])
        try:
            apims, _ = self.kube.list(APIMANAGERS, ns)
        except KubeError as e:
            if e.status != 404:  # the lab has no APIManager kind: skip this step
                raise
            apims = []
        if apims:
            spec, prefix = apims[0].get("spec") or {}, "providerAccountFromLocal3scaleSource: "
            if not spec.get("tenantName"):
                raise ProviderLookupError(f"{prefix}apimanager found, '{apims[0]['metadata']['name']}', "
                                          "but tenantName is empty")
            seed = self.secret_data(ns, "system-seed")
            if seed is None:
                raise ProviderLookupError(f'{prefix}secrets "system-seed" not found', not_found=True)
            if "ADMIN_ACCESS_TOKEN" not in seed:
                raise ProviderLookupError(f"{prefix}secret field 'ADMIN_ACCESS_TOKEN' is required in secret 'system-seed'")
            admin_url = f"https://{spec['tenantName']}-admin.{spec.get('wildcardDomain', '')}"  # always https, no port
            return Provider(admin_url, seed["ADMIN_ACCESS_TOKEN"])
        raise ProviderLookupError("LookupProviderAccount: no provider account found")

    def porta(self, provider: Provider, annotated: dict) -> PortaClient:
        """A client per (tenant, token, TLS mode), kept so its keep-alive connections are reused.
        `annotated` is the CR whose `insecure_skip_verify` annotation applies."""
        insecure = ((annotated.get("metadata") or {}).get("annotations") or {}).get("insecure_skip_verify") == "true"
        key = (provider.admin_url, provider.token, insecure)
        with self._lock:
            client = self._clients.get(key)
        if client is not None:
            return client
        ctx = ssl.create_default_context()
        if insecure:
            ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        elif self.ctx.tls:
            ctx.load_verify_locations(cafile=str(self.ctx.tls.ca_cert))
        client = PortaClient(provider.admin_url, provider.token, ctx)
        with self._lock:
            return self._clients.setdefault(key, client)

    def write_status(self, res: Resource, obj: dict, fields: dict, types: list[str], true: dict[str, str],
                     observed: bool = True) -> dict:
        """Recompute all condition types (sorted), keep lastTransitionTime, write only on change.
        Fields that are None (or, for the PCP, 0/"": Go omitempty) are left out."""
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

    def ensure_finalizer(self, res: Resource, obj: dict, fin: str) -> bool:
        fins = obj["metadata"].setdefault("finalizers", [])
        if fin in fins:
            return False
        fins.append(fin)
        self.kube.update(res, obj)
        return True

    def drop_finalizer(self, res: Resource, obj: dict, fin: str) -> None:
        obj["metadata"]["finalizers"] = [f for f in obj["metadata"].get("finalizers") or [] if f != fin]
        self.kube.update(res, obj)

    def prologue(self, res: Resource, ns: str, name: str, finalizer: str, set_defaults: Callable[[dict], bool],
                 finalize: Callable[[dict], Any]):
        """Backend/Product steps (a)-(e) with one read of the CR: deletion → finalizer → provider lookup
        (an error leaves the status untouched) → defaults (an update bumps generation; its event brings
        us back). Returns (obj, provider) to go on, or the reconcile's result when done."""
        obj = self.kube.get(res, ns, name)
        if obj is None:
            return None
        if obj["metadata"].get("deletionTimestamp"):
            return finalize(obj) if finalizer in (obj["metadata"].get("finalizers") or []) else None
        if self.ensure_finalizer(res, obj, finalizer):
            return None
        provider = self.lookup_provider(obj)  # raises: no status written
        if set_defaults(obj.setdefault("spec", {})):
            self.kube.update(res, obj)
            return None
        return obj, provider

    def provider_for_deletion(self, obj: dict) -> Provider | None:
        """removeBackendFrom3scale / removeProductFrom3scale: a lookup failing with NotFound (the
        providerAccountRef Secret is gone) means "leave the 3scale object, drop the finalizer"."""
        try:
            return self.lookup_provider(obj)
        except ProviderLookupError as e:
            if e.not_found:
                LOG.info("%s not deleted from 3scale, provider account not found", obj["metadata"]["name"])
                return None
            raise
