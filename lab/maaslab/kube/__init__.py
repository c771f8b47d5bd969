"""The lab's Kubernetes API server: the subset of the real REST protocol that kubectl 1.37, the
Python DynamicClient and kubernetes.core use (see reference/kubernetes-api/CLIENT-REQUESTS.md).

Core kinds Namespace/Secret/ConfigMap/Event, coordination.k8s.io/v1 Lease, CustomResourceDefinitions registered at run time, CRs
validated/pruned/defaulted by their openAPIV3Schema (maaslab.kube.schema), status subresource,
finalizers, optimistic concurrency, list/label/field selectors, chunked watch with bookmarks and
watch-list, merge/JSON/apply patches, dry runs, discovery and /openapi/v3. State lives in
<ctx.dir>/kube/state.json (atomic rewrites, debounced) so a restart resumes everything.

Known simplifications (documented): server-side apply is a merge that replaces lists and ignores
field ownership/conflicts; strategic merge on core kinds is a JSON merge (directives dropped); CEL
rules are not evaluated; no conversion between CRD versions (the "None" strategy: apiVersion only);
no aggregated discovery (kubectl falls back); no protobuf; no RBAC (both lab tokens are admins).
Unknown fields under fieldValidation=Strict answer 400 BadRequest "strict decoding error", as a real
apiserver does (schema violations are 422 Invalid); Warn (the default) prunes and sends Warning headers.

Modules (no cycles: each imports only those listed before it):
`schema` openAPIV3Schema validation, pruning, defaulting; `core` ApiError, ResourceType, constants;
`selectors` label/field selectors, printer-column helpers; `store` objects, resourceVersion,
persistence, type registry; `hooks` kind-specific rules; `verbs` create/update/delete/list;
`patch` merge/JSON/apply patches; `discovery` discovery and /openapi/v3; `faults` fault switches
`kube` and the lab-only `/lab/stats.json` counters; `watch` watch streams;
`server` KubeAPIServer (the mixins above + lifecycle + routing) and its HTTP handler;
`client` KubeClient, the stdlib client of the operator and the orchestrator (imports nothing here).
"""
from .server import KubeAPIServer

__all__ = ["KubeAPIServer"]
