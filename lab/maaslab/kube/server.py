"""The lab's Kubernetes API server: KubeAPIServer (see the package docstring)."""
from __future__ import annotations

import base64
import collections
import copy
import datetime
import hashlib
import hmac
import json
import logging
import os
import random
import re
import select
import ssl
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jsonpatch
import yaml

from ..context import LabContext, now_iso
from ..httpbase import JSONHandler, LabHTTPServer
from .schema import (
    BUILTIN_SCHEMAS,
    OBJECT_META,
    Cause,
    default,
    openapi_published,
    prune,
    validate,
    validate_name,
)

LOG = logging.getLogger("maaslab.kube")

K8S_VERSION = {"major": "1", "minor": "37", "gitVersion": "v1.37.1", "gitCommit": "maaslab", "gitTreeState": "clean",
               "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.25", "compiler": "gc", "platform": "linux/amd64",
               "emulationMajor": "1", "emulationMinor": "37", "minCompatibilityMajor": "1", "minCompatibilityMinor": "36"}
CRD_GROUP = "apiextensions.k8s.io"
HISTORY = 5000            # watch events kept for resourceVersion-based resumption
BOOKMARK_EVERY = 30.0     # periodic BOOKMARK interval when the client allows them
DEFAULT_WATCH_TIMEOUT = 1800
VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
MERGE, JSON_PATCH, SMP, APPLY = ("application/merge-patch+json", "application/json-patch+json",
                                 "application/strategic-merge-patch+json", "application/apply-patch+yaml")


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str, details: dict | None = None):
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details

    def body(self) -> dict:
        b = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
             "message": self.message, "reason": self.reason, "code": self.code}
        if self.details:
            b["details"] = self.details
        return b


@dataclass
class ResourceType:
    group: str
    plural: str
    kind: str
    namespaced: bool
    versions: list[str]                      # served, by version priority (first = preferred)
    storage: str
    singular: str = ""
    short_names: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    status_sub: bool = False
    builtin: bool = True
    schemas: dict[str, dict] = field(default_factory=dict)     # version -> openAPIV3Schema
    columns: dict[str, list] = field(default_factory=dict)     # version -> additionalPrinterColumns

    @property
    def key(self) -> str:
        return f"{self.group}/{self.plural}"

    @property
    def qualified(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def has_generation(self) -> bool:
        return not self.builtin or self.group == CRD_GROUP

    def gv(self, version: str) -> str:
        return f"{self.group}/{version}" if self.group else version

    def schema(self, version: str) -> dict:
        s = self.schemas.get(version) or BUILTIN_SCHEMAS.get(self.kind) or {"x-kubernetes-preserve-unknown-fields": True}
        # object metadata is always validated as ObjectMeta, whatever the CRD says about it
        return {**s, "properties": {**(s.get("properties") or {}), "metadata": OBJECT_META}}


def _builtin_types() -> list[ResourceType]:
    return [
        ResourceType("", "namespaces", "Namespace", False, ["v1"], "v1", "namespace", ["ns"], status_sub=True),
        ResourceType("", "secrets", "Secret", True, ["v1"], "v1", "secret"),
        ResourceType("", "configmaps", "ConfigMap", True, ["v1"], "v1", "configmap", ["cm"]),
        ResourceType("", "events", "Event", True, ["v1"], "v1", "event", ["ev"]),
        ResourceType(CRD_GROUP, "customresourcedefinitions", "CustomResourceDefinition", False, ["v1"], "v1",
                     "customresourcedefinition", ["crd", "crds"], ["api-extensions"], status_sub=True),
    ]


def _version_priority(v: str):
    """Kubernetes version ordering: GA > beta > alpha, higher numbers first, others last."""
    m = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", v)
    if not m:
        return (3, 0, 0, v)
    stage = {"alpha": 2, "beta": 1, None: 0}[m.group(2)]
    return (stage, -int(m.group(1)), -int(m.group(3) or 0), v)


# ------------------------------------------------------------------------------------------------
# selectors, jsonpath for printer columns, misc helpers


def _split_top(s: str) -> list[str]:
    out, depth, cur = [], 0, ""
    for ch in s:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    return out + [cur]


def parse_label_selector(s: str | None) -> list[tuple]:
    reqs = []
    for part in _split_top(s or ""):
        part = part.strip()
        if not part:
            continue
        m = re.fullmatch(r"([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)", part)
        if m:
            reqs.append((m.group(1), m.group(2), {v.strip() for v in m.group(3).split(",") if v.strip()}))
        elif re.fullmatch(r"![\w./-]+", part):
            reqs.append((part[1:], "!exists", None))
        elif re.fullmatch(r"[\w./-]+", part):
            reqs.append((part, "exists", None))
        else:
            m = re.fullmatch(r"([\w./-]+)\s*(==|=|!=)\s*([\w./-]*)", part)
            if not m:
                raise ApiError(400, "BadRequest", f"unable to parse requirement: {part!r}")
            reqs.append((m.group(1), "!=" if m.group(2) == "!=" else "=", m.group(3)))
    return reqs


def _labels_match(reqs: list[tuple], labels: dict) -> bool:
    for key, op, val in reqs:
        have = labels.get(key)
        if op in ("exists", "!exists"):
            ok = (key in labels) == (op == "exists")
        elif op in ("in", "notin"):
            ok = (have in val) == (op == "in")
        else:
            ok = (have == val) == (op == "=")
        if not ok:
            return False
    return True


def parse_field_selector(s: str | None, rt: ResourceType) -> list[tuple]:
    allowed = {"metadata.name", "metadata.namespace"} | ({"type"} if rt.kind == "Secret" else set())
    if rt.kind == "Event":   # kubectl describe selects events by involvedObject.*, reason, type, source
        allowed = None
    reqs = []
    for part in (s or "").split(","):
        part = part.strip()
        if not part:
            continue
        m = re.fullmatch(r"([\w.]+)\s*(==|=|!=)\s*(.*)", part)
        if not m:
            raise ApiError(400, "BadRequest", f"invalid field selector: {part!r}")
        if allowed is not None and m.group(1) not in allowed:
            raise ApiError(400, "BadRequest", f'field label not supported: {m.group(1)}')
        reqs.append((m.group(1), m.group(2) == "!=", m.group(3)))
    return reqs


def _fields_match(reqs: list[tuple], obj: dict) -> bool:
    for key, neg, val in reqs:
        have: Any = obj
        for part in key.split("."):
            have = have.get(part, "") if isinstance(have, dict) else ""
        if (str(have) == val) == neg:
            return False
    return True


def _jsonpath(obj: Any, expr: str) -> list:
    vals = [obj]
    for name, fkey, fval, idx in re.findall(r"\.([^.\[]+)|\[\?\(@\.(\w+)\s*==\s*['\"]([^'\"]*)['\"]\)\]|\[(\d+|\*)\]", expr):
        nxt = []
        for v in vals:
            if name and isinstance(v, dict) and name in v:
                nxt.append(v[name])
            elif fkey and isinstance(v, list):
                nxt += [x for x in v if isinstance(x, dict) and str(x.get(fkey)) == fval]
            elif idx and isinstance(v, list):
                nxt += v if idx == "*" else v[int(idx):int(idx) + 1]
        vals = nxt
    return vals


def _age(ts: str | None) -> str:
    if not ts:
        return "<unknown>"
    try:
        then = datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC)
    except ValueError:
        return "<invalid>"
    s = max(0, int((datetime.datetime.now(datetime.UTC) - then).total_seconds()))
    if s < 120:
        return f"{s}s"
    m, h, d = s // 60, s // 3600, s // 86400
    if m < 10:
        return f"{m}m{s % 60}s" if s % 60 else f"{m}m"
    if h < 3:
        return f"{m}m"
    if h < 8:
        return f"{h}h{m % 60}m" if m % 60 else f"{h}h"
    if h < 48:
        return f"{h}h"
    if d < 8:
        return f"{d}d{h % 24}h" if h % 24 else f"{d}d"
    return f"{d}d"


def merge_patch(target: Any, patch: Any, directives: bool = False) -> Any:
    """RFC 7386; with directives=True, strategic-merge `$…` keys are dropped (lab simplification)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if directives and k.startswith("$"):
            continue
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v, directives)
    return out


def _strip_for_compare(obj: dict, status_too: bool) -> dict:
    o = {k: v for k, v in obj.items() if k not in ("metadata", "apiVersion", "kind")}
    if status_too:
        o.pop("status", None)
    return o


# ------------------------------------------------------------------------------------------------
# the server


class KubeAPIServer:
    def __init__(self, ctx: LabContext):
        self.ctx = ctx
        self.dir = Path(ctx.dir) / "kube"
        self.state_file = self.dir / "state.json"
        self.tokens = [ctx.secret("kube_admin_token").encode(), ctx.secret("kube_operator_token").encode()]
        self.lock = threading.RLock()
        self.cond = threading.Condition(self.lock)
        self.objects: dict[str, dict] = {}
        self.rv = 0
        self.history: collections.deque = collections.deque()
        self.floor = 0                # events with rv <= floor are no longer in history
        self.types: dict[str, ResourceType] = {}
        self.reg_gen = 0              # bumps when the served API surface changes (openapi cache key)
        self._openapi_cache: dict = {}
        self._dirty = threading.Event()
        self._stop = threading.Event()
        self.httpd: LabHTTPServer | None = None
        self._threads: list[threading.Thread] = []
        self.url = ""
        self._watching: dict[int, str] = {}   # open watch streams, described (tests wait on these)

    # -------------------------------------------------------------- lifecycle and persistence
    def start(self) -> None:
        self._stop.clear()
        self._load()
        plain = bool(self.ctx.settings.get("plain_http"))
        port = self.ctx.port("kube")
        self.httpd = LabHTTPServer(("127.0.0.1", port), _Handler, component=self,
                                   ssl_context=None if plain else self.ctx.server_ssl_context())
        self.url = f"{'http' if plain else 'https'}://127.0.0.1:{port}"
        self.ctx.urls["kube"] = self.url
        self._threads = [self.httpd.start_background("kube-http"),
                         threading.Thread(target=self._writer, name="kube-writer", daemon=True)]
        self._threads[1].start()
        self._wait_ready(plain, port)
        LOG.info("kube API server on %s (resourceVersion %d, %d objects)", self.url, self.rv, len(self.objects))

    def _wait_ready(self, plain: bool, port: int) -> None:
        import http.client
        deadline = time.monotonic() + 10
        while True:
            try:
                conn = (http.client.HTTPConnection("127.0.0.1", port, timeout=2) if plain else
                        http.client.HTTPSConnection("127.0.0.1", port, timeout=2, context=self.ctx.client_ssl_context()))
                conn.request("GET", "/healthz")
                ok = conn.getresponse().status == 200
                conn.close()
                if ok:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("kube API server did not become ready")
            self._stop.wait(0.02)

    def stop(self) -> None:
        self._stop.set()
        with self.cond:
            self.cond.notify_all()      # wake watch streams so they finish
        if self.httpd:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None
        self._dirty.set()
        for t in self._threads[1:]:
            t.join(timeout=5)
        self._flush()

    def _load(self) -> None:
        with self.lock:
            self.types = {rt.key: rt for rt in _builtin_types()}
            self.objects, self.rv, self.history = {}, 0, collections.deque()
            if self.state_file.exists():
                state = json.loads(self.state_file.read_text())
                self.rv = int(state["resourceVersion"])
                self.objects = state["objects"]
                for key, obj in self.objects.items():
                    if key.startswith(f"{CRD_GROUP}/customresourcedefinitions/"):
                        self._register_crd(obj)
                self.floor = self.rv      # watch history does not survive a restart: older RVs get 410
            else:
                self.floor = 0
                for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
                    self._create(self.types["/namespaces"], "v1", None, {"metadata": {"name": ns}}, {}, [])
            self.reg_gen += 1

    def _writer(self) -> None:
        while not self._stop.is_set():
            self._dirty.wait()
            if self._stop.is_set():
                break
            self._stop.wait(0.05)   # debounce bursts of writes into one file rewrite
            self._flush()

    def _flush(self) -> None:
        with self.lock:
            if not self._dirty.is_set():
                return
            self._dirty.clear()
            data = json.dumps({"resourceVersion": self.rv, "objects": self.objects}, separators=(",", ":"))
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)   # Secrets live here
        with os.fdopen(fd, "w") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.state_file)

    # -------------------------------------------------------------- registry
    def _register_crd(self, crd: dict) -> None:
        spec = crd.get("spec") or {}
        names = spec.get("names") or {}
        served = [v for v in spec.get("versions") or [] if v.get("served")]
        if not served or f"{spec.get('group')}/{names.get('plural')}" in {rt.key for rt in _builtin_types()}:
            return
        storage = next((v["name"] for v in spec["versions"] if v.get("storage")), served[0]["name"])
        rt = ResourceType(
            group=spec["group"], plural=names["plural"], kind=names["kind"], namespaced=spec.get("scope") != "Cluster",
            versions=sorted((v["name"] for v in served), key=_version_priority), storage=storage,
            singular=names.get("singular") or names["kind"].lower(), short_names=names.get("shortNames") or [],
            categories=names.get("categories") or [], builtin=False,
            status_sub=any("status" in (v.get("subresources") or {}) for v in served),
            schemas={v["name"]: (v.get("schema") or {}).get("openAPIV3Schema") or {} for v in served},
            columns={v["name"]: v.get("additionalPrinterColumns") or [] for v in served})
        self.types[rt.key] = rt
        self.reg_gen += 1

    def _unregister(self, key: str) -> None:
        if self.types.pop(key, None):
            self.reg_gen += 1

    def find_type(self, group: str, version: str, plural: str) -> ResourceType | None:
        rt = self.types.get(f"{group}/{plural}")
        return rt if rt and version in rt.versions else None

    def type_for(self, api_version: str, kind: str) -> tuple[ResourceType, str]:
        group, _, version = api_version.rpartition("/")
        with self.lock:
            for rt in self.types.values():
                if rt.group == group and rt.kind == kind and version in rt.versions:
                    return rt, version
        raise ApiError(404, "NotFound", f'no matches for kind "{kind}" in version "{api_version}"')

    # -------------------------------------------------------------- object helpers
    @staticmethod
    def _key(rt: ResourceType, ns: str | None, name: str) -> str:
        return f"{rt.key}/{ns or ''}/{name}"

    def _out(self, rt: ResourceType, version: str, obj: dict) -> dict:
        o = copy.deepcopy(obj)
        o["apiVersion"], o["kind"] = rt.gv(version), rt.kind
        return o

    def _not_found(self, rt: ResourceType, name: str) -> ApiError:
        return ApiError(404, "NotFound", f'{rt.qualified} "{name}" not found',
                        {"name": name, "group": rt.group, "kind": rt.plural})

    def _invalid(self, rt: ResourceType, name: str, causes: list[Cause]) -> ApiError:
        texts = [c.text() for c in causes]
        msg = texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"
        kind = f"{rt.kind}.{rt.group}" if rt.group else rt.kind
        return ApiError(422, "Invalid", f'{kind} "{name}" is invalid: {msg}',
                        {"name": name, "group": rt.group, "kind": rt.kind, "causes": [dict(c) for c in causes]})

    def _get(self, rt: ResourceType, ns: str | None, name: str) -> dict | None:
        return self.objects.get(self._key(rt, ns, name))

    def _emit(self, etype: str, rt: ResourceType, obj: dict, old: dict | None) -> None:
        self.history.append((self.rv, etype, rt.key, obj, old))
        while len(self.history) > HISTORY:
            self.floor = self.history.popleft()[0]
        self._dirty.set()
        self.cond.notify_all()

    def _decode(self, rt: ResourceType, version: str, body: Any) -> dict:
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "the request body is not a JSON object")
        obj = copy.deepcopy(body)
        if obj.get("apiVersion") not in (None, rt.gv(version)) or obj.get("kind") not in (None, rt.kind):
            raise ApiError(400, "BadRequest", f'the API version in the data ({obj.get("apiVersion")}) does not match the '
                           f'expected API version ({rt.gv(version)})' if obj.get("kind") in (None, rt.kind) else
                           f'the kind in the data ({obj.get("kind")}) does not match the expected kind ({rt.kind})')
        if not isinstance(obj.setdefault("metadata", {}), dict):
            raise ApiError(400, "BadRequest", "metadata must be an object")
        obj["apiVersion"], obj["kind"] = rt.gv(version), rt.kind
        return obj

    def _prepare(self, rt: ResourceType, version: str, obj: dict, q: dict, warnings: list, old: dict | None) -> None:
        """Prune unknown fields (fieldValidation), default, validate, then kind-specific normalisation."""
        schema = rt.schema(version)
        unknown = prune(schema, obj)
        fv = q.get("fieldValidation") or "Warn"
        if unknown and fv == "Strict":
            raise ApiError(400, "BadRequest", f'{rt.kind} in version "{version}" cannot be handled as a {rt.kind}: '
                           "strict decoding error: " + ", ".join(f'unknown field "{u}"' for u in unknown))
        if fv == "Warn":
            warnings += [f'unknown field "{u}"' for u in unknown]
        default(schema, obj)
        md = obj["metadata"]
        name = md.get("name", "")
        causes = validate_name(name, label=rt.kind == "Namespace") if name else [
            Cause("FieldValueRequired", "metadata.name", "Required value: name or generateName is required")]
        causes += validate(schema, obj)
        hook = getattr(self, f"_hook_{rt.kind.lower()}", None)
        if hook:
            causes += hook(rt, obj, old) or []
        if causes:
            raise self._invalid(rt, name, causes)

    # kind-specific behaviour of the real API server ------------------------------------------
    def _hook_secret(self, rt, obj, old):
        data = obj.get("data") or {}
        for k, v in data.items():
            try:
                base64.b64decode(v, validate=True)
            except (ValueError, TypeError):
                raise ApiError(400, "BadRequest", f'Secret in version "v1" cannot be handled as a Secret: '
                               f'illegal base64 data in data[{k!r}]') from None
        for k, v in (obj.pop("stringData", None) or {}).items():
            data[k] = base64.b64encode(v.encode()).decode()
        if data:
            obj["data"] = data
        obj.setdefault("type", "Opaque")
        return self._immutable(obj, old) + [Cause("FieldValueInvalid", f"data[{k}]", f"Invalid value: {json.dumps(k)}: "
                                                  "a valid config key must consist of alphanumeric characters, '-', '_' or '.'")
                                            for k in data if not re.fullmatch(r"[-._a-zA-Z0-9]+", k)]

    def _hook_configmap(self, rt, obj, old):
        return self._immutable(obj, old)

    @staticmethod
    def _immutable(obj, old):
        if old and old.get("immutable") and any(obj.get(f) != old.get(f) for f in ("data", "binaryData", "immutable")):
            return [Cause("FieldValueForbidden", "data", "Forbidden: field is immutable when `immutable` is set")]
        return []

    def _hook_namespace(self, rt, obj, old):
        md = obj["metadata"]
        md.setdefault("labels", {})["kubernetes.io/metadata.name"] = md.get("name", "")
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        obj["status"] = {"phase": "Terminating" if md.get("deletionTimestamp") else "Active"}

    def _hook_customresourcedefinition(self, rt, obj, old):
        spec, md = obj.get("spec") or {}, obj["metadata"]
        names = spec.get("names") or {}
        causes = []
        if md.get("name") != f"{names.get('plural')}.{spec.get('group')}":
            causes.append(Cause("FieldValueInvalid", "metadata.name",
                                f'Invalid value: {json.dumps(md.get("name"))}: must be spec.names.plural+"."+spec.group'))
        versions = spec.get("versions") or []
        if sum(1 for v in versions if v.get("storage")) != 1:
            causes.append(Cause("FieldValueInvalid", "spec.versions", "Invalid value: must have exactly one version marked as storage version"))
        for i, v in enumerate(versions):
            if not isinstance((v.get("schema") or {}).get("openAPIV3Schema"), dict):
                causes.append(Cause("FieldValueRequired", f"spec.versions[{i}].schema.openAPIV3Schema", "Required value: schemas are required"))
        if old and (old["spec"].get("group"), old["spec"]["names"].get("plural")) != (spec.get("group"), names.get("plural")):
            causes.append(Cause("FieldValueInvalid", "spec.group", "Invalid value: field is immutable"))
        if causes:
            return causes
        for v in versions:
            v.setdefault("subresources", v.get("subresources") or {})
        spec.setdefault("conversion", {"strategy": "None"})
        accepted = {**names, "singular": names.get("singular") or names["kind"].lower(),
                    "listKind": names.get("listKind") or names["kind"] + "List"}
        spec["names"] = dict(accepted)
        prev = {c["type"]: c for c in ((old or {}).get("status") or {}).get("conditions", [])}
        now = now_iso()

        def cond(t, reason, msg):
            return {"type": t, "status": "True", "reason": reason, "message": msg,
                    "lastTransitionTime": prev.get(t, {}).get("lastTransitionTime", now)}
        stored = ((old or {}).get("status") or {}).get("storedVersions") or []
        storage = next(v["name"] for v in versions if v.get("storage"))
        obj["status"] = {"acceptedNames": accepted, "storedVersions": stored + [storage] * (storage not in stored),
                         "conditions": [cond("NamesAccepted", "NoConflicts", "no conflicts found"),
                                        cond("Established", "InitialNamesAccepted", "the initial names have been accepted")]}
        if md.get("deletionTimestamp"):
            obj["status"]["conditions"].append({"type": "Terminating", "status": "True", "reason": "InstanceDeletionInProgress",
                                                "message": "CustomResource deletion is in progress", "lastTransitionTime": now})
        return []

    # -------------------------------------------------------------- verbs
    def _create(self, rt, version, ns, body, q, warnings) -> dict:
        obj = self._decode(rt, version, body)
        md = obj["metadata"]
        if rt.namespaced:
            if md.get("namespace") not in (None, "", ns):
                raise ApiError(400, "BadRequest", "the namespace of the provided object does not match the namespace sent on the request")
            md["namespace"] = ns
        else:
            md.pop("namespace", None)
        if not md.get("name") and md.get("generateName"):
            md["name"] = md["generateName"] + "".join(random.choices("bcdfghjklmnpqrstvwxz2456789", k=5))
        for k in ("uid", "resourceVersion", "generation", "creationTimestamp", "deletionTimestamp",
                  "deletionGracePeriodSeconds", "selfLink", "managedFields"):
            md.pop(k, None)
        if rt.status_sub:
            obj.pop("status", None)
        with self.lock:
            self._prepare(rt, version, obj, q, warnings, None)
            name = md["name"]
            if rt.namespaced:
                nso = self._get(self.types["/namespaces"], None, ns)
                if nso is None:
                    raise ApiError(404, "NotFound", f'namespaces "{ns}" not found', {"name": ns, "group": "", "kind": "namespaces"})
                if nso["metadata"].get("deletionTimestamp"):
                    raise ApiError(403, "Forbidden", f'{rt.plural} "{name}" is forbidden: unable to create new content in '
                                   f'namespace {ns} because it is being terminated')
            if self._get(rt, ns, name) is not None:
                raise ApiError(409, "AlreadyExists", f'{rt.qualified} "{name}" already exists',
                               {"name": name, "group": rt.group, "kind": rt.plural})
            md["uid"] = str(uuid.uuid4())
            md["creationTimestamp"] = now_iso()
            if rt.has_generation:
                md["generation"] = 1
            if _dry(q):
                return obj
            self.rv += 1
            md["resourceVersion"] = str(self.rv)
            stored = self._out(rt, rt.storage, obj)
            self.objects[self._key(rt, ns, name)] = stored
            if rt.kind == "CustomResourceDefinition":
                self._register_crd(stored)
            self._emit("ADDED", rt, stored, None)
            return obj

    def _update(self, rt, version, ns, name, body, q, warnings, sub=None) -> dict:
        obj = self._decode(rt, version, body)
        if obj["metadata"].get("name") not in (None, name):
            raise ApiError(400, "BadRequest", f'the name of the object ({obj["metadata"]["name"]}) does not match the name on the URL ({name})')
        with self.lock:
            old = self._get(rt, ns, name)
            if old is None:
                raise self._not_found(rt, name)
            omd = old["metadata"]
            want_rv = obj["metadata"].get("resourceVersion")
            if want_rv and want_rv != omd["resourceVersion"]:
                raise ApiError(409, "Conflict", f'Operation cannot be fulfilled on {rt.qualified} "{name}": the object has been '
                               "modified; please apply your changes to the latest version and try again",
                               {"name": name, "group": rt.group, "kind": rt.plural})
            old_v = self._out(rt, version, old)
            if sub == "status":      # only .status changes through /status
                new = copy.deepcopy(old_v)
                if "status" in obj:
                    new["status"] = obj["status"]
                else:
                    new.pop("status", None)
            else:
                new = obj
                md = new["metadata"]
                for k in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation",
                          "namespace", "name", "resourceVersion"):
                    if k in omd:
                        md[k] = omd[k]
                    else:
                        md.pop(k, None)
                md.pop("managedFields", None)
                if rt.status_sub:
                    if "status" in old_v:
                        new["status"] = old_v["status"]
                    else:
                        new.pop("status", None)
            self._prepare(rt, version, new, q, warnings, old_v)
            if new == old_v:
                return old_v                  # a no-op write keeps resourceVersion and emits nothing
            md = new["metadata"]
            if rt.has_generation and _strip_for_compare(new, rt.status_sub) != _strip_for_compare(old_v, rt.status_sub):
                md["generation"] = int(omd.get("generation", 1)) + 1
            if _dry(q):
                return new
            if md.get("deletionTimestamp") and not md.get("finalizers") and not self._has_children(rt, new):
                self._remove(rt, ns, name, new)
                return new
            self.rv += 1
            md["resourceVersion"] = str(self.rv)
            stored = self._out(rt, rt.storage, new)
            self.objects[self._key(rt, ns, name)] = stored
            if rt.kind == "CustomResourceDefinition":
                self._register_crd(stored)
            self._emit("MODIFIED", rt, stored, old)
            return new

    def _patch(self, rt, version, ns, name, body: bytes, ctype: str, q, warnings, sub=None) -> tuple[int, dict]:
        ctype = (ctype or "").split(";")[0].strip().lower()
        if ctype == SMP and not rt.builtin or ctype not in (MERGE, JSON_PATCH, SMP, APPLY):
            raise ApiError(415, "UnsupportedMediaType", f"the body of the request was in an unknown format - accepted media "
                           f"types include: {JSON_PATCH}, {MERGE}, {APPLY}" + (f", {SMP}" if rt.builtin else ""))
        try:
            patch = yaml.safe_load(body) if ctype == APPLY else json.loads(body or b"null")
        except (ValueError, yaml.YAMLError) as e:
            raise ApiError(400, "BadRequest", f"error decoding patch: {e}") from None
        if ctype == APPLY:
            if not q.get("fieldManager"):
                raise ApiError(400, "BadRequest", 'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: '
                               "is required for apply patch")
            if not isinstance(patch, dict):
                raise ApiError(400, "BadRequest", "apply patch must be an object")
        with self.lock:
            old = self._get(rt, ns, name)
            if old is None:
                if ctype == APPLY and sub is None:
                    md = patch.setdefault("metadata", {})
                    if md.get("name") not in (None, name):
                        raise ApiError(400, "BadRequest", "the name of the object does not match the name on the URL")
                    md["name"] = name
                    return 201, self._create(rt, version, ns, patch, q, warnings)
                raise self._not_found(rt, name)
            cur = self._out(rt, version, old)
            if ctype == JSON_PATCH:
                try:
                    new = jsonpatch.apply_patch(cur, patch)
                except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, TypeError) as e:
                    raise ApiError(422, "Invalid", f"the server rejected our request due to an error in our request: {e}") from None
            else:
                if not isinstance(patch, dict):
                    raise ApiError(400, "BadRequest", "patch body must be a JSON object")
                if ctype == APPLY and patch.get("apiVersion") not in (None, rt.gv(version)):
                    raise ApiError(400, "BadRequest", "apiVersion of the apply patch does not match the request")
                new = merge_patch(cur, patch, directives=ctype == SMP)
            if isinstance(new, dict) and isinstance(new.get("metadata"), dict) and ctype != JSON_PATCH:
                new["metadata"].setdefault("resourceVersion", old["metadata"]["resourceVersion"])
            return 200, self._update(rt, version, ns, name, new, q, warnings, sub)

    def _delete(self, rt, version, ns, name, body: bytes, q) -> dict:
        try:
            opts = json.loads(body) if body.strip() else {}
        except ValueError:
            raise ApiError(400, "BadRequest", "invalid DeleteOptions") from None
        pre = (opts or {}).get("preconditions") or {}
        with self.lock:
            old = self._get(rt, ns, name)
            if old is None:
                raise self._not_found(rt, name)
            md = old["metadata"]
            for k in ("uid", "resourceVersion"):
                if pre.get(k) and pre[k] != md.get(k):
                    raise ApiError(409, "Conflict", f"Precondition failed: {k.upper() if k == 'uid' else 'ResourceVersion'} in "
                                   f"precondition: {pre[k]}, {k} in object meta: {md.get(k)}",
                                   {"name": name, "group": rt.group, "kind": rt.plural})
            if _dry(q) or "All" in (opts or {}).get("dryRun", []):
                return self._out(rt, version, old)
            if rt.kind in ("Namespace", "CustomResourceDefinition") and not md.get("deletionTimestamp"):
                self._cascade(rt, old)
            old = self._get(rt, ns, name)
            if old is None:               # removed by the cascade already
                return self._success(rt, name, md)
            if old["metadata"].get("finalizers") or self._has_children(rt, old):
                if old["metadata"].get("deletionTimestamp"):
                    return self._out(rt, version, old)
                new = self._out(rt, version, old)
                new["metadata"]["deletionTimestamp"] = now_iso()
                new["metadata"]["deletionGracePeriodSeconds"] = 0
                hook = getattr(self, f"_hook_{rt.kind.lower()}", None)
                if hook:
                    hook(rt, new, old)
                self.rv += 1
                new["metadata"]["resourceVersion"] = str(self.rv)
                stored = self._out(rt, rt.storage, new)
                self.objects[self._key(rt, ns, name)] = stored
                self._emit("MODIFIED", rt, stored, old)
                return new
            gone = self._remove(rt, ns, name, self._out(rt, version, old))
            return gone if not rt.builtin or rt.kind == "CustomResourceDefinition" else self._success(rt, name, md)

    @staticmethod
    def _success(rt, name, md) -> dict:
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                "details": {"name": name, "group": rt.group, "kind": rt.plural, "uid": md.get("uid")}}

    def _remove(self, rt, ns, name, last: dict) -> dict:
        """Drop an object for good (DELETED event), then finish a terminating namespace/CRD it held up."""
        self.objects.pop(self._key(rt, ns, name), None)
        self.rv += 1
        last = copy.deepcopy(last)
        last["metadata"]["resourceVersion"] = str(self.rv)
        self._emit("DELETED", rt, self._out(rt, rt.storage, last), None)
        if rt.kind == "CustomResourceDefinition":
            self._unregister(f"{last['spec']['group']}/{last['spec']['names']['plural']}")
        parents = []
        if rt.namespaced:
            parents.append((self.types["/namespaces"], ns))
        if not rt.builtin:
            parents.append((self.types[f"{CRD_GROUP}/customresourcedefinitions"], rt.qualified))
        for prt, pname in parents:
            p = self._get(prt, None, pname)
            if p and p["metadata"].get("deletionTimestamp") and not p["metadata"].get("finalizers") \
                    and not self._has_children(prt, p):
                self._remove(prt, None, pname, p)
        return last

    def _children(self, rt, obj) -> list[tuple[ResourceType, str, str]]:
        md = obj["metadata"]
        if rt.kind == "Namespace":
            return [(self.types[k.rsplit("/", 2)[0]], k.rsplit("/", 2)[1], k.rsplit("/", 2)[2])
                    for k in self.objects if k.rsplit("/", 2)[1] == md["name"] and k.rsplit("/", 2)[0] in self.types
                    and self.types[k.rsplit("/", 2)[0]].namespaced]
        if rt.kind == "CustomResourceDefinition":
            prefix = f"{obj['spec']['group']}/{obj['spec']['names']['plural']}/"
            crt = self.types.get(prefix[:-1])
            return [(crt, k.rsplit("/", 2)[1] or None, k.rsplit("/", 2)[2]) for k in self.objects if k.startswith(prefix)] if crt else []
        return []

    def _has_children(self, rt, obj) -> bool:
        return bool(self._children(rt, obj))

    def _cascade(self, rt, obj) -> None:
        """Deleting a namespace or CRD deletes what it contains (finalizers still hold objects)."""
        for crt, cns, cname in self._children(rt, obj):
            try:
                self._delete(crt, crt.storage, cns, cname, b"", {})
            except ApiError:
                pass

    # -------------------------------------------------------------- reads
    def _select(self, rt, ns, q) -> list[dict]:
        labels = parse_label_selector(q.get("labelSelector"))
        fields = parse_field_selector(q.get("fieldSelector"), rt)
        prefix = f"{rt.key}/{ns}/" if ns else f"{rt.key}/"
        return [o for k, o in sorted(self.objects.items()) if k.startswith(prefix)
                and _labels_match(labels, o["metadata"].get("labels") or {}) and _fields_match(fields, o)]

    def _list(self, rt, version, ns, q) -> dict:
        with self.lock:
            items = [self._out(rt, version, o) for o in self._select(rt, ns, q)]
            rv = str(self.rv)
        meta: dict = {"resourceVersion": rv}
        start = 0
        if q.get("continue"):
            try:
                start = int(json.loads(base64.urlsafe_b64decode(q["continue"]))["start"])
            except (ValueError, KeyError, TypeError):
                raise ApiError(400, "BadRequest", "continue key is not valid") from None
        limit = int(q.get("limit") or 0)
        end = start + limit if limit > 0 else len(items)
        if end < len(items):
            meta["continue"] = base64.urlsafe_b64encode(json.dumps({"start": end}).encode()).decode()
            meta["remainingItemCount"] = len(items) - end
        return {"apiVersion": rt.gv(version), "kind": f"{rt.kind}List", "metadata": meta, "items": items[start:end]}

    def _table(self, rt, version, objs: list[dict], meta: dict) -> dict:
        cols = [{"name": "Name", "type": "string", "format": "name", "description": "Name must be unique within a namespace.", "priority": 0}]
        extra = rt.columns.get(version) or {
            "Secret": [{"name": "Type", "jsonPath": ".type", "type": "string"}],
            "Namespace": [{"name": "Status", "jsonPath": ".status.phase", "type": "string"}]}.get(rt.kind, [])
        extra = [c for c in extra if c.get("type") != "date"]
        cols += [{"name": c["name"], "type": c.get("type", "string"), "format": c.get("format", ""),
                  "description": c.get("description", ""), "priority": c.get("priority", 0)} for c in extra]
        cols.append({"name": "Age", "type": "date", "format": "", "description": "creation time", "priority": 0})
        rows = []
        for o in objs:
            cells = [o["metadata"]["name"]]
            for c in extra:
                vals = _jsonpath(o, c["jsonPath"])
                cells.append(vals[0] if len(vals) == 1 else ",".join(map(str, vals)) if vals else None)
            cells.append(_age(o["metadata"].get("creationTimestamp")))
            rows.append({"cells": cells, "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                                                    "metadata": o["metadata"]}})
        return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta, "columnDefinitions": cols, "rows": rows}

    # -------------------------------------------------------------- discovery + openapi
    def _groups(self) -> dict[str, list[str]]:
        groups: dict[str, set] = {}
        for rt in self.types.values():
            if rt.group:
                groups.setdefault(rt.group, set()).update(rt.versions)
        return {g: sorted(vs, key=_version_priority) for g, vs in sorted(groups.items())}

    @staticmethod
    def _group_body(g: str, vs: list[str]) -> dict:
        return {"name": g, "versions": [{"groupVersion": f"{g}/{v}", "version": v} for v in vs],
                "preferredVersion": {"groupVersion": f"{g}/{vs[0]}", "version": vs[0]}}

    def _resource_list(self, group: str, version: str) -> dict:
        res = []
        for rt in sorted(self.types.values(), key=lambda r: r.plural):
            if rt.group != group or version not in rt.versions:
                continue
            entry = {"name": rt.plural, "singularName": rt.singular, "namespaced": rt.namespaced, "kind": rt.kind,
                     "verbs": VERBS if rt.kind != "Namespace" else [v for v in VERBS if v != "deletecollection"],
                     "storageVersionHash": base64.b64encode(hashlib.sha256(f"{rt.key}/{rt.storage}".encode()).digest()[:8]).decode()}
            if rt.short_names:
                entry["shortNames"] = rt.short_names
            if rt.categories:
                entry["categories"] = rt.categories
            res.append(entry)
            if rt.status_sub:
                res.append({"name": f"{rt.plural}/status", "singularName": "", "namespaced": rt.namespaced,
                            "kind": rt.kind, "verbs": ["get", "patch", "update"]})
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": f"{group}/{version}" if group else version,
                "resources": res}

    def _openapi_docs(self) -> dict[str, dict]:
        with self.lock:
            if self._openapi_cache.get("gen") == self.reg_gen:
                return self._openapi_cache["docs"]
            gvs: dict[str, list[tuple[ResourceType, str]]] = {}
            for rt in self.types.values():
                for v in rt.versions:
                    gvs.setdefault(f"apis/{rt.group}/{v}" if rt.group else f"api/{v}", []).append((rt, v))
            docs = {k: _openapi_doc(k, rts) for k, rts in gvs.items()}
            for d in docs.values():
                d["_hash"] = hashlib.sha512(json.dumps(d, sort_keys=True).encode()).hexdigest().upper()
            self._openapi_cache = {"gen": self.reg_gen, "docs": docs}
            return docs

    # -------------------------------------------------------------- request dispatch (HTTP-free)
    def handle(self, method: str, path: str, q: dict, headers, body: bytes):
        """Returns (status, body-object, extra headers) or a _Watch to stream."""
        parts = [p for p in path.split("/") if p]
        accept = (headers.get("Accept") or "") if headers else ""
        if path in ("/healthz", "/readyz", "/livez") or (parts and parts[0] in ("healthz", "readyz", "livez")):
            return 200, b"ok", {}
        if parts == ["version"]:
            return 200, K8S_VERSION, {}
        if parts and parts[0] == "openapi":
            return self._openapi(parts[1:], q)
        if parts == ["api"]:
            return 200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": self.url.split("//", 1)[-1]}]}, {}
        with self.lock:
            groups = self._groups()
        if parts == ["apis"]:
            return 200, {"kind": "APIGroupList", "apiVersion": "v1",
                         "groups": [self._group_body(g, vs) for g, vs in groups.items()]}, {}
        if len(parts) >= 2 and parts[0] == "api":
            group, version, rest = "", parts[1], parts[2:]
            if version != "v1":
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
        elif len(parts) >= 2 and parts[0] == "apis":
            group = parts[1]
            if group not in groups:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            if len(parts) == 2:
                return 200, {"kind": "APIGroup", "apiVersion": "v1", **self._group_body(group, groups[group])}, {}
            version, rest = parts[2], parts[3:]
            if version not in groups[group]:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
        else:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if not rest:
            with self.lock:
                return 200, self._resource_list(group, version), {}
        if rest[0] == "watch":                 # legacy /watch/ paths
            rest, q = rest[1:], {**q, "watch": "true"}
        ns = None
        if len(rest) >= 3 and rest[0] == "namespaces":
            cand = self.find_type(group, version, rest[2])
            if cand and cand.namespaced:
                ns, rest = rest[1], rest[2:]
        if not rest or len(rest) > 3:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        rt = self.find_type(group, version, rest[0])
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if rt is None or (rt.namespaced and name and ns is None) or (not rt.namespaced and ns) \
                or (sub and (sub != "status" or not rt.status_sub)):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if rt.namespaced and ns is None and method != "GET":
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
        warnings: list[str] = []
        table = "as=Table" in accept
        if method == "GET" and name is None and q.get("watch", "").lower() in ("true", "1"):
            return _Watch(rt, version, ns, q)
        if method == "GET":
            if name is None:
                lst = self._list(rt, version, ns, q)
                return 200, (self._table(rt, version, lst["items"], lst["metadata"]) if table else lst), {}
            with self.lock:
                obj = self._get(rt, ns, name)
                if obj is None:
                    raise self._not_found(rt, name)
                obj = self._out(rt, version, obj)
            return 200, (self._table(rt, version, [obj], {"resourceVersion": obj["metadata"]["resourceVersion"]}) if table else obj), {}
        if method in ("POST", "PUT"):
            try:
                data = json.loads(body or b"null")
            except ValueError as e:
                if (headers.get("Content-Type") or "").startswith("application/vnd.kubernetes.protobuf"):
                    raise ApiError(415, "UnsupportedMediaType", "the body of the request was in an unknown format - "
                                   "accepted media types include: application/json, application/yaml") from None
                raise ApiError(400, "BadRequest", f"error decoding body: {e}") from None
            if method == "POST" and name is None:
                return 201, self._create(rt, version, ns, data, q, warnings), _warn(warnings)
            if method == "PUT" and name:
                if not rt.builtin and isinstance(data, dict) and not (data.get("metadata") or {}).get("resourceVersion"):
                    # custom resources allow no unconditional update (AllowUnconditionalUpdate=false)
                    raise self._invalid(rt, name, [Cause("FieldValueInvalid", "metadata.resourceVersion",
                                                         "Invalid value: 0x0: must be specified for an update")])
                return 200, self._update(rt, version, ns, name, data, q, warnings, sub), _warn(warnings)
        if method == "PATCH" and name:
            code, obj = self._patch(rt, version, ns, name, body, headers.get("Content-Type"), q, warnings, sub)
            return code, obj, _warn(warnings)
        if method == "DELETE" and name and not sub:
            return 200, self._delete(rt, version, ns, name, body, q), {}
        if method == "DELETE" and name is None:
            with self.lock:
                names = [(o["metadata"].get("namespace"), o["metadata"]["name"]) for o in self._select(rt, ns, q)]
                items = [self._delete(rt, version, n, nm, body, q) for n, nm in names]
            return 200, {"apiVersion": rt.gv(version), "kind": f"{rt.kind}List", "metadata": {"resourceVersion": str(self.rv)},
                         "items": [i for i in items if i.get("kind") == rt.kind]}, {}
        raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")

    def _openapi(self, parts, q):
        docs = self._openapi_docs()
        if parts == ["v3"]:
            return 200, {"paths": {k: {"serverRelativeURL": f"/openapi/v3/{k}?hash={d['_hash']}"} for k, d in docs.items()}}, {}
        if parts and parts[0] == "v3" and "/".join(parts[1:]) in docs:
            d = docs["/".join(parts[1:])]
            body = {k: v for k, v in d.items() if k != "_hash"}
            immutable = q.get("hash") == d["_hash"]
            return 200, body, {"Etag": f'"{d["_hash"]}"', "Cache-Control": "public, immutable" if immutable else "no-cache, private"}
        raise ApiError(404, "NotFound", "the server could not find the requested resource")

    # -------------------------------------------------------------- watch
    def serve_watch(self, h: _Handler, w: _Watch) -> None:
        rt, version, ns, q = w.rt, w.version, w.ns, w.q
        labels = parse_label_selector(q.get("labelSelector"))
        fields = parse_field_selector(q.get("fieldSelector"), rt)
        try:
            timeout = float(q.get("timeoutSeconds") or DEFAULT_WATCH_TIMEOUT)
        except ValueError:
            raise ApiError(400, "BadRequest", "invalid timeoutSeconds") from None
        bookmarks = q.get("allowWatchBookmarks", "").lower() == "true"
        table = "as=Table" in (h.headers.get("Accept") or "")   # kubectl get -w
        initial_events = q.get("sendInitialEvents", "").lower() == "true"
        rv_param = q.get("resourceVersion") or ""

        def match(o):
            return o is not None and (not ns or o["metadata"].get("namespace") == ns) and \
                _labels_match(labels, o["metadata"].get("labels") or {}) and _fields_match(fields, o)

        expired = None
        with self.lock:
            if initial_events or rv_param in ("", "0"):
                initial = [self._out(rt, version, o) for o in self._select(rt, ns, q)]
                last = self.rv
            else:
                try:
                    last = int(rv_param)
                except ValueError:
                    raise ApiError(400, "BadRequest", f"invalid resource version: {rv_param}") from None
                initial = []
                if last < self.floor:
                    expired = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "reason": "Expired",
                               "code": 410, "message": f"too old resource version: {last} ({self.floor})"}
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Transfer-Encoding", "chunked")
        h.send_header("Cache-Control", "no-cache, private")
        h.end_headers()

        def bookmark(extra_annotations=None):
            md = {"resourceVersion": str(last)}
            if extra_annotations:
                md["annotations"] = extra_annotations
            return {"type": "BOOKMARK", "object": {"kind": rt.kind, "apiVersion": rt.gv(version), "metadata": md}}

        deadline = time.monotonic() + timeout
        next_bookmark = time.monotonic() + BOOKMARK_EVERY
        with self.lock:
            self._watching[id(h)] = f"{rt.qualified} ns={ns or ''} {q.get('fieldSelector') or ''}".strip()
        try:
            if expired:
                h.write_chunk({"type": "ERROR", "object": expired})
                return
            for o in initial:
                h.write_chunk({"type": "ADDED", "object": self._table(rt, version, [o], {}) if table else o})
            if initial_events and bookmarks:
                h.write_chunk(bookmark({"k8s.io/initial-events-end": "true"}))
            while not self._stop.is_set():
                now = time.monotonic()
                if now >= deadline:
                    break
                with self.cond:
                    pending = [e for e in self.history if e[0] > last]
                    if not pending:
                        self.cond.wait(min(1.0, deadline - now))
                        pending = [e for e in self.history if e[0] > last]
                    if pending and pending[0][0] > last + 1 and last < self.floor:
                        h.write_chunk({"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1", "metadata": {},
                                       "status": "Failure", "reason": "Expired", "code": 410, "message": "watch fell behind"}})
                        return
                out = []
                for erv, etype, key, obj, old in pending:
                    last = erv
                    if key != rt.key:
                        continue
                    now_m, was_m = match(obj), match(old)
                    if etype == "MODIFIED" and now_m != was_m:
                        etype = "ADDED" if now_m else "DELETED"
                        if not now_m:
                            obj = {**old, "metadata": {**old["metadata"], "resourceVersion": obj["metadata"]["resourceVersion"]}}
                    elif not now_m:
                        continue
                    o = self._out(rt, version, obj)
                    out.append({"type": etype, "object": self._table(rt, version, [o], {}) if table else o})
                for ev in out:
                    h.write_chunk(ev)
                if bookmarks and time.monotonic() >= next_bookmark:
                    h.write_chunk(bookmark())
                    next_bookmark = time.monotonic() + BOOKMARK_EVERY
                if h.client_gone():
                    return
        except (OSError, ssl.SSLError, ValueError):
            h.close_connection = True
            return
        except Exception:
            LOG.exception("kube: watch on %s failed", rt.qualified)
            h.close_connection = True
            return
        finally:
            with self.lock:
                self._watching.pop(id(h), None)
            if not h.close_connection:
                try:
                    h.wfile.write(b"0\r\n\r\n")
                    h.wfile.flush()
                except (OSError, ValueError):
                    h.close_connection = True

    def watches(self) -> list[str]:
        """Descriptions of the open watch streams, e.g. 'backends.capabilities.3scale.net ns=3scale metadata.name=x'."""
        with self.lock:
            return list(self._watching.values())

    # -------------------------------------------------------------- in-process helper for the orchestrator
    def apply_manifest(self, obj: dict, field_manager: str = "maaslab") -> dict:
        """Server-side apply one manifest through the same code path as HTTP (raises ApiError)."""
        rt, version = self.type_for(obj.get("apiVersion", ""), obj.get("kind", ""))
        md = obj.get("metadata") or {}
        ns = (md.get("namespace") or "default") if rt.namespaced else None
        _, result = self._patch(rt, version, ns, md.get("name", ""), json.dumps(obj).encode(), APPLY,
                                {"fieldManager": field_manager, "force": "true"}, [])
        return result

    def get_object(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict | None:
        rt, version = self.type_for(api_version, kind)
        with self.lock:
            o = self._get(rt, namespace if rt.namespaced else None, name)
            return self._out(rt, version, o) if o else None


@dataclass
class _Watch:
    rt: ResourceType
    version: str
    ns: str | None
    q: dict


def _dry(q: dict) -> bool:
    return q.get("dryRun") == "All"


def _warn(warnings: list[str]) -> dict:
    return {"Warning": [f'299 - {json.dumps(w)}' for w in warnings]} if warnings else {}


def _reverse_group(group: str) -> str:
    return ".".join(reversed(group.split(".")))


def _schema_name(rt: ResourceType, version: str, list_: bool = False) -> str:
    kind = rt.kind + ("List" if list_ else "")
    if rt.group == CRD_GROUP:
        return f"io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.{version}.{kind}"
    if rt.builtin:
        return f"io.k8s.api.core.{version}.{kind}"
    return f"{_reverse_group(rt.group)}.{version}.{kind}"


def _openapi_doc(key: str, rts: list[tuple[ResourceType, str]]) -> dict:
    """One group-version document of /openapi/v3: paths with GVK extensions and the query
    parameters kubectl probes (fieldValidation on PATCH), plus component schemas."""
    meta = "io.k8s.apimachinery.pkg.apis.meta.v1"
    schemas: dict[str, Any] = {
        f"{meta}.ObjectMeta": OBJECT_META,
        f"{meta}.ListMeta": {"type": "object", "properties": {"resourceVersion": {"type": "string"}, "continue": {"type": "string"},
                                                              "remainingItemCount": {"type": "integer"}}},
        f"{meta}.Status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True,
                           "x-kubernetes-group-version-kind": [{"group": "", "kind": "Status", "version": "v1"}]},
        f"{meta}.Patch": {"type": "object"},
        f"{meta}.DeleteOptions": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
    }
    paths: dict[str, Any] = {}

    def qp(*names):
        return [{"name": n, "in": "query", "schema": {"type": "string", "uniqueItems": True}} for n in names]

    def ref(name):
        return {"content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}}}

    for rt, v in rts:
        name = _schema_name(rt, v)
        gvk = {"group": rt.group, "version": v, "kind": rt.kind}
        s = openapi_published(rt.schema(v)) if not rt.builtin else copy.deepcopy(rt.schema(v))
        if rt.builtin:
            s["properties"]["metadata"] = {"allOf": [{"$ref": f"#/components/schemas/{meta}.ObjectMeta"}]}
        s["x-kubernetes-group-version-kind"] = [gvk]
        schemas[name] = s
        schemas[_schema_name(rt, v, True)] = {
            "type": "object", "required": ["items"], "x-kubernetes-group-version-kind": [{**gvk, "kind": rt.kind + "List"}],
            "properties": {"apiVersion": {"type": "string"}, "kind": {"type": "string"},
                           "items": {"type": "array", "items": {"$ref": f"#/components/schemas/{name}"}},
                           "metadata": {"allOf": [{"$ref": f"#/components/schemas/{meta}.ListMeta"}]}}}
        base = "/" + key + ("/namespaces/{namespace}" if rt.namespaced else "") + f"/{rt.plural}"
        ok = {"200": {"description": "OK", **ref(name)}}
        created = {**ok, "201": {"description": "Created", **ref(name)}}

        def op(action, params=(), body=False, resp=ok, _gvk=gvk, _kind=rt.kind, _name=name):
            o = {"operationId": f"{action}{_kind}", "x-kubernetes-action": action,
                 "x-kubernetes-group-version-kind": _gvk, "parameters": qp(*params), "responses": resp}
            if body:
                o["requestBody"] = {"content": {"*/*": {"schema": {"$ref": f"#/components/schemas/{_name}"}}}}
            return o
        path_params = ([{"name": "namespace", "in": "path", "required": True, "schema": {"type": "string"}}]
                       if rt.namespaced else [])
        name_param = [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}]
        write = ("dryRun", "fieldManager", "fieldValidation")
        paths[base] = {"parameters": path_params,
                       "get": op("list", ("labelSelector", "fieldSelector", "limit", "continue", "watch", "resourceVersion",
                                          "timeoutSeconds", "allowWatchBookmarks", "sendInitialEvents")),
                       "post": op("post", write, True, created),
                       "delete": op("deletecollection", ("labelSelector", "fieldSelector", "dryRun"))}
        item = {"get": op("get"), "put": op("put", write, True, created),
                "patch": op("patch", write + ("force",), True, created), "delete": op("delete", ("dryRun",))}
        paths[base + "/{name}"] = {"parameters": path_params + name_param, **item}
        if rt.status_sub:
            paths[base + "/{name}/status"] = {"parameters": path_params + name_param, "get": op("get"),
                                              "put": op("put", write, True, created),
                                              "patch": op("patch", write + ("force",), True, created)}
        if rt.namespaced:
            paths["/" + key + f"/{rt.plural}"] = {"get": op("list", ("labelSelector", "fieldSelector", "limit", "watch"))}
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": K8S_VERSION["gitVersion"]},
            "paths": paths, "components": {"schemas": schemas}}


class _Handler(JSONHandler):
    def _dispatch(self) -> None:
        body = self.read_body()      # always drain the body so keep-alive stays in sync
        srv: KubeAPIServer = self.server.component
        url = urlsplit(self.path)
        q = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        auth = self.headers.get("Authorization") or ""
        token = auth[7:].strip().encode() if auth[:7].lower() == "bearer " else None
        public = url.path in ("/version", "/healthz", "/readyz", "/livez") and not auth
        if not public and not (token and any(hmac.compare_digest(token, t) for t in srv.tokens)):
            self.send_json(401, ApiError(401, "Unauthorized", "Unauthorized").body())
            return
        try:
            res = srv.handle(self.command, url.path, q, self.headers, body)
            if isinstance(res, _Watch):
                srv.serve_watch(self, res)
                return
            code, obj, headers = res
        except ApiError as e:
            code, obj, headers = e.code, e.body(), {}
        except Exception:
            LOG.exception("kube: %s %s failed", self.command, url.path)
            code, obj, headers = 500, ApiError(500, "InternalError", "internal error").body(), {}
        if isinstance(obj, bytes):
            self.send_bytes(code, obj, "text/plain; charset=utf-8")
            return
        self.send_response(code)
        data = json.dumps(obj).encode()
        self.send_header("Content-Type", "application/json")
        for k, v in headers.items():
            for item in (v if isinstance(v, list) else [v]):
                self.send_header(k, item)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _dispatch

    def write_chunk(self, obj: dict) -> None:
        data = json.dumps(obj).encode() + b"\n"
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def client_gone(self) -> bool:
        """A watching client never sends anything: readable means it closed (or broke) the connection."""
        try:
            r, _, _ = select.select([self.connection], [], [], 0)
        except (OSError, ValueError):
            return True
        if r:
            self.close_connection = True
        return bool(r)
