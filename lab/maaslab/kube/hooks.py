"""Kind-specific behaviour of the real API server (Secret data, immutability, Namespace, CRD status)."""
from __future__ import annotations

import base64
import datetime
import json
import re

from ..context import now_iso
from .core import ApiError
from .schema import Cause


_MICRO_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}(Z|[+-]\d\d:\d\d)")


class KindHooks:
    """Mixin of KubeAPIServer: `_hook_<kind>` is called by Store._prepare (returns causes)."""

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

    def _hook_lease(self, rt, obj, old):
        """kubernetes pkg/apis/coordination/validation/validation.go (ValidateLeaseSpec) and
        pkg/registry/coordination/lease/strategy.go (CoordinatedLeaderElection off: strategy and
        preferredHolder dropped unless already set); acquireTime/renewTime are metav1.MicroTime,
        parsed with RFC3339Micro and written back in UTC (apimachinery pkg/apis/meta/v1/micro_time.go)."""
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return []
        for f in ("strategy", "preferredHolder"):
            if f in spec and not (old and f in (old.get("spec") or {})):
                spec.pop(f)
        for f in ("acquireTime", "renewTime"):
            v = spec.get(f)
            if v is None:
                continue
            if not _MICRO_TIME.fullmatch(str(v)):
                rest, elem = (str(v)[19:], ".000000") if re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", str(v)) else (str(v), "2006")
                raise ApiError(400, "BadRequest", f'Lease in version "v1" cannot be handled as a Lease: parsing time '
                               f'{json.dumps(v)} as "2006-01-02T15:04:05.000000Z07:00": cannot parse {json.dumps(rest)} '
                               f'as {json.dumps(elem)}')
            t = datetime.datetime.fromisoformat(str(v).replace("Z", "+00:00")).astimezone(datetime.timezone.utc)
            spec[f] = t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        causes = []
        d = spec.get("leaseDurationSeconds")
        if isinstance(d, int) and d <= 0:
            causes.append(Cause("FieldValueInvalid", "spec.leaseDurationSeconds", f"Invalid value: {d}: must be greater than 0"))
        t = spec.get("leaseTransitions")
        if isinstance(t, int) and t < 0:
            causes.append(Cause("FieldValueInvalid", "spec.leaseTransitions",
                                f"Invalid value: {t}: must be greater than or equal to 0"))
        return causes

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
