"""3scale operator emulator: the capabilities controllers for Backend, Product, ActiveDoc and
ProxyConfigPromote, following /work/shared/reference/threescale-operator/CONTRACT.md (§10 wins).

Like the real operator it only talks HTTP: it WATCHes its kinds on the lab's Kubernetes API
(`maaslab.kube.client`) and syncs 3scale through porta's admin REST API. One controller per kind
(one module each, as upstream's controllers/capabilities/) = one watch thread + one worker thread +
a rate-limited work queue (runtime.py). Controllers watch only their own kind, so a dependent CR
wakes up only on its backoff, as upstream.
"""
from __future__ import annotations

import logging

from ..context import LabContext
from ..kube.client import KubeClient
from .activedoc import ActiveDocController
from .backend import BackendController
from .product import ProductController
from .proxyconfigpromote import ProxyConfigPromoteController
from .runtime import Controller, Runtime, WorkQueue

LOG = logging.getLogger("maaslab.operator")
__all__ = ["Operator", "WorkQueue"]


class Operator(Runtime):
    def __init__(self, ctx: LabContext):
        super().__init__(ctx)
        self.controllers: list[Controller] = []

    def start(self) -> None:
        self.kube = KubeClient(self.ctx.urls["kube_direct"], token=self.ctx.secret("kube_operator_token"),
                               ca_file=str(self.ctx.tls.ca_cert) if self.ctx.tls else None)
        self.kube.request("GET", "/version")  # fail fast when the API server is not there
        for cls in (BackendController, ProductController, ActiveDocController, ProxyConfigPromoteController):
            handler = cls(self)
            c = Controller(self, handler.kind, handler.res, handler.reconcile)
            self.controllers.append(c)
            c.start()
        LOG.info("operator watching namespace %s", self.namespace)

    def stop(self) -> None:
        self.ctx.stopping.set()
        for c in self.controllers:
            c.queue.close()
        for c in self.controllers:
            for t in c.threads:
                if t.name.endswith("worker"):
                    t.join(timeout=5)
