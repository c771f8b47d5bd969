"""ProxyConfigPromote controller: one-shot promotion of a Product's configuration to staging or
production. No finalizer, no observedGeneration; zero versions and an empty productId are omitted
from status (Go omitempty).

Upstream: 3scale-operator controllers/capabilities/proxyconfigpromote_controller.go and
proxyconfigpromote_status_reconciler.go; pkg/helper/reconcile_error_handler.go (Invalid: no requeue).
"""
from __future__ import annotations

from .errors import (CLIENT_ERRORS, ERR_REFERENCED_METHOD_IS_BEING_DELETED, NO_CHANGES_TAIL, PRODUCT_NOT_READY,
                     PROMOTED_MSG, Invalid, PortaError, field_invalid)
from .runtime import PCPS, PRODUCTS, REQUEUE, Runtime, cond_message, cond_true

TYPES = ["Failed", "Ready"]


def no_changes(env: str) -> Invalid:
    """field.Invalid(field.NewPath(""), "", ...): the root path prints as "[]"."""
    return Invalid(field_invalid("[]", "", f"cannot promote to {env} as {NO_CHANGES_TAIL}"))


class ProxyConfigPromoteController:
    kind, res = "ProxyConfigPromote", PCPS

    def __init__(self, rt: Runtime):
        self.rt = rt

    def write(self, obj: dict, product_id: str, prod: int, stage: int, err: Exception | None) -> None:
        fields = {"productId": product_id or None, "latestProductionVersion": prod or None,
                  "latestStagingVersion": stage or None}
        true = {"Ready": PROMOTED_MSG} if err is None else {"Failed": str(err) or repr(err)}
        obj["status"] = self.rt.write_status(PCPS, obj, fields, TYPES, true, observed=False).get("status")

    def reconcile(self, ns: str, name: str):
        rt = self.rt
        obj = rt.kube.get(PCPS, ns, name)
        if obj is None:
            return None
        spec = obj.get("spec") or {}
        # the Product is read before the Ready check: a promoted PCP whose Product is gone flips back
        product = rt.kube.get(PRODUCTS, ns, spec.get("productCRName", ""))
        if product is None:
            msg = f'products.capabilities.3scale.net "{spec.get("productCRName")}" not found'
            self.write(obj, "product not found", 0, 0, RuntimeError(msg))
            raise RuntimeError(msg)
        provider = rt.lookup_provider(product)  # the Product's account; an error: retried, no status
        porta = rt.porta(provider, obj)  # the TLS-skip annotation of the PCP applies
        if not cond_true(obj, "Ready"):
            try:
                pid, prod, stage = self.promote(porta, obj, product)
                err = None
            except PromoteError as e:
                (pid, prod, stage), err = e.fields, e.cause
            self.write(obj, pid, prod, stage, err)
            if isinstance(err, Invalid):
                return None  # terminal: a new CR is needed
            if err is not None:
                return REQUEUE
        if spec.get("deleteCR") and cond_true(obj, "Ready"):  # also when deleteCR is set after the promotion
            rt.kube.delete(PCPS, ns, name)
        return None

    def promote(self, porta, obj: dict, product: dict) -> tuple[str, int, int]:
        spec, pst = obj.get("spec") or {}, product.get("status") or {}
        ok = cond_true(product, "Synced") or (cond_true(product, "Failed") and
                                              cond_message(product, "Failed") == ERR_REFERENCED_METHOD_IS_BEING_DELETED)
        if not ok or not pst.get("productId"):
            raise PromoteError(("", 0, 0), RuntimeError(PRODUCT_NOT_READY))
        pid = str(pst["productId"])
        svc = f"/admin/api/services/{pid}/proxy"

        def latest(env: str, fields: tuple, missing_ok: bool) -> int:
            try:
                return int(porta.call("GET", f"{svc}/configs/{env}/latest.json")["proxy_config"]["version"])
            except CLIENT_ERRORS as e:
                if isinstance(e, PortaError) and e.status == 404 and missing_ok:
                    return 0
                raise PromoteError(fields, e) from None

        def deploy() -> None:
            try:
                porta.call("POST", f"{svc}/deploy.json", {})
            except CLIENT_ERRORS as e:
                raise PromoteError((pid, 0, 0), e) from None

        try:
            self.rt.check_fault("ProxyConfigPromote", obj)
        except RuntimeError as e:
            raise PromoteError((pid, 0, 0), e) from None
        if not spec.get("production"):
            before = latest("sandbox", (pid, 0, 0), True)
            deploy()
            stage = latest("sandbox", (pid, 0, 0), False)
            prod = latest("production", (pid, 0, stage), True)
            if before == stage:  # upstream's argument order: production gets the staging version
                raise PromoteError((pid, stage, 0), no_changes("staging"))
            return pid, prod, stage
        deploy()
        stage = latest("sandbox", (pid, 0, 0), False)
        prod = latest("production", (pid, 0, stage), True)
        try:
            porta.call("POST", f"{svc}/configs/sandbox/{stage}/promote.json", {"to": "production"})
        except CLIENT_ERRORS:  # any error of the promote call reads "no product changes detected"
            raise PromoteError((pid, prod, stage), no_changes("production")) from None
        return pid, stage, stage


class PromoteError(Exception):
    def __init__(self, fields: tuple[str, int, int], cause: Exception):
        super().__init__(str(cause))
        self.fields, self.cause = fields, cause
