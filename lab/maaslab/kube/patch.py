"""PATCH: JSON merge (RFC 7386), JSON patch (RFC 6902), strategic merge (core kinds only, as a
merge) and server-side apply (a merge without field ownership)."""
from __future__ import annotations

import copy
import json
from typing import Any

import jsonpatch
import yaml

from .core import APPLY, JSON_PATCH, MERGE, SMP, ApiError


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


class Patcher:
    """Mixin of KubeAPIServer: the PATCH verb and the orchestrator's in-process apply."""

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

    def apply_manifest(self, obj: dict, field_manager: str = "maaslab") -> dict:
        """Server-side apply one manifest through the same code path as HTTP (raises ApiError)."""
        rt, version = self.type_for(obj.get("apiVersion", ""), obj.get("kind", ""))
        md = obj.get("metadata") or {}
        ns = (md.get("namespace") or "default") if rt.namespaced else None
        _, result = self._patch(rt, version, ns, md.get("name", ""), json.dumps(obj).encode(), APPLY,
                                {"fieldManager": field_manager, "force": "true"}, [])
        return result
