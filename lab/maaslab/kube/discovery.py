"""Discovery (/api, /apis, group and resource lists) and the /openapi/v3 documents kubectl reads."""
from __future__ import annotations

import base64
import copy
import hashlib
import json
from typing import Any

from .core import CRD_GROUP, K8S_VERSION, VERBS, ApiError, ResourceType, version_priority
from .schema import OBJECT_META, openapi_published


class Discovery:
    """Mixin of KubeAPIServer: discovery bodies and the cached OpenAPI v3 documents."""

    def _groups(self) -> dict[str, list[str]]:
        groups: dict[str, set] = {}
        for rt in self.types.values():
            if rt.group:
                groups.setdefault(rt.group, set()).update(rt.versions)
        return {g: sorted(vs, key=version_priority) for g, vs in sorted(groups.items())}

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


def _reverse_group(group: str) -> str:
    return ".".join(reversed(group.split(".")))


def _schema_name(rt: ResourceType, version: str, list_: bool = False) -> str:
    kind = rt.kind + ("List" if list_ else "")
    if rt.group == CRD_GROUP:
        return f"io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.{version}.{kind}"
    if rt.builtin:
        return f"io.k8s.api.{rt.group.split('.')[0] if rt.group else 'core'}.{version}.{kind}"
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

