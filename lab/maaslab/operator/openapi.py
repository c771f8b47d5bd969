"""OpenAPI documents as the ActiveDoc controller reads them: kin-openapi v0.94.0
`openapi3.NewLoader().LoadFromData(data)` then `doc.Validate(ctx)`, with that version's error texts.

Upstream: getkin/kin-openapi v0.94.0 openapi3/loader.go (ghodss/yaml → JSON → strict-struct decoding,
local $ref resolution), jsoninfo/unmarshal.go (`failed to unmarshal property "x" (*T): ...`, fields
decoded in JSON-name order), openapi3/openapi3.go, info.go, paths.go, path_item.go, operation.go,
parameter.go, request_body.go, response.go, content.go, media_type.go, components.go, schema.go
(Validate). Any non-empty `openapi` string passes (3.1 included); what breaks a 3.1 document is a
JSON Schema 2020-12 construct that does not fit the 3.0 Go types (`"type": [..]`, numeric
`exclusiveMinimum`) or `{"type": "null"}`.
"""
from __future__ import annotations

import json
import re
from typing import Any

import yaml


class OpenAPIError(Exception):
    """A kin-openapi load or validation error (its text is what ends up in the condition)."""


# ------------------------------------------------------------------------------ decoding (types)
# A type is ("str"|"bool"|"num"|"uint"|"strlist"|"any") or ("struct", name, fields) / ("map", name, elem) /
# ("list", name, elem) / ("ref", elem). Struct fields: json name -> (Go type shown when wrapping, type).
def _struct(type_name: str, **fields: tuple[str, Any]) -> tuple:
    return ("struct", type_name, {k.replace("__", "$"): v for k, v in fields.items()})


S, B, A = ("*string", "str"), ("*bool", "bool"), ("*interface {}", "any")
SCHEMA: tuple = ("struct", "Schema", {})
SCHEMA_REF = ("ref", SCHEMA)
SCHEMAS = ("map", "openapi3.Schemas", SCHEMA_REF)
SCHEMA_REFS = ("list", "openapi3.SchemaRefs", SCHEMA_REF)
SCHEMA[2].update({
    "type": S, "format": S, "title": S, "description": S, "pattern": S, "nullable": B, "readOnly": B,
    "writeOnly": B, "uniqueItems": B, "exclusiveMinimum": B, "exclusiveMaximum": B, "deprecated": B,
    "allowEmptyValue": B, "minimum": ("**float64", "num"), "maximum": ("**float64", "num"),
    "multipleOf": ("**float64", "num"), "minLength": ("*uint64", "uint"), "maxLength": ("**uint64", "uint"),
    "minItems": ("*uint64", "uint"), "maxItems": ("**uint64", "uint"), "minProperties": ("*uint64", "uint"),
    "maxProperties": ("**uint64", "uint"), "required": ("*[]string", "strlist"), "enum": ("*[]interface {}", "anylist"),
    "items": ("*openapi3.SchemaRef", SCHEMA_REF), "properties": ("*openapi3.Schemas", SCHEMAS),
    "allOf": ("*openapi3.SchemaRefs", SCHEMA_REFS), "anyOf": ("*openapi3.SchemaRefs", SCHEMA_REFS),
    "oneOf": ("*openapi3.SchemaRefs", SCHEMA_REFS), "not": ("*openapi3.SchemaRef", SCHEMA_REF),
    "additionalProperties": ("*openapi3.SchemaRef", ("schema_or_bool", SCHEMA_REF)), "default": A,
})
MEDIA_TYPE = _struct("MediaType", schema=("*openapi3.SchemaRef", SCHEMA_REF), example=A)
CONTENT = ("map", "openapi3.Content", MEDIA_TYPE)
PARAMETER = ("ref", _struct("Parameter", name=S, description=S, style=S, required=B, deprecated=B,
                            allowEmptyValue=B, allowReserved=B, explode=("**bool", "bool"),
                            schema=("*openapi3.SchemaRef", SCHEMA_REF), content=("*openapi3.Content", CONTENT)))
PARAMETER[1][2]["in"] = S
PARAMETERS = ("list", "openapi3.Parameters", PARAMETER)
RESPONSE = ("ref", _struct("Response", description=("**string", "str"), content=("*openapi3.Content", CONTENT)))
RESPONSES = ("map", "openapi3.Responses", RESPONSE)
REQUEST_BODY = ("ref", _struct("RequestBody", description=S, required=B, content=("*openapi3.Content", CONTENT)))
OPERATION = _struct("Operation", summary=S, description=S, operationId=S, deprecated=B, tags=("*[]string", "strlist"),
                    parameters=("*openapi3.Parameters", PARAMETERS),
                    requestBody=("*openapi3.RequestBodyRef", REQUEST_BODY),
                    responses=("*openapi3.Responses", RESPONSES))
METHODS = ("connect", "delete", "get", "head", "options", "patch", "post", "put", "trace")
PATH_ITEM = _struct("PathItem", __ref=S, summary=S, description=S, parameters=("*openapi3.Parameters", PARAMETERS),
                    **{m: ("*openapi3.Operation", OPERATION) for m in METHODS})
COMPONENTS = _struct("Components", schemas=("*openapi3.Schemas", SCHEMAS),
                     parameters=("*openapi3.ParametersMap", ("map", "openapi3.ParametersMap", PARAMETER)),
                     requestBodies=("*openapi3.RequestBodies", ("map", "openapi3.RequestBodies", REQUEST_BODY)),
                     responses=("*openapi3.Responses", RESPONSES))
INFO = _struct("Info", title=S, version=S, description=S, termsOfService=S)
ROOT = _struct("T", openapi=S, info=("*openapi3.Info", INFO), paths=("*openapi3.Paths", ("map", "openapi3.Paths", PATH_ITEM)),
               components=("*openapi3.Components", COMPONENTS))


def _json_kind(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    return {dict: "object", list: "array", str: "string"}.get(type(v), "null")


def _compact(v: Any) -> str:
    return json.dumps(v, separators=(",", ":"), ensure_ascii=False)


def _decode(v: Any, t: Any) -> None:
    """Raise OpenAPIError with the message encoding/json + jsoninfo would produce, or return."""
    if v is None:
        return  # JSON null leaves a Go value untouched
    if isinstance(t, str):
        ok = {"str": isinstance(v, str), "bool": isinstance(v, bool), "any": True,
              "num": isinstance(v, (int, float)) and not isinstance(v, bool),
              "uint": isinstance(v, int) and not isinstance(v, bool) and v >= 0,
              "strlist": isinstance(v, list) and all(isinstance(x, str) or x is None for x in v),
              "anylist": isinstance(v, list)}[t]
        if not ok:
            go = {"str": "string", "bool": "bool", "num": "float64", "uint": "uint64", "strlist": "[]string",
                  "anylist": "[]interface {}"}[t]
            kind = _json_kind(v)
            if t == "uint" and kind == "number":
                kind = f"number {v}"
            if t == "strlist" and isinstance(v, list):
                raise OpenAPIError(f"json: cannot unmarshal {_json_kind(next(x for x in v if not isinstance(x, str)))} "
                                   "into Go value of type string")
            raise OpenAPIError(f"json: cannot unmarshal {kind} into Go value of type {go}")
        return
    tag = t[0]
    if tag == "schema_or_bool":
        if not isinstance(v, bool):
            _decode(v, t[1])
        return
    if tag == "ref":
        if isinstance(v, dict) and isinstance(v.get("$ref"), str) and v["$ref"]:
            return
        _decode(v, t[1])
        return
    if tag == "map":
        if not isinstance(v, dict):
            raise OpenAPIError(f"json: cannot unmarshal {_json_kind(v)} into Go value of type {t[1]}")
        for item in v.values():
            _decode(item, t[2])
        return
    if tag == "list":
        if not isinstance(v, list):
            raise OpenAPIError(f"json: cannot unmarshal {_json_kind(v)} into Go value of type {t[1]}")
        for item in v:
            _decode(item, t[2])
        return
    # strict struct: the object first, then each known field in JSON-name order
    if not isinstance(v, dict):
        raise OpenAPIError(f"failed to unmarshal extension properties: json: cannot unmarshal {_json_kind(v)} "
                           f"into Go value of type map[string]json.RawMessage ({_compact(v)})")
    for name in sorted(t[2]):
        if name in v:
            shown, ft = t[2][name]
            try:
                _decode(v[name], ft)
            except OpenAPIError as e:
                raise OpenAPIError(f'failed to unmarshal property "{name}" ({shown}): {e}') from None


def _resolve_refs(doc: dict) -> None:
    """ResolveRefsIn for local references (#/components/...): the first that does not resolve fails."""
    stack = [doc.get("components"), doc.get("paths")]
    while stack:
        node = stack.pop(0)
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#"):
                frag = ref[1:]
                if not frag.startswith("/"):
                    raise OpenAPIError(f"expected fragment prefix '#/' in URI {json.dumps(ref)}")
                cursor: Any = doc
                for depth, part in enumerate(frag[1:].split("/")):
                    part = part.replace("~1", "/").replace("~0", "~")
                    if depth < 2 and isinstance(cursor, dict) and part not in cursor:
                        cursor = {}  # T and Components are Go structs: the field exists, its map is nil
                        continue
                    if not isinstance(cursor, dict) or part not in cursor:
                        raise OpenAPIError(f'failed to resolve {json.dumps(part)} in fragment in URI: {json.dumps(ref)}: '
                                           f'map key {json.dumps(part)} not found')
                    cursor = cursor[part]
            stack += [v for k, v in node.items() if k != "$ref"]
        elif isinstance(node, list):
            stack += node


def load(raw: bytes) -> dict:
    """LoadFromData: YAML (JSON included) → typed decode → local refs."""
    try:
        doc = json.loads(raw)
    except ValueError:
        try:
            doc = yaml.safe_load(raw)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            line = f"line {mark.line + 1}: " if mark is not None else ""
            raise OpenAPIError(f"error converting YAML to JSON: yaml: {line}{getattr(e, 'problem', None) or e}") from None
    try:
        _decode(doc if doc is not None else {}, ROOT)
    except OpenAPIError as e:
        raise OpenAPIError(f"error unmarshaling JSON: {e}") from None
    doc = doc if isinstance(doc, dict) else {}
    _resolve_refs(doc)
    return doc


# ------------------------------------------------------------------------------ validation
def _deref(doc: dict, node: Any) -> Any:
    seen = 0
    while isinstance(node, dict) and isinstance(node.get("$ref"), str) and node["$ref"].startswith("#/") and seen < 50:
        cursor: Any = doc
        for part in node["$ref"][2:].split("/"):
            cursor = cursor.get(part.replace("~1", "/").replace("~0", "~")) if isinstance(cursor, dict) else None
        node, seen = cursor, seen + 1
    return node


_FORMATS = {
    "number": {"float", "double"}, "integer": {"int32", "int64"},
    "string": {"byte", "binary", "date", "date-time", "password", "iri", "iri-reference", "uri-template", "idn-email",
               "idn-hostname", "json-pointer", "relative-json-pointer", "regex", "time", "duration", "uuid", "email",
               "hostname", "ipv4", "ipv6", "uri", "uri-reference"},
}


def _schema(doc: dict, s: Any, stack: list) -> None:
    s = _deref(doc, s)
    if not isinstance(s, dict) or any(x is s for x in stack):
        return
    stack = stack + [s]
    if s.get("readOnly") and s.get("writeOnly"):
        raise OpenAPIError("a property MUST NOT be marked as both readOnly and writeOnly being true")
    one_of = s.get("oneOf") or []
    for item in one_of:  # upstream returns on the first oneOf member that validates
        try:
            _schema(doc, item, stack)
            return
        except OpenAPIError:
            if item is one_of[-1]:
                raise
    for key in ("anyOf", "allOf"):
        for item in s.get(key) or []:
            _schema(doc, item, stack)
    if s.get("not") is not None:
        _schema(doc, s["not"], stack)
    typ, fmt = s.get("type") or "", s.get("format") or ""
    if typ in _FORMATS and fmt and fmt not in _FORMATS[typ]:
        raise OpenAPIError(f'unsupported \'format\' value {json.dumps(fmt)}')
    if typ == "string" and s.get("pattern"):
        try:
            re.compile(s["pattern"])
        except re.error as e:
            raise OpenAPIError(f'cannot compile pattern {json.dumps(s["pattern"])}: {e}') from None
    elif typ == "array" and s.get("items") is None:
        raise OpenAPIError("when schema type is 'array', schema 'items' must be non-null")
    elif typ not in ("", "boolean", "number", "integer", "string", "array", "object"):
        raise OpenAPIError(f"unsupported 'type' value {json.dumps(typ)}")
    if s.get("items") is not None:
        _schema(doc, s["items"], stack)
    for p in (s.get("properties") or {}).values():
        _schema(doc, p, stack)
    if isinstance(s.get("additionalProperties"), dict):
        _schema(doc, s["additionalProperties"], stack)


def _content(doc: dict, content: Any) -> None:
    for mt in (content or {}).values():
        if isinstance(mt, dict) and mt.get("schema") is not None:
            _schema(doc, mt["schema"], [])


def _parameter(doc: dict, p: Any) -> None:
    p = _deref(doc, p) or {}
    name, where = p.get("name") or "", p.get("in") or ""
    if not name:
        raise OpenAPIError("parameter name can't be blank")
    if where not in ("path", "query", "header", "cookie"):
        raise OpenAPIError(f"parameter can't have 'in' value {json.dumps(where)}")
    if where == "path" and not p.get("required"):
        raise OpenAPIError(f"path parameter {json.dumps(name)} must be required")
    style = p.get("style") or {"path": "simple", "query": "form", "header": "simple", "cookie": "form"}[where]
    allowed = {"path": {"simple", "label", "matrix"}, "query": {"form", "spaceDelimited", "pipeDelimited", "deepObject"},
               "header": {"simple"}, "cookie": {"form"}}[where]
    explode = p.get("explode") if p.get("explode") is not None else style == "form"
    if style not in allowed or (style == "deepObject" and not explode):
        raise OpenAPIError(f"parameter {json.dumps(name)} schema is invalid: serialization method with "
                           f"style={json.dumps(style)} and explode={str(bool(explode)).lower()} "
                           f"is not supported by a {where} parameter")
    if (p.get("schema") is None) == (p.get("content") is None):
        raise OpenAPIError(f"parameter {json.dumps(name)} schema is invalid: "
                           "parameter must contain exactly one of content and schema")
    if p.get("schema") is not None:
        try:
            _schema(doc, p["schema"], [])
        except OpenAPIError as e:
            raise OpenAPIError(f"parameter {json.dumps(name)} schema is invalid: {e}") from None
    if p.get("content") is not None:
        try:
            _content(doc, p["content"])
        except OpenAPIError as e:
            raise OpenAPIError(f"parameter {json.dumps(name)} content is invalid: {e}") from None


def _parameters(doc: dict, params: list) -> None:
    seen = set()
    for item in params or []:
        p = _deref(doc, item) or {}
        key = (p.get("in") or "", p.get("name") or "")
        if key in seen:
            raise OpenAPIError(f"more than one {json.dumps(key[0])} parameter has name {json.dumps(key[1])}")
        seen.add(key)
        _parameter(doc, item)


def _operation(doc: dict, op: dict) -> None:
    _parameters(doc, op.get("parameters") or [])
    if op.get("requestBody") is not None:
        body = _deref(doc, op["requestBody"]) or {}
        if body.get("content") is None:
            raise OpenAPIError("content of the request body is required")
        _content(doc, body["content"])
    responses = op.get("responses")
    if responses is None:
        raise OpenAPIError("value of responses must be an object")
    if not responses:
        raise OpenAPIError("the responses object MUST contain at least one response code")
    for r in responses.values():
        r = _deref(doc, r) or {}
        if r.get("description") is None:
            raise OpenAPIError("a short description of the response is required")
        _content(doc, r.get("content"))


def _path_vars(path: str) -> list[str]:
    return re.findall(r"\{([^}]*)\}", path)


def _paths(doc: dict, paths: dict) -> None:
    normalized: dict[str, str] = {}
    for path, item in paths.items():
        if not path.startswith("/"):
            raise OpenAPIError(f"path {json.dumps(path)} does not start with a forward slash (/)")
        item = item or {}
        norm = re.sub(r"\{[^}]*?(\*?)\}", r"{\1}", path)
        if norm in normalized:
            raise OpenAPIError(f"conflicting paths {json.dumps(path)} and {json.dumps(normalized[norm])}")
        normalized[path] = path  # upstream stores the raw path (only literal duplicates conflict)
        common = [(_deref(doc, p) or {}).get("name") for p in item.get("parameters") or []
                  if (_deref(doc, p) or {}).get("in") == "path"]
        in_path = set(_path_vars(path))
        for method in METHODS:
            op = item.get(method)
            if op is None:
                continue
            own = [(_deref(doc, p) or {}).get("name") for p in op.get("parameters") or []
                   if (_deref(doc, p) or {}).get("in") == "path"]
            defined = own + common
            if len(defined) != len(in_path):
                missing = sorted({n for n in defined if n not in in_path} | {n for n in in_path if n not in defined})
                if missing:
                    raise OpenAPIError(f"operation {method.upper()} {path} must define exactly all path parameters "
                                       f"(missing: [{' '.join(missing)}])")
        for method in METHODS:
            if item.get(method) is not None:
                _operation(doc, item[method])
    op_ids: dict[str, str] = {}
    for path, item in paths.items():
        for method in METHODS:
            op = (item or {}).get(method)
            if op and op.get("operationId"):
                endpoint = f"{method.upper()} {path}"
                if op["operationId"] in op_ids:
                    a, b = sorted((endpoint, op_ids[op["operationId"]]))
                    raise OpenAPIError(f"operations {json.dumps(a)} and {json.dumps(b)} have the same operation id "
                                       f"{json.dumps(op['operationId'])}")
                op_ids[op["operationId"]] = endpoint


def validate(doc: dict) -> None:
    """T.Validate: openapi, components, info, paths (each error wrapped "invalid <part>: ...")."""
    if not doc.get("openapi"):
        raise OpenAPIError("value of openapi must be a non-empty string")
    comps = doc.get("components") or {}
    try:
        for key in ("schemas", "parameters", "requestBodies", "responses"):
            for name, value in (comps.get(key) or {}).items():
                if not re.match(r"^[a-zA-Z0-9._-]+$", name):
                    raise OpenAPIError(f'identifier {json.dumps(name)} is not supported by OpenAPIv3 standard '
                                       f'(regexp: "^[a-zA-Z0-9._-]+$")')
                if key == "schemas":
                    _schema(doc, value, [])
                elif key == "parameters":
                    _parameter(doc, value)
    except OpenAPIError as e:
        raise OpenAPIError(f"invalid components: {e}") from None
    info = doc.get("info")
    if info is None:
        raise OpenAPIError("invalid info: must be an object")
    if isinstance(info.get("license"), dict) and not info["license"].get("name"):
        raise OpenAPIError("invalid info: value of license name must be a non-empty string")
    if not info.get("version"):
        raise OpenAPIError("invalid info: value of version must be a non-empty string")
    if not info.get("title"):
        raise OpenAPIError("invalid info: value of title must be a non-empty string")
    if doc.get("paths") is None:
        raise OpenAPIError("invalid paths: must be an object")
    try:
        _paths(doc, doc["paths"])
    except OpenAPIError as e:
        raise OpenAPIError(f"invalid paths: {e}") from None


def load_and_validate(raw: bytes) -> dict:
    doc = load(raw)
    validate(doc)
    return doc
