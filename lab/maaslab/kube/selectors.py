"""Label and field selectors, and the jsonpath/age helpers of printer columns (kubectl tables)."""
from __future__ import annotations

import datetime
import re
from typing import Any

from .core import ApiError, ResourceType


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


def labels_match(reqs: list[tuple], labels: dict) -> bool:
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


def fields_match(reqs: list[tuple], obj: dict) -> bool:
    for key, neg, val in reqs:
        have: Any = obj
        for part in key.split("."):
            have = have.get(part, "") if isinstance(have, dict) else ""
        if (str(have) == val) == neg:
            return False
    return True


def jsonpath(obj: Any, expr: str) -> list:
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


def age(ts: str | None) -> str:
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

