"""ActiveDoc controller: porta ActiveDocs (OpenAPI documents) from ActiveDoc CRs. No finalizer:
deleting the CR leaves the ActiveDoc in 3scale. Watches only ActiveDocs — a change of the Secret
holding the document is not seen until the ActiveDoc itself changes (or the operator restarts), and
a document read from a URL is cached for the life of the process (kin-openapi's URIMapCache).

Upstream: 3scale-operator controllers/capabilities/activedoc_controller.go (defaults → validate →
provider lookup → checkExternalRefs → 3scale), activedoc_threescale_reconciler.go,
activedoc_status_reconciler.go, apis/capabilities/v1beta1/activedoc_types.go (SetDefaults);
kin-openapi v0.94.0 openapi3/loader_uri_reader.go (ReadFromHTTP, URIMapCache).
"""
from __future__ import annotations

import base64
import copy
import json
import re
import socket
import ssl
import threading
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from ..kube.client import SECRETS
from .errors import GoStruct, Invalid, Orphan, ProviderLookupError, field_invalid
from .openapi import OpenAPIError, load_and_validate
from .porta_client import unwrap
from .runtime import ACTIVEDOCS, PRODUCTS, REQUEUE, Provider, Runtime, cond_true

TYPES = ["Failed", "Invalid", "Orphan", "Ready"]


def set_defaults(obj: dict) -> bool:
    """systemName = name without non-alphanumerics, lower-cased; secretRef.namespace = the CR's."""
    spec = obj.setdefault("spec", {})
    before = copy.deepcopy(spec)
    if spec.get("systemName") is None:
        spec["systemName"] = re.sub(r"[^a-zA-Z0-9]+", "", spec.get("name", "")).lower()
    sref = (spec.get("activeDocOpenAPIRef") or {}).get("secretRef")
    if isinstance(sref, dict) and not sref.get("namespace"):
        sref["namespace"] = obj["metadata"]["namespace"]
    return spec != before


def _object_reference(sref: dict) -> GoStruct:
    """How field.Invalid prints a corev1.ObjectReference (%#v)."""
    return GoStruct("v1.ObjectReference", [(k, sref.get(f, "")) for k, f in (
        ("Kind", "kind"), ("Namespace", "namespace"), ("Name", "name"), ("UID", "uid"), ("APIVersion", "apiVersion"),
        ("ResourceVersion", "resourceVersion"), ("FieldPath", "fieldPath"))])


class ActiveDocController:
    kind, res = "ActiveDoc", ACTIVEDOCS

    def __init__(self, rt: Runtime):
        self.rt = rt
        self.url_cache: dict[str, bytes] = {}
        self._cache_lock = threading.Lock()

    def reconcile(self, ns: str, name: str):
        rt = self.rt
        obj = rt.kube.get(ACTIVEDOCS, ns, name)
        if obj is None or obj["metadata"].get("deletionTimestamp"):
            return None
        if set_defaults(obj):
            rt.kube.update(ACTIVEDOCS, obj)  # generation +1; the update event brings us back
            return None
        spec, old = obj["spec"], obj.get("status") or {}
        fields: dict[str, Any] = {"activeDocId": old.get("activeDocId")}
        provider = None
        try:
            provider = rt.lookup_provider(obj)
            product = self.check_external_refs(obj, provider)
            rt.check_fault("ActiveDoc", obj)
            fields["activeDocId"] = self.sync(rt.porta(provider, obj), obj, product)
            true: dict[str, str] = {"Ready": ""}
            result = None
        except Invalid as e:
            true, result = {"Invalid": str(e), "Failed": str(e)}, None
        except Orphan as e:
            true, result = {"Orphan": str(e), "Failed": str(e)}, REQUEUE
        except Exception as e:  # lookup error, porta error, fault: Failed, retried with backoff
            true, result = {"Failed": str(e) or repr(e)}, e
        fields["providerAccountHost"] = provider.admin_url if provider else None
        fields["productResourceName"] = self.referenced_product(obj, provider)
        rt.write_status(ACTIVEDOCS, obj, fields, TYPES, true)
        if isinstance(result, Exception):
            raise result
        return result

    def synced_products(self, ns: str, admin_url: str) -> list[dict]:
        """helper.ProductList: Synced Product CRs of the same tenant."""
        out = []
        for p in self.rt.kube.list(PRODUCTS, ns)[0]:
            if cond_true(p, "Synced"):
                try:
                    if self.rt.lookup_provider(p).admin_url == admin_url:
                        out.append(p)
                except ProviderLookupError as e:
                    raise RuntimeError(f"ProductList: {e}") from None
        return out

    def check_external_refs(self, obj: dict, provider: Provider) -> dict | None:
        psn = obj["spec"].get("productSystemName")
        if psn is None:
            return None
        found = next((p for p in self.synced_products(obj["metadata"]["namespace"], provider.admin_url)
                      if (p.get("spec") or {}).get("systemName") == psn), None)
        if found is None:
            raise Orphan(field_invalid("spec.productSystemName", psn, "not a valid reference"))
        return found

    def referenced_product(self, obj: dict, provider: Provider | None) -> dict | None:
        psn = obj["spec"].get("productSystemName")
        if psn is None or provider is None:
            return None
        try:
            products = self.synced_products(obj["metadata"]["namespace"], provider.admin_url)
        except RuntimeError:
            return None
        p = next((p for p in products if (p.get("spec") or {}).get("systemName") == psn), None)
        return {"name": p["metadata"]["name"]} if p else None

    # -- the document --------------------------------------------------------------------------
    def desired_body(self, obj: dict) -> dict:
        ref = obj["spec"].get("activeDocOpenAPIRef") or {}
        if ref.get("secretRef"):
            sref = ref["secretRef"]
            path, shown = "spec.activeDocOpenAPIRef.secretRef", _object_reference(sref)
            s = self.rt.kube.get(SECRETS, sref.get("namespace"), sref.get("name"))
            if s is None:
                raise Invalid(field_invalid(path, shown, "Secret not found"))
            data = s.get("data") or {}
            if len(data) != 1:
                raise Invalid(field_invalid(path, shown, "Secret was empty or contains too many fields. Only one is required."))
            raw = base64.b64decode(next(iter(data.values())))
        else:
            url = ref.get("url") or ""
            path, shown = "spec.activeDocOpenAPIRef.url", url
            try:
                raw = self.fetch(url)
            except OpenAPIError as e:
                raise Invalid(field_invalid(path, shown, str(e))) from None
        try:
            return load_and_validate(raw)
        except OpenAPIError as e:
            raise Invalid(field_invalid(path, shown, str(e))) from None

    def fetch(self, url: str) -> bytes:
        """ReadFromHTTP through URIMapCache: a successful read is kept for the process's lifetime."""
        with self._cache_lock:
            if url in self.url_cache:
                return self.url_cache[url]
        ctx = ssl.create_default_context()
        if self.rt.ctx.tls:
            ctx.load_verify_locations(cafile=str(self.rt.ctx.tls.ca_cert))
        try:
            with urllib.request.urlopen(url, timeout=10, context=ctx) as r:
                data = r.read()
        except urllib.error.HTTPError as e:
            raise OpenAPIError(f'error loading "{url}": request returned status code {e.code}') from None
        except (OSError, ValueError) as e:  # worded like Go's net/http client error
            reason: Any = getattr(e, "reason", e)
            u = urllib.parse.urlsplit(url)
            if isinstance(reason, socket.gaierror):
                reason = f"dial tcp: lookup {u.hostname}: no such host"
            elif isinstance(reason, ConnectionRefusedError):
                reason = f"dial tcp {u.hostname}:{u.port or (443 if u.scheme == 'https' else 80)}: connect: connection refused"
            raise OpenAPIError(f'Get "{url}": {reason}') from None
        with self._cache_lock:
            self.url_cache[url] = data
        return data

    # -- 3scale ----------------------------------------------------------------------------------
    def sync(self, porta, obj: dict, product: dict | None) -> int:
        spec = obj["spec"]
        sn = spec["systemName"]
        cur = next((d for d in unwrap(porta.call("GET", "/admin/api/active_docs.json"), "api_docs", "api_doc")
                    if d.get("system_name") == sn), None)
        desired_pid = (product.get("status") or {}).get("productId") if product else None
        body = self.desired_body(obj)
        if cur is None:
            params = {"system_name": sn, "name": spec["name"], "body": json.dumps(body)}
            for k, f in (("description", "description"), ("published", "published"),
                         ("skipSwaggerValidations", "skip_swagger_validations")):
                if spec.get(k) is not None:
                    params[f] = str(spec[k]).lower() if isinstance(spec[k], bool) else spec[k]
            if desired_pid is not None:
                params["service_id"] = str(desired_pid)
            cur = porta.call("POST", "/admin/api/active_docs.json", params)
            cur = cur.get("api_doc", cur)
        changed: dict[str, str] = {}
        if cur.get("name") != spec["name"]:
            changed["name"] = spec["name"]
        for k, f in (("description", "description"), ("published", "published"),
                     ("skipSwaggerValidations", "skip_swagger_validations")):
            if spec.get(k) is not None and cur.get(f) != spec[k]:
                changed[f] = str(spec[k]).lower() if isinstance(spec[k], bool) else spec[k]
        if desired_pid is not None and str(cur.get("service_id")) != str(desired_pid):
            changed["service_id"] = str(desired_pid)
        try:
            same_body = json.loads(cur.get("body") or "null") == body
        except ValueError:
            same_body = False
        if not same_body:  # semantic comparison, not text
            changed["body"] = json.dumps(body)
        if changed:
            porta.call("PUT", f"/admin/api/active_docs/{cur['id']}.json", changed)
        if desired_pid is None and cur.get("service_id"):
            porta.call("PUT", f"/admin/api/active_docs/{cur['id']}.json", {"service_id": ""})  # unbind
        return cur["id"]

