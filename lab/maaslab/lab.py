"""The lab process: start every component in order, seed it like the workshop cluster, serve.

Run in the foreground with `python -m maaslab serve --dir D`; `python -m maaslab up` runs this in
the background and returns once READY. See lab/ARCHITECTURE.md.
"""
from __future__ import annotations

import base64
import importlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import yaml

from .context import LabContext
from .kube.client import CRDS, NAMESPACES, SECRETS, KubeClient, KubeError, Resource

LOG = logging.getLogger("maaslab")

DEFAULT_SETTINGS: dict[str, Any] = {
    "users": 5,
    "apicast_refresh": 1.0,
    "porta_release": "2.16",  # "next": porta master behaviours (15-character password minimum)
    "namespace": "3scale",
    "tenant": "3scale",
    "models": ["ibm-granite/granite-3.2-8b-instruct", "tinyllama/tinyllama-1.1b-chat-v1.0"],
}

# (module, class) in start order; stopped in reverse.
COMPONENTS = [
    ("model", "ModelServer"),
    ("porta", "Porta"),
    ("apicast", "APIcast"),
    ("controlplane", "ControlPlane"),  # etcd + kube-apiserver + kube-controller-manager (+ fault proxy)
    ("threescale_operator", "ThreescaleOperator"),  # built from its Go module (hack/build-operator.sh)
    ("kserve", "KServe"),
]

# The workshop cluster's pre-existing product (seeds/000: "granite-3dot2-8b-instruct, which is
# connected to the model that was pre-deployed"), created through the operator like the real one.
GRANITE = "granite-3dot2-8b-instruct"


def _granite_manifests(ns: str, model_url: str) -> list[dict[str, Any]]:
    api = "capabilities.3scale.net/v1beta1"
    rules = [("GET", "/health", "health", "Health"), ("POST", "/tokenize", "tokenize", "Tokenize"),
             ("POST", "/detokenize", "detokenize", "Detokenize"), ("GET", "/v1/models", "models", "Models"),
             ("GET", "/version", "version", "Version"),
             ("POST", "/v1/chat/completions", "chat/completions", "Chat Completions"),
             ("POST", "/v1/completions", "completions", "Completions"),
             ("POST", "/v1/embeddings", "embeddings", "Embeddings")]
    meta = {"namespace": ns, "name": GRANITE}
    return [
        {"apiVersion": api, "kind": "Backend", "metadata": meta,
         "spec": {"name": GRANITE, "systemName": GRANITE, "privateBaseURL": model_url}},
        {"apiVersion": api, "kind": "Product", "metadata": meta, "spec": {
            "name": GRANITE, "systemName": GRANITE,
            "deployment": {"apicastHosted": {"authentication": {"userkey": {
                "authUserKey": "Authorization", "credentials": "headers"}}}},
            "backendUsages": {GRANITE: {"path": "/"}},
            "mappingRules": [{"httpMethod": m, "pattern": p, "metricMethodRef": ref, "increment": 1}
                             for m, p, ref, _ in rules],
            "methods": {ref: {"friendlyName": fn} for _, _, ref, fn in rules},
            "policies": [
                {"name": "cors", "version": "builtin", "enabled": True, "configuration": {
                    "allow_credentials": True, "allow_headers": ["Authorization", "Content-type", "Accept"],
                    "allow_methods": [], "allow_origin": "*"}},
                {"name": "remove-bearer", "version": "0.1", "enabled": True, "configuration": {}},
                {"name": "apicast", "version": "builtin", "enabled": True, "configuration": {}},
                {"name": "upstream_connection", "version": "builtin", "enabled": True, "configuration": {
                    "connect_timeout": 180, "read_timeout": 180, "send_timeout": 180}}],
            "applicationPlans": {"standard": {"name": "Standard Plan", "appsRequireApproval": False,
                                              "published": True}}}},
        {"apiVersion": api, "kind": "ProxyConfigPromote", "metadata": {"namespace": ns, "name": GRANITE + "-seed"},
         "spec": {"productCRName": GRANITE, "production": True}},
    ]


class Lab:
    def __init__(self, directory: Path, overrides: dict[str, Any] | None = None):
        self.dir = directory.resolve()
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)
        saved = self._load_json()
        settings = dict(DEFAULT_SETTINGS)
        settings.update(saved.get("settings") or {})
        settings.update({k: v for k, v in (overrides or {}).items() if v is not None})
        self.ctx = LabContext.create(self.dir, settings, saved.get("ports"))
        self.components: list[Any] = []
        self.timings: dict[str, float] = {}

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        t0 = time.monotonic()
        for modname, clsname in COMPONENTS:
            t = time.monotonic()
            cls = getattr(importlib.import_module(f"maaslab.{modname}"), clsname)
            comp = cls(self.ctx)
            comp.start()
            self.components.append(comp)
            self.timings[modname] = round(time.monotonic() - t, 3)
            if modname == "controlplane":
                self._seed_kube()
        if not self.ctx.settings.get("seeded"):
            self._write_files()  # URLs and credentials are known: a seed that hangs can be looked into
            t = time.monotonic()
            self._seed_granite()
            for comp in self.components:  # the gateway reads the promoted config like a pod started after it
                if hasattr(comp, "reload_production"):
                    comp.reload_production()
            self.ctx.settings["seeded"] = True
            self.timings["seed_granite"] = round(time.monotonic() - t, 3)
        self.timings["total"] = round(time.monotonic() - t0, 3)
        self._write_files()
        LOG.info("lab ready in %.2fs: %s", self.timings["total"], self.timings)

    def stop(self) -> None:
        self.ctx.stopping.set()
        for comp in reversed(self.components):
            try:
                comp.stop()
            except Exception:  # keep stopping the others; state of each is flushed by its stop()
                LOG.exception("stopping %s failed", type(comp).__name__)
        self.components.clear()

    def operator_control(self, action: str) -> None:
        """`maaslab operator stop|start`: stop or start the operator's process."""
        from .threescale_operator import ThreescaleOperator
        op = next((c for c in self.components if isinstance(c, ThreescaleOperator)), None)
        if op is None:
            LOG.warning("operator %s: the lab is not running", action)
            return
        if action == "stop":
            op.stop()
        elif not op.running():
            op.start()
        else:
            op.write_state()

    # -- kube seeding over HTTP (same path as any client) ------------------------------------
    def _kube(self) -> KubeClient:
        return KubeClient(self.ctx.urls["kube"], self.ctx.secret("kube_admin_token"),
                          ca_file=str(self.ctx.tls.ca_cert))

    def _crd_files(self) -> list[dict[str, Any]]:
        """The 3scale operator's CRDs, as its Go module carries them (copied next to the binary by
        hack/build-operator.sh). KServe's InferenceService is installed by the KServe stand-in."""
        from .threescale_operator import crd_dir
        files = sorted(crd_dir().glob("*.y*ml"))
        docs = []
        for f in files:
            for doc in yaml.safe_load_all(f.read_text()):
                if doc and doc.get("kind") == "CustomResourceDefinition":
                    docs.append(doc)
        if not docs:
            raise RuntimeError(f"no CustomResourceDefinition found in {', '.join(map(str, files)) or 'nothing'}")
        return docs

    def _seed_kube(self) -> None:
        kube = self._kube()
        ns = self.ctx.settings["namespace"]
        crds = self._crd_files()
        for crd in crds:  # replaced when it differs: a lab directory outlives an operator rebuild
            if not _create_if_absent(kube, CRDS, crd):
                current = kube.get(CRDS, None, crd["metadata"]["name"])
                if current["spec"] != crd["spec"]:
                    kube.update(CRDS, dict(crd, metadata=dict(
                        crd["metadata"], resourceVersion=current["metadata"]["resourceVersion"])))
        for crd in crds:
            _wait_for(kube, CRDS, None, crd["metadata"]["name"], _has_condition("Established"), timeout=10)
        _create_if_absent(kube, NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        token = self.ctx.secret("porta_token")
        _create_if_absent(kube, SECRETS, _secret(ns, "system-seed", {
            "ADMIN_USER": "admin", "ADMIN_PASSWORD": self.ctx.secret("admin_password", 8),
            "ADMIN_ACCESS_TOKEN": token, "ADMIN_EMAIL": "admin@example.com",
            "MASTER_USER": "master", "MASTER_PASSWORD": self.ctx.secret("master_password", 8),
            "MASTER_ACCESS_TOKEN": self.ctx.secret("master_token"), "TENANT_NAME": self.ctx.settings["tenant"]}))
        # Rewritten on every start: porta's URL is the tenant identity every CR is compared by.
        account = _secret(ns, "threescale-provider-account", {"adminURL": self.ctx.urls["porta"], "token": token})
        if not _create_if_absent(kube, SECRETS, account):
            current = kube.get(SECRETS, ns, "threescale-provider-account")
            if current.get("data") != account["data"]:
                current["data"] = account["data"]
                kube.update(SECRETS, current)

    def _seed_granite(self) -> None:
        kube = self._kube()
        ns = self.ctx.settings["namespace"]
        objs = _granite_manifests(ns, self.ctx.urls["model"])
        for obj in objs:
            _create_if_absent(kube, Resource(obj["apiVersion"], obj["kind"].lower() + "s"), obj)
        pcp = objs[-1]
        _wait_for(kube, Resource(pcp["apiVersion"], "proxyconfigpromotes"), ns, pcp["metadata"]["name"],
                  _has_condition("Ready"), timeout=60)

    # -- files -------------------------------------------------------------------------------
    def _load_json(self) -> dict[str, Any]:
        try:
            return json.loads((self.dir / "lab.json").read_text())
        except FileNotFoundError:
            return {}

    def _write_files(self) -> None:
        ctx = self.ctx
        kubeconfig = self.dir / "kubeconfig"
        cluster: dict[str, Any] = {"server": ctx.urls["kube"],
                                   "certificate-authority-data": base64.b64encode(ctx.tls.ca_cert.read_bytes()).decode()}
        _write_private(kubeconfig, yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "maaslab",
            "clusters": [{"name": "maaslab", "cluster": cluster}],
            "users": [{"name": "maaslab-admin", "user": {"token": ctx.secret("kube_admin_token")}}],
            "contexts": [{"name": "maaslab", "context": {"cluster": "maaslab", "user": "maaslab-admin",
                                                         "namespace": ctx.settings["namespace"]}}]}))
        env = {
            "LAB_DIR": str(self.dir),
            "KUBECONFIG": str(kubeconfig),
            "K8S_AUTH_KUBECONFIG": str(kubeconfig),
            "THREESCALE_ADMIN_URL": ctx.urls["porta"],
            "THREESCALE_ACCESS_TOKEN": ctx.secret("porta_token"),
            "THREESCALE_CA_BUNDLE": str(ctx.tls.ca_cert),
            "LAB_CA_CERT": str(ctx.tls.ca_cert),
            "LAB_KUBE_URL": ctx.urls["kube"],
            "LAB_MODEL_URL": ctx.urls["model"],
            "LAB_BACKEND_URL": ctx.urls["backend"],
        }
        _write_private(self.dir / "lab.env", "".join(f"export {k}='{v}'\n" for k, v in env.items()))
        _write_private(self.dir / "lab.json", json.dumps({
            "pid": os.getpid(), "dir": str(self.dir), "settings": ctx.settings, "ports": ctx.ports,
            "urls": ctx.urls, "env": env, "tls": {"ca_cert": str(ctx.tls.ca_cert)},
            "credentials": ctx.settings.get("credentials", {}), "startup_seconds": self.timings}, indent=2))


def _create_if_absent(kube: KubeClient, res: Resource, obj: dict[str, Any]) -> bool:
    try:
        kube.create(res, obj)
        return True
    except KubeError as err:
        if err.status == 409:
            return False
        raise


def _has_condition(ctype: str):
    return lambda o: any(c.get("type") == ctype and c.get("status") == "True"
                         for c in (o.get("status") or {}).get("conditions") or [])


def _wait_for(kube: KubeClient, res: Resource, ns: str | None, name: str, predicate, timeout: float) -> dict:
    """Watch the object until `predicate` holds (no polling); fail with its last state."""
    deadline = time.monotonic() + timeout
    obj = kube.get(res, ns, name)
    if obj and predicate(obj):
        return obj
    rv = obj["metadata"]["resourceVersion"] if obj else None
    while (left := deadline - time.monotonic()) > 0:
        for _etype, obj in kube.watch(res, ns, resource_version=rv, timeout_seconds=max(1, int(left)),
                                      field_selector=f"metadata.name={name}"):
            if predicate(obj):
                return obj
    raise RuntimeError(f"{res.plural}/{name} not ready after {timeout}s: {(obj or {}).get('status')}")


def _secret(ns: str, name: str, data: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": {"namespace": ns, "name": name},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)
