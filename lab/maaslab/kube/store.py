"""Objects, resourceVersion, persistence (<dir>/kube/state.json), the type registry and the
per-object helpers every verb uses (decode, prune/default/validate, emit watch events)."""
from __future__ import annotations

import collections
import copy
import json
import os
from typing import Any

from .core import CRD_GROUP, HISTORY, ApiError, ResourceType, builtin_types, version_priority
from .schema import Cause, default, prune, validate, validate_name


class Store:
    """Mixin of KubeAPIServer: state, registry, object helpers (uses self.lock/objects/types/…)."""

    def _load(self) -> None:
        with self.lock:
            self.types = {rt.key: rt for rt in builtin_types()}
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

    def _register_crd(self, crd: dict) -> None:
        spec = crd.get("spec") or {}
        names = spec.get("names") or {}
        served = [v for v in spec.get("versions") or [] if v.get("served")]
        if not served or f"{spec.get('group')}/{names.get('plural')}" in {rt.key for rt in builtin_types()}:
            return
        storage = next((v["name"] for v in spec["versions"] if v.get("storage")), served[0]["name"])
        rt = ResourceType(
            group=spec["group"], plural=names["plural"], kind=names["kind"], namespaced=spec.get("scope") != "Cluster",
            versions=sorted((v["name"] for v in served), key=version_priority), storage=storage,
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
