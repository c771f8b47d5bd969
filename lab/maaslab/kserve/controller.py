"""KServe: watch InferenceServices cluster-wide, run/stop their servers, write their status.

Upstream: kserve pkg/controller/v1beta1/inferenceservice/controller.go (reconcile: the stop
annotation sets Stopped=True and removes the predictor, otherwise it is deployed and its readiness
propagated),
pkg/apis/serving/v1beta1/inference_service_status.go (condition types IngressReady,
PredictorReady, Ready, Stopped; reason "Stopped"; ModelStatus / FailureInfo "ModelLoadFailed"),
pkg/constants/constants.go (`serving.kserve.io/stop`).
"""
from __future__ import annotations

import copy
import http.client
import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from ..context import LabContext, now_iso
import yaml

from ..kube.client import CRDS, KubeClient, KubeError, Resource
from .workqueue import WorkQueue
from .predictor import PredictorServer, port_name, served_names

LOG = logging.getLogger("maaslab.kserve")

ISVC = Resource("serving.kserve.io/v1beta1", "inferenceservices")
CRD_FILE = Path(__file__).resolve().parent / "inferenceservices.yaml"
STOP_ANNOTATION = "serving.kserve.io/stop"
LAB_READY_ANNOTATION = "lab.maas/ready"
LAB_MESSAGE_ANNOTATION = "lab.maas/message"


class KServe:
    def __init__(self, ctx: LabContext):
        self.ctx = ctx
        self.servers: dict[str, PredictorServer] = {}  # "ns/name" -> running server
        self.queue = WorkQueue(cap=5.0)
        self.threads: list[threading.Thread] = []
        self.lock = threading.Lock()
        self.kube: KubeClient | None = None
        self.state_file = Path(ctx.dir) / "kserve.json"

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        self._load_ports()
        # its own identity (RBAC: maaslab.controlplane.CLUSTER_ROLES), straight to the API server
        self.kube = KubeClient(self.ctx.urls["kube_direct"], token=self.ctx.secret("kube_kserve_token"),
                               ca_file=str(self.ctx.tls.ca_cert))
        self._ensure_crd()
        items, rv = self.kube.list(ISVC)
        for it in items:  # bring every server back before the lab reports READY
            key = _key(it)
            try:
                self.reconcile(key)
            except (KubeError, OSError) as e:
                LOG.warning("inferenceservice %s: %s", key, e)
                self.queue.add(key)
        for target, name in ((lambda: self._watch_loop(rv), "watch"), (self._work_loop, "worker")):
            t = threading.Thread(target=target, name=f"kserve-{name}", daemon=True)
            t.start()
            self.threads.append(t)
        LOG.info("kserve watching inferenceservices in every namespace (%d running)", len(self.servers))

    def stop(self) -> None:
        self.ctx.stopping.set()
        self.queue.close()
        for t in self.threads:
            if t.name.endswith("worker"):
                t.join(timeout=5)
        with self.lock:
            for srv in self.servers.values():
                srv.stop()
            self.servers.clear()
        self._save_ports()

    def _ensure_crd(self) -> None:
        """Installing KServe installs its CRD (the lab registers only the 3scale operator's)."""
        crd = yaml.safe_load(CRD_FILE.read_text())
        name = crd["metadata"]["name"]
        current = self.kube.get(CRDS, None, name)
        if current is None:
            try:
                current = self.kube.create(CRDS, crd)
            except KubeError as e:
                if e.status != 409:
                    raise
                current = self.kube.get(CRDS, None, name)
        # A real API server serves the new resource only once the CRD is Established (apiextensions
        # pkg/controller/establish/establishing_controller.go); waited for here.
        rv = current["metadata"]["resourceVersion"]
        deadline = time.monotonic() + 30
        while not _established(current):
            if time.monotonic() > deadline:
                raise RuntimeError(f"CRD {name} not Established after 30 s: {current.get('status')}")
            for _etype, obj in self.kube.watch(CRDS, None, resource_version=rv, timeout_seconds=10,
                                               field_selector=f"metadata.name={name}"):
                current, rv = obj, obj["metadata"]["resourceVersion"]
                if _established(current):
                    break

    # -- ports (stable across restarts and re-creation) -------------------------------------
    def _load_ports(self) -> None:
        try:
            saved = json.loads(self.state_file.read_text()).get("ports") or {}
        except (FileNotFoundError, ValueError):
            saved = {}
        for k, p in saved.items():
            self.ctx.ports.setdefault(k, int(p))

    def _save_ports(self) -> None:
        ports = {k: p for k, p in self.ctx.ports.items() if k.startswith("kserve/")}
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"ports": ports}, indent=1, sort_keys=True))
        os.replace(tmp, self.state_file)

    def url_of(self, key: str) -> str | None:
        p = self.ctx.ports.get(port_name(key))
        return f"http://127.0.0.1:{p}" if p else None

    # -- watch + worker ---------------------------------------------------------------------
    def _watch_loop(self, rv: str | None) -> None:
        stop, pause = self.ctx.stopping, 0.05
        while not stop.is_set():
            try:
                if rv is None:  # relist: every object is reconciled again
                    items, rv = self.kube.list(ISVC)
                    for it in items:
                        self.queue.add(_key(it))
                for etype, obj in self.kube.watch(ISVC, None, resource_version=rv, timeout_seconds=20):
                    md = obj.get("metadata") or {}
                    rv = md.get("resourceVersion") or rv
                    if etype in ("ADDED", "MODIFIED", "DELETED") and md.get("name"):
                        self.queue.add(_key(obj))
                    if stop.is_set():
                        return
                pause = 0.05
            except KubeError as e:
                if e.status == 410:
                    rv = None
                    continue
                LOG.warning("inferenceservice watch: %s", e)
                stop.wait(pause)
                pause = min(pause * 2, 5.0)
            except (OSError, http.client.HTTPException, ValueError) as e:
                if stop.is_set():
                    return
                LOG.debug("inferenceservice watch interrupted: %s", e)
                stop.wait(pause)
                pause = min(pause * 2, 5.0)

    def _work_loop(self) -> None:
        while not self.ctx.stopping.is_set():
            key = self.queue.get(timeout=0.5)
            if key is None:
                continue
            try:
                self.reconcile(key)
                self.queue.forget(key)
            except Exception as e:  # noqa: BLE001 - retried with backoff, like controller-runtime
                d = self.queue.add_rate_limited(key)
                LOG.info("inferenceservice %s: %s (retry in %.3fs)", key, e, d,
                         exc_info=not isinstance(e, (KubeError, OSError)))

    # -- reconcile --------------------------------------------------------------------------
    def reconcile(self, key: str) -> None:
        ns, name = key.split("/", 1)
        obj = self.kube.get(ISVC, ns, name)
        if obj is None or (obj.get("metadata") or {}).get("deletionTimestamp"):
            self._stop_server(key)
            return
        ann = obj["metadata"].get("annotations") or {}
        names = served_names(obj)
        if str(ann.get(STOP_ANNOTATION, "")).lower() == "true":
            self._stop_server(key)
            status = _status(obj, "stopped", None, names, "")
        elif str(ann.get(LAB_READY_ANNOTATION, "")).lower() == "false":
            self._stop_server(key)
            message = (ann.get(LAB_MESSAGE_ANNOTATION)
                       or f"Failed to load model {names[0]} ({LAB_READY_ANNOTATION}: false)")
            status = _status(obj, "failed", self._reserve_url(key), names, message)
        else:
            url = self._run_server(key, names)
            status = _status(obj, "ready", url, names, "")
        if _comparable(obj.get("status") or {}) != _comparable(status):
            obj["status"] = status
            self.kube.update_status(ISVC, obj)  # 409 on a stale resourceVersion: retried

    def _reserve_url(self, key: str) -> str:
        if port_name(key) not in self.ctx.ports:
            self.ctx.port(port_name(key))
            self._save_ports()
        return self.url_of(key)

    def _run_server(self, key: str, names: list[str]) -> str:
        with self.lock:
            srv = self.servers.get(key)
            if srv is None:
                srv = PredictorServer(self.ctx, key, names)
                srv.start()
                self.servers[key] = srv
                self._save_ports()
                LOG.info("inferenceservice %s serving %s on %s", key, names, srv.url)
            elif srv.names != names:
                srv.names = list(names)  # a changed --served-model-name: the runtime restarts with it
            return srv.url

    def _stop_server(self, key: str) -> None:
        with self.lock:
            srv = self.servers.pop(key, None)
        if srv:
            srv.stop()
            LOG.info("inferenceservice %s: model server stopped", key)


def _established(crd: dict) -> bool:
    return any(c.get("type") == "Established" and c.get("status") == "True"
               for c in (crd.get("status") or {}).get("conditions") or [])


def _key(obj: dict[str, Any]) -> str:
    md = obj.get("metadata") or {}
    return f"{md.get('namespace')}/{md.get('name')}"


def _cond(ctype: str, ok: bool, reason: str = "", message: str = "") -> dict[str, Any]:
    c: dict[str, Any] = {"type": ctype, "status": "True" if ok else "False"}
    if reason:
        c["reason"] = reason
    if message:
        c["message"] = message
    return c


def _status(obj: dict[str, Any], state: str, url: str | None, names: list[str], message: str) -> dict[str, Any]:
    """The status upstream's controller writes for a RawDeployment predictor in `state`
    ("ready", "failed": model load failed, "stopped": serving.kserve.io/stop)."""
    old = obj.get("status") or {}
    st: dict[str, Any] = {"observedGeneration": obj["metadata"].get("generation", 1),
                          "deploymentMode": "RawDeployment"}
    if state == "stopped":
        conds = [_cond("IngressReady", False, "Stopped", "The inference service is stopped"),
                 _cond("PredictorReady", False, "Stopped", "The inference service is stopped"),
                 _cond("Ready", False, "Stopped", "The inference service is stopped"),
                 _cond("Stopped", True)]
        st["modelStatus"] = {"transitionStatus": "InProgress",
                             "states": {"activeModelState": "Pending", "targetModelState": "Pending"}}
    else:
        st["url"] = url
        st["address"] = {"url": url}
        st["components"] = {"predictor": {"url": url, "address": {"url": url}}}
        if state == "ready":
            conds = [_cond("IngressReady", True), _cond("PredictorReady", True), _cond("Ready", True),
                     _cond("Stopped", False)]
            st["modelStatus"] = {"transitionStatus": "UpToDate", "copies": {"failedCopies": 0, "totalCopies": 1},
                                 "states": {"activeModelState": "Loaded", "targetModelState": "Loaded"}}
        else:
            conds = [_cond("IngressReady", True),
                     _cond("PredictorReady", False, "ModelLoadFailed", message),
                     _cond("Ready", False, "ModelLoadFailed", message), _cond("Stopped", False)]
            st["modelStatus"] = {"transitionStatus": "BlockedByFailedLoad",
                                 "copies": {"failedCopies": 1, "totalCopies": 1},
                                 "states": {"activeModelState": "FailedToLoad", "targetModelState": "FailedToLoad"},
                                 "lastFailureInfo": {"reason": "ModelLoadFailed", "message": message}}
    previous = {c.get("type"): c for c in old.get("conditions") or []}
    now = now_iso()
    for c in conds:
        p = previous.get(c["type"])
        c["lastTransitionTime"] = p["lastTransitionTime"] if p and p.get("status") == c["status"] \
            and p.get("lastTransitionTime") else now
    st["conditions"] = conds
    return st


def _comparable(status: dict[str, Any]) -> dict[str, Any]:
    st = copy.deepcopy(status)
    for c in st.get("conditions") or []:
        c.pop("lastTransitionTime", None)
    return st
