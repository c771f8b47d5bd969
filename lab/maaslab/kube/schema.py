"""Structural openAPIV3Schema handling for the lab Kubernetes API server.

What the real apiextensions-apiserver does to a custom resource on every write, in its order:
drop nulls where not nullable, prune unknown fields (reporting them for fieldValidation), apply
`default:`s, then validate. Messages follow the real `field.Error` wording so clients and tests see
what a cluster would say. CEL `x-kubernetes-validations` and `format` checks are not evaluated.
"""
from __future__ import annotations

import copy
import json
import re
from functools import lru_cache
from typing import Any

_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool}


class Cause(dict):
    """One entry of Status.details.causes: {reason, message, field}."""

    def __init__(self, reason: str, field: str, message: str):
        super().__init__(reason=reason, message=message, field=field)

    def text(self) -> str:
        return f"{self['field']}: {self['message']}" if self["field"] else self["message"]


def go_quote(v: Any) -> str:
    """Render a value as Go's field.Error does (%q for strings, plain for numbers)."""
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    if v is None:
        return "null"
    return json.dumps(json.dumps(v, separators=(",", ":")))


@lru_cache(maxsize=512)
def _regex(pattern: str):
    return re.compile(pattern)


def _type_name(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"


def _is_type(v: Any, t: str, schema: dict) -> bool:
    if schema.get("x-kubernetes-int-or-string"):
        return isinstance(v, (int, str)) and not isinstance(v, bool)
    if t == "integer":
        return (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, float) and v.is_integer())
    if t == "number":
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    return isinstance(v, _TYPES.get(t, object))


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


# ---------------------------------------------------------------------------------------------
# pruning (+ null dropping) and defaulting


def prune(schema: dict | None, obj: Any, path: str = "", unknown: list[str] | None = None,
          root: bool = True) -> list[str]:
    """Remove fields the schema does not know, in place; returns their paths (`spec.foo`)."""
    if unknown is None:
        unknown = []
    if not isinstance(schema, dict):
        return unknown
    if isinstance(obj, dict):
        props = schema.get("properties") or {}
        addl = schema.get("additionalProperties")
        preserve = schema.get("x-kubernetes-preserve-unknown-fields") or (addl is True)
        embedded = schema.get("x-kubernetes-embedded-resource")
        for key in list(obj):
            p = _join(path, key)
            sub = props.get(key)
            if obj[key] is None and not (sub or {}).get("nullable") and sub is not None:
                del obj[key]  # the real server drops nulls of non-nullable fields before defaulting
                continue
            if sub is not None:
                prune(sub, obj[key], p, unknown, False)
            elif isinstance(addl, dict):
                prune(addl, obj[key], p, unknown, False)
            elif (root or embedded) and key in ("apiVersion", "kind", "metadata"):
                continue
            elif not preserve:
                unknown.append(p)
                del obj[key]
    elif isinstance(obj, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(obj):
            prune(schema["items"], item, f"{path}[{i}]", unknown, False)
    return unknown


def default(schema: dict | None, obj: Any) -> None:
    """Apply `default:` values in place (top-down, like the apiserver's structural defaulting)."""
    if not isinstance(schema, dict):
        return
    if isinstance(obj, dict):
        for key, sub in (schema.get("properties") or {}).items():
            if key not in obj and isinstance(sub, dict) and "default" in sub:
                obj[key] = copy.deepcopy(sub["default"])
            if key in obj:
                default(sub, obj[key])
        addl = schema.get("additionalProperties")
        if isinstance(addl, dict):
            for key in obj:
                if key not in (schema.get("properties") or {}):
                    default(addl, obj[key])
    elif isinstance(obj, list) and isinstance(schema.get("items"), dict):
        for item in obj:
            default(schema["items"], item)


# ---------------------------------------------------------------------------------------------
# validation


def validate(schema: dict | None, v: Any, path: str = "") -> list[Cause]:
    errs: list[Cause] = []
    _validate(schema, v, path, errs)
    return errs


def _validate(s: dict | None, v: Any, path: str, errs: list[Cause]) -> None:
    if not isinstance(s, dict):
        return
    if v is None:
        if not s.get("nullable") and s.get("type"):
            errs.append(Cause("FieldValueTypeInvalid", path,
                              f'Invalid value: "null": {path} in body must be of type {s["type"]}: "null"'))
        return
    t = s.get("type")
    if t and not _is_type(v, t, s):
        errs.append(Cause("FieldValueTypeInvalid", path,
                          f'Invalid value: "{_type_name(v)}": {path} in body must be of type {t}: "{_type_name(v)}"'))
        return
    if "enum" in s and v not in s["enum"]:
        allowed = ", ".join(go_quote(x) for x in s["enum"])
        errs.append(Cause("FieldValueNotSupported", path, f"Unsupported value: {go_quote(v)}: supported values: {allowed}"))
    if isinstance(v, str):
        if "pattern" in s and not _regex(s["pattern"]).search(v):
            errs.append(Cause("FieldValueInvalid", path,
                              f"Invalid value: {go_quote(v)}: {path} in body should match '{s['pattern']}'"))
        if "maxLength" in s and len(v) > s["maxLength"]:
            errs.append(Cause("FieldValueTooLong", path, f"Too long: may not be more than {s['maxLength']} bytes"))
        if "minLength" in s and len(v) < s["minLength"]:
            errs.append(Cause("FieldValueInvalid", path,
                              f"Invalid value: {go_quote(v)}: {path} in body should be at least {s['minLength']} chars long"))
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        if "minimum" in s:
            lo, excl = s["minimum"], s.get("exclusiveMinimum") is True
            if v < lo or (excl and v == lo):
                rel = "greater than" if excl else "greater than or equal to"
                errs.append(Cause("FieldValueInvalid", path, f"Invalid value: {go_quote(v)}: {path} in body should be {rel} {lo}"))
        if "maximum" in s:
            hi, excl = s["maximum"], s.get("exclusiveMaximum") is True
            if v > hi or (excl and v == hi):
                rel = "less than" if excl else "less than or equal to"
                errs.append(Cause("FieldValueInvalid", path, f"Invalid value: {go_quote(v)}: {path} in body should be {rel} {hi}"))
        if s.get("multipleOf") and (v / s["multipleOf"]) % 1:
            errs.append(Cause("FieldValueInvalid", path, f"Invalid value: {go_quote(v)}: {path} in body should be a multiple of {s['multipleOf']}"))
    if isinstance(v, list):
        if "maxItems" in s and len(v) > s["maxItems"]:
            errs.append(Cause("FieldValueTooMany", path, f"Too many: {len(v)}: must have at most {s['maxItems']} items"))
        if "minItems" in s and len(v) < s["minItems"]:
            errs.append(Cause("FieldValueInvalid", path, f"Invalid value: {len(v)}: {path} in body should have at least {s['minItems']} items"))
        if s.get("x-kubernetes-list-type") == "set" or s.get("uniqueItems"):
            seen = set()
            for i, item in enumerate(v):
                k = json.dumps(item, sort_keys=True)
                if k in seen:
                    errs.append(Cause("FieldValueDuplicate", f"{path}[{i}]", f"Duplicate value: {go_quote(item)}"))
                seen.add(k)
        for i, item in enumerate(v):
            _validate(s.get("items"), item, f"{path}[{i}]", errs)
    if isinstance(v, dict):
        for req in s.get("required") or ():
            if req not in v:
                errs.append(Cause("FieldValueRequired", _join(path, req), "Required value"))
        props = s.get("properties") or {}
        addl = s.get("additionalProperties")
        for key, val in v.items():
            if key in props:
                _validate(props[key], val, _join(path, key), errs)
            elif isinstance(addl, dict):
                _validate(addl, val, _join(path, key), errs)
        if "maxProperties" in s and len(v) > s["maxProperties"]:
            errs.append(Cause("FieldValueTooMany", path, f"Too many: {len(v)}: must have at most {s['maxProperties']} items"))
        if "minProperties" in s and len(v) < s["minProperties"]:
            errs.append(Cause("FieldValueInvalid", path, f"Invalid value: {len(v)}: {path} in body should have at least {s['minProperties']} properties"))
    # combinators constrain without pruning (structural schemas allow only value validations there)
    for sub in s.get("allOf") or ():
        _validate(sub, v, path, errs)
    if s.get("anyOf") and not any(not validate(sub, v, path) for sub in s["anyOf"]):
        errs.append(Cause("FieldValueInvalid", path, f"Invalid value: {go_quote(v) if not isinstance(v, (dict, list)) else chr(34) + _type_name(v) + chr(34)}: {path} in body must validate at least one schema (anyOf)"))
    if s.get("oneOf"):
        ok = sum(1 for sub in s["oneOf"] if not validate(sub, v, path))
        if ok != 1:
            shown = go_quote(v) if not isinstance(v, (dict, list)) else f'"{_type_name(v)}"'
            errs.append(Cause("FieldValueInvalid", path, f"Invalid value: {shown}: {path} in body must validate one and only one schema (oneOf)"))
    if isinstance(s.get("not"), dict) and not validate(s["not"], v, path):
        errs.append(Cause("FieldValueInvalid", path, f"{path} in body should not validate the given schema"))


# ---------------------------------------------------------------------------------------------
# object metadata and the built-in kinds (schemas published in /openapi/v3 and used for pruning)

_STRMAP = {"type": "object", "additionalProperties": {"type": "string"}}
_ANY = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}

OBJECT_META = {
    "type": "object",
    "properties": {
        "name": {"type": "string"}, "generateName": {"type": "string"}, "namespace": {"type": "string"},
        "selfLink": {"type": "string"}, "uid": {"type": "string"}, "resourceVersion": {"type": "string"},
        "generation": {"type": "integer", "format": "int64"}, "creationTimestamp": {"type": "string", "format": "date-time"},
        "deletionTimestamp": {"type": "string", "format": "date-time"},
        "deletionGracePeriodSeconds": {"type": "integer", "format": "int64"},
        "labels": _STRMAP, "annotations": _STRMAP,
        "ownerReferences": {"type": "array", "items": {
            "type": "object", "required": ["apiVersion", "kind", "name", "uid"],
            "properties": {"apiVersion": {"type": "string"}, "kind": {"type": "string"}, "name": {"type": "string"},
                           "uid": {"type": "string"}, "controller": {"type": "boolean"},
                           "blockOwnerDeletion": {"type": "boolean"}}}},
        "finalizers": {"type": "array", "items": {"type": "string"}},
        "managedFields": {"type": "array", "items": _ANY},
    },
}


def _root(**props) -> dict:
    return {"type": "object", "properties": {"apiVersion": {"type": "string"}, "kind": {"type": "string"},
                                             "metadata": OBJECT_META, **props}}


BUILTIN_SCHEMAS = {
    "Namespace": _root(spec={"type": "object", "properties": {"finalizers": {"type": "array", "items": {"type": "string"}}}},
                       status={"type": "object", "properties": {"phase": {"type": "string"},
                                                                "conditions": {"type": "array", "items": _ANY}}}),
    "Secret": _root(data={"type": "object", "additionalProperties": {"type": "string", "format": "byte"}},
                    stringData=_STRMAP, type={"type": "string"}, immutable={"type": "boolean"}),
    "ConfigMap": _root(data=_STRMAP, binaryData={"type": "object", "additionalProperties": {"type": "string", "format": "byte"}},
                       immutable={"type": "boolean"}),
    "Event": {**_root(), "x-kubernetes-preserve-unknown-fields": True},
    "Lease": _root(spec={"type": "object", "properties": {
        "holderIdentity": {"type": "string"}, "leaseDurationSeconds": {"type": "integer", "format": "int32"},
        "acquireTime": {"type": "string", "format": "date-time"}, "renewTime": {"type": "string", "format": "date-time"},
        "leaseTransitions": {"type": "integer", "format": "int32"}, "strategy": {"type": "string"},
        "preferredHolder": {"type": "string"}}}),
    "CustomResourceDefinition": _root(spec={**_ANY, "required": ["group", "names", "scope", "versions"],
                                            "properties": {"group": {"type": "string"}, "scope": {"type": "string", "enum": ["Namespaced", "Cluster"]},
                                                           "names": {**_ANY, "required": ["plural", "kind"]},
                                                           "versions": {"type": "array", "minItems": 1, "items": {
                                                               **_ANY, "required": ["name", "served", "storage"]}}}},
                                      status=_ANY),
}

_DNS1123_SUB = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def validate_name(name: str, label: bool = False, path: str = "metadata.name") -> list[Cause]:
    if label:
        if len(name) > 63 or not _DNS1123_LABEL.match(name):
            return [Cause("FieldValueInvalid", path, f"Invalid value: {go_quote(name)}: a lowercase RFC 1123 label must consist "
                          "of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character "
                          "(e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")]
        return []
    if len(name) > 253 or not _DNS1123_SUB.match(name):
        return [Cause("FieldValueInvalid", path, f"Invalid value: {go_quote(name)}: a lowercase RFC 1123 subdomain must consist "
                      "of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character "
                      "(e.g. 'example.com', regex used for validation is "
                      "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")]
    return []


def openapi_published(schema: dict) -> dict:
    """A CRD version schema as the apiserver publishes it: metadata points at ObjectMeta."""
    out = copy.deepcopy(schema)
    out.setdefault("properties", {})["metadata"] = {
        "allOf": [{"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}]}
    return out
