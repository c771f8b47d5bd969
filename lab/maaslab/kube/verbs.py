"""The write verbs (create, update, delete with finalizers and cascades) and the reads (list, table)."""
from __future__ import annotations

import base64
import copy
import json
import random
import uuid

from ..context import now_iso
from .core import CRD_GROUP, ApiError, ResourceType, is_dry_run
from .selectors import age, fields_match, jsonpath, labels_match, parse_field_selector, parse_label_selector


def strip_for_compare(obj: dict, status_too: bool) -> dict:
    o = {k: v for k, v in obj.items() if k not in ("metadata", "apiVersion", "kind")}
    if status_too:
        o.pop("status", None)
    return o


class Verbs:
    """Mixin of KubeAPIServer: create/update/delete/list on the store."""

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
            if is_dry_run(q):
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
            if rt.has_generation and strip_for_compare(new, rt.status_sub) != strip_for_compare(old_v, rt.status_sub):
                md["generation"] = int(omd.get("generation", 1)) + 1
            if is_dry_run(q):
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
            if is_dry_run(q) or "All" in (opts or {}).get("dryRun", []):
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

    def _select(self, rt, ns, q) -> list[dict]:
        labels = parse_label_selector(q.get("labelSelector"))
        fields = parse_field_selector(q.get("fieldSelector"), rt)
        prefix = f"{rt.key}/{ns}/" if ns else f"{rt.key}/"
        return [o for k, o in sorted(self.objects.items()) if k.startswith(prefix)
                and labels_match(labels, o["metadata"].get("labels") or {}) and fields_match(fields, o)]

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
                vals = jsonpath(o, c["jsonPath"])
                cells.append(vals[0] if len(vals) == 1 else ",".join(map(str, vals)) if vals else None)
            cells.append(age(o["metadata"].get("creationTimestamp")))
            rows.append({"cells": cells, "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                                                    "metadata": o["metadata"]}})
        return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta, "columnDefinitions": cols, "rows": rows}
