"""Shared types of the lab Kubernetes API server: the Status error, resource types, constants."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from .schema import BUILTIN_SCHEMAS, OBJECT_META

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
    unconditional_update: bool = True        # strategy AllowUnconditionalUpdate (CRs and Lease: false)
    create_on_update: bool = False           # strategy AllowCreateOnUpdate (Lease: a PUT may create)

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


def builtin_types() -> list[ResourceType]:
    return [
        ResourceType("", "namespaces", "Namespace", False, ["v1"], "v1", "namespace", ["ns"], status_sub=True),
        ResourceType("", "secrets", "Secret", True, ["v1"], "v1", "secret"),
        ResourceType("", "configmaps", "ConfigMap", True, ["v1"], "v1", "configmap", ["cm"]),
        ResourceType("", "events", "Event", True, ["v1"], "v1", "event", ["ev"]),
        # kubernetes pkg/registry/coordination/lease/strategy.go: no unconditional update, create on PUT
        ResourceType("coordination.k8s.io", "leases", "Lease", True, ["v1"], "v1", "lease",
                     unconditional_update=False, create_on_update=True),
        ResourceType(CRD_GROUP, "customresourcedefinitions", "CustomResourceDefinition", False, ["v1"], "v1",
                     "customresourcedefinition", ["crd", "crds"], ["api-extensions"], status_sub=True),
    ]


def version_priority(v: str):
    """Kubernetes version ordering: GA > beta > alpha, higher numbers first, others last."""
    m = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", v)
    if not m:
        return (3, 0, 0, v)
    stage = {"alpha": 2, "beta": 1, None: 0}[m.group(2)]
    return (stage, -int(m.group(1)), -int(m.group(3) or 0), v)


@dataclass
class WatchRequest:
    rt: ResourceType
    version: str
    ns: str | None
    q: dict
    close_after: float | None = None     # fault switch watch_close_after: end the stream early


def is_dry_run(q: dict) -> bool:
    return q.get("dryRun") == "All"


def warning_headers(warnings: list[str]) -> dict:
    return {"Warning": [f'299 - {json.dumps(w)}' for w in warnings]} if warnings else {}

