"""Error types of the operator emulator and the upstream texts they carry.

Upstream: 3scale-operator pkg/helper/errors.go (SpecFieldError, ErrReferencedMethodIsBeingDeleted),
pkg/helper/task_runner.go ("task failed <name>: ..."), k8s.io/apimachinery v0.29.0
pkg/util/validation/field/errors.go (how a field error and an error list print) and
3scale-porta-go-client v0.12.0 client/client.go + errors.go (ApiErr text, 422 bodies re-marshalled).
"""
from __future__ import annotations

import http.client
import json
from typing import Any

# porta's refusal to delete a method of the latest gateway configuration: what task_runner.go looks for
PORTA_METHOD_IN_USE = "Method is used by the latest gateway configuration and cannot be deleted"
# pkg/helper/errors.go ErrReferencedMethodIsBeingDeleted
ERR_REFERENCED_METHOD_IS_BEING_DELETED = (
    "method is used by the latest gateway configuration, it will be removed from 3scale only once the "
    "promotion without the mapping rule that uses the deleted method is done")
# proxyconfigpromote_controller.go / proxyconfigpromote_status_reconciler.go
PROMOTED_MSG = ("3scale product has been successfully promoted, any further interactions with this CR "
                "(apart from deletion) won't be applied")
NO_CHANGES_TAIL = ("no product changes detected. Delete this proxyConfigPromote CR, then introduce changes "
                   "to configuration, and then create a new proxyConfigPromote CR")
PRODUCT_NOT_READY = "product CR is not ready"


def go_json(value: Any) -> str:
    """encoding/json.Marshal: compact, map keys sorted, <, >, & and U+2028/2029 escaped."""
    out = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        out = out.replace(ch, esc)
    return out


def go_quote(s: str) -> str:
    """fmt's %q for a string (close enough: JSON string escaping, non-ASCII kept)."""
    return json.dumps(s, ensure_ascii=False)


class GoStruct:
    """A value that prints with %#v (field.Invalid on a struct): `pkg.Type{A:"x", B:1}`."""

    def __init__(self, type_name: str, fields: list[tuple[str, Any]]):
        self.text = type_name + "{" + ", ".join(f"{k}:{_gosharp(v)}" for k, v in fields) + "}"


def _gosharp(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    if v is None:
        return "(*string)(nil)"
    return go_quote(str(v))


def field_invalid(path: str, value: Any, detail: str) -> str:
    """field.Invalid(path, value, detail).Error() — ErrorBody of apimachinery v0.29."""
    if value is None:
        shown = '"null"'
    elif isinstance(value, GoStruct):
        shown = value.text
    elif isinstance(value, bool):
        shown = "true" if value else "false"
    elif isinstance(value, (int, float)):
        shown = str(value)
    else:
        shown = go_quote(str(value))
    return f"{path}: Invalid value: {shown}" + (f": {detail}" if detail else "")


def field_required(path: str, detail: str) -> str:
    return f"{path}: Required value" + (f": {detail}" if detail else "")


def aggregate(messages: list[str]) -> str:
    """ErrorList.ToAggregate().Error(): one message as is, several deduplicated inside [a, b]."""
    seen: list[str] = []
    for m in messages:
        if m not in seen:
            seen.append(m)
    return seen[0] if len(seen) == 1 else "[" + ", ".join(seen) + "]"


class SpecError(Exception):
    """helper.SpecFieldError: a list of field errors; str() is the aggregate."""

    def __init__(self, messages: list[str] | str):
        self.messages = [messages] if isinstance(messages, str) else list(messages)
        super().__init__(aggregate(self.messages))


class Invalid(SpecError):
    """InvalidError: Invalid=True (and Failed=True), no requeue until the CR changes."""


class Orphan(SpecError):
    """OrphanError: a referenced CR is missing or not ready: Orphan=True, requeue with backoff."""


class ProviderLookupError(Exception):
    """LookupProviderAccount failed. `not_found` mirrors apierrors.IsNotFound on the wrapped error."""

    def __init__(self, message: str, not_found: bool = False):
        super().__init__(message)
        self.not_found = not_found


class MethodInUse(Exception):
    """task_runner.go returns ErrReferencedMethodIsBeingDeleted after running the remaining tasks."""

    def __init__(self) -> None:
        super().__init__(ERR_REFERENCED_METHOD_IS_BEING_DELETED)


class PortaError(Exception):
    """porta-go-client's ApiErr: 'error calling 3scale system - reason: <r> - code: <status>'. For a 422
    the reason is the body's `errors` map (map[string][]string) re-marshalled; otherwise the raw body."""

    def __init__(self, status: int, body: str):
        self.status, self.body = status, body
        super().__init__(f"error calling 3scale system - reason: {porta_reason(status, body)} - code: {status}")


def porta_reason(status: int, body: str) -> str:
    if status != 422:
        return body
    try:
        doc = json.loads(body)
    except ValueError:
        return "decoding error - invalid character looking for beginning of value"
    errors = doc.get("errors") if isinstance(doc, dict) else None
    if errors is None:
        return "null"
    if not isinstance(errors, dict) or not all(isinstance(v, list) and all(isinstance(s, str) for s in v)
                                               for v in errors.values()):
        return "decoding error - json: cannot unmarshal errors into Go struct field .errors of type map[string][]string"
    return go_json(errors)


# what a porta call can raise: porta's answer, or the transport (TLS, refused, reset) and bad JSON;
# upstream wraps all of them the same way (a Go client error)
CLIENT_ERRORS = (PortaError, OSError, http.client.HTTPException, ValueError)


def task_failed(task: str, err: Exception) -> str:
    return f"task failed {task}: {err}"
