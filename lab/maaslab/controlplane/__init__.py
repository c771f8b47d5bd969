"""The lab's real Kubernetes control plane: etcd, kube-apiserver and kube-controller-manager,
built from their Go modules by `hack/build-k8s.sh` (module `lab/k8s`), run as child processes.

What it sets up (`<dir>/k8s/`):

* etcd on loopback (plain HTTP, client and peer ports of its own), its data in `<dir>/k8s/etcd`, so a
  `down`/`up` keeps every object.
* kube-apiserver on `urls["kube_direct"]` with the lab's server certificate, the lab CA for client
  certificates, a static token file with one identity per lab user (admin in `system:masters`; the
  operator and the KServe stand-in as users bound to ClusterRoles of their own), RBAC authorization,
  and a service-account issuer and signing key (so `kubectl create token` and TokenRequest work).
* kube-controller-manager (namespace deletion, garbage collection, service accounts and their
  tokens) with its own identity and per-controller service-account credentials.
* the fault proxy (`maaslab.controlplane.proxy`) on `urls["kube"]`: what kubeconfig, lab.env and
  the collection use. The lab's own controllers connect to `urls["kube_direct"]`, past the faults.

Every child gets PR_SET_PDEATHSIG, so a lab killed with -9 leaves nothing running; `stop()`
terminates them in reverse order. Logs: `<dir>/k8s/logs/<name>.log`.
"""
from __future__ import annotations

import ctypes
import json
import logging
import os
import signal
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from ..context import LabContext
from ..kube.client import KubeClient, KubeError, Resource
from .proxy import FaultProxy

LOG = logging.getLogger("maaslab.controlplane")

# The identities of the lab's users (static token file of kube-apiserver): name -> (user, groups).
IDENTITIES = {
    "kube_admin_token": ("maaslab-admin", ["system:masters"]),
    "kube_operator_token": ("maaslab:3scale-operator", ["maaslab:controllers"]),
    "kube_kserve_token": ("maaslab:kserve-controller", ["maaslab:controllers"]),
    "kube_controller_manager_token": ("system:kube-controller-manager", []),
}

# What the lab's controllers may do, and nothing more (RBAC, applied at every start).
CLUSTER_ROLES: dict[str, list[dict[str, Any]]] = {
    "maaslab:3scale-operator": [
        {"apiGroups": ["capabilities.3scale.net"], "resources": ["*"],
         "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]},
        {"apiGroups": ["apps.3scale.net"], "resources": ["apimanagers"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": ["", "events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch", "update"]},
    ],
    "maaslab:kserve-controller": [
        {"apiGroups": ["serving.kserve.io"], "resources": ["inferenceservices", "inferenceservices/status"],
         "verbs": ["get", "list", "watch", "update", "patch"]},
        {"apiGroups": ["apiextensions.k8s.io"], "resources": ["customresourcedefinitions"],
         "verbs": ["get", "list", "watch", "create"]},
        {"apiGroups": ["", "events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch", "update"]},
    ],
}
SUBJECTS = {"maaslab:3scale-operator": "maaslab:3scale-operator",
            "maaslab:kserve-controller": "maaslab:kserve-controller"}

CLUSTER_ROLE = Resource("rbac.authorization.k8s.io/v1", "clusterroles", namespaced=False)
CLUSTER_ROLE_BINDING = Resource("rbac.authorization.k8s.io/v1", "clusterrolebindings", namespaced=False)
SERVICE_ACCOUNTS = Resource("v1", "serviceaccounts")
PR_SET_PDEATHSIG = 1
REPO = Path(__file__).resolve().parents[3]


def bin_dir() -> Path:
    """Where `hack/build-k8s.sh` put the binaries: $MAASLAB_K8S_BIN, else <repo>/.venv/k8s-bin."""
    return Path(os.environ.get("MAASLAB_K8S_BIN") or REPO / ".venv" / "k8s-bin")


def _dies_with_parent(sig: int):
    """preexec_fn: the child gets `sig` when the lab process dies (runs between fork and exec)."""
    def preexec() -> None:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, sig)
    return preexec


class ControlPlane:
    """etcd + kube-apiserver + kube-controller-manager + the fault proxy (see the module doc)."""

    def __init__(self, ctx: LabContext):
        self.ctx = ctx
        self.home = Path(ctx.dir) / "k8s"
        self.procs: list[tuple[str, subprocess.Popen]] = []
        self.proxy: FaultProxy | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        bins = bin_dir()
        missing = [b for b in ("etcd", "kube-apiserver", "kube-controller-manager") if not (bins / b).is_file()]
        if missing:
            raise RuntimeError(f"{', '.join(missing)} not found in {bins}: run `make setup` (hack/build-k8s.sh)")
        (self.home / "logs").mkdir(parents=True, exist_ok=True)
        os.chmod(self.home, 0o700)
        files = self._files()
        etcd_client, etcd_peer = self.ctx.port("etcd"), self.ctx.port("etcd-peer")
        self._spawn("etcd", [
            str(bins / "etcd"), "--name", "maaslab", "--data-dir", str(self.home / "etcd"),
            "--listen-client-urls", f"http://127.0.0.1:{etcd_client}",
            "--advertise-client-urls", f"http://127.0.0.1:{etcd_client}",
            "--listen-peer-urls", f"http://127.0.0.1:{etcd_peer}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{etcd_peer}",
            "--initial-cluster", f"maaslab=http://127.0.0.1:{etcd_peer}",
            "--listen-metrics-urls", "", "--log-level", "warn",
            # a throwaway lab: no fsync per write (etcd's own flag for tests), small backend quota
            "--unsafe-no-fsync", "--quota-backend-bytes", str(2 * 1024 ** 3)])
        self._wait_http(f"http://127.0.0.1:{etcd_client}/health", None, lambda b: b'"health":"true"' in b, "etcd")
        api_port = self.ctx.port("kube-apiserver")
        tls = self.ctx.tls
        self._spawn("kube-apiserver", [
            str(bins / "kube-apiserver"),
            "--etcd-servers", f"http://127.0.0.1:{etcd_client}",
            "--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1", "--secure-port", str(api_port),
            "--tls-cert-file", str(tls.server_cert), "--tls-private-key-file", str(tls.server_key),
            "--client-ca-file", str(tls.ca_cert),
            "--token-auth-file", str(files["tokens"]),
            "--authorization-mode", "Node,RBAC",
            "--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
            "--service-account-key-file", str(files["sa_pub"]),
            "--service-account-signing-key-file", str(files["sa_key"]),
            "--api-audiences", "https://kubernetes.default.svc.cluster.local",
            "--service-cluster-ip-range", "10.96.0.0/16",
            "--profiling=false", "--v=1"])
        self.ctx.urls["kube_direct"] = f"https://127.0.0.1:{api_port}"
        admin = self.ctx.secret("kube_admin_token")
        self._wait_http(self.ctx.urls["kube_direct"] + "/readyz", admin, lambda b: b.strip() == b"ok",
                        "kube-apiserver", timeout=120)
        self._spawn("kube-controller-manager", [
            str(bins / "kube-controller-manager"),
            "--kubeconfig", str(files["kcm_kubeconfig"]),
            "--controllers", "namespace-controller,garbage-collector-controller,serviceaccount-controller,"
                             "root-ca-certificate-publisher-controller,clusterrole-aggregation-controller,"
                             "serviceaccount-token-controller",
            "--use-service-account-credentials=true",
            "--service-account-private-key-file", str(files["sa_key"]),
            "--root-ca-file", str(tls.ca_cert),
            "--leader-elect=false", "--secure-port=0", "--v=1"])
        self._apply_rbac()
        self.proxy = FaultProxy(self.ctx, self.ctx.urls["kube_direct"])
        self.proxy.start()
        self.ctx.urls["kube"] = self.proxy.url
        self._wait_default_service_account(admin)

    def stop(self) -> None:
        if self.proxy:
            self.proxy.stop()
            self.proxy = None
        # kube-apiserver and kube-controller-manager keep no state of their own (etcd holds it, and a
        # write is answered only once etcd has it), and the apiserver's graceful termination waits for
        # the watches still open: both are killed. etcd stops last, cleanly (SIGTERM).
        for name, proc in reversed(self.procs):
            if proc.poll() is None:
                if name == "etcd":
                    proc.terminate()
                else:
                    proc.kill()
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    LOG.warning("%s still running 20 s after SIGTERM; killing it", name)
                    proc.kill()
                    proc.wait(timeout=5)
        self.procs.clear()

    def watches(self) -> list[str]:
        return self.proxy.watches() if self.proxy else []

    def pids(self) -> dict[str, int]:
        return {name: p.pid for name, p in self.procs}

    # -- pieces ------------------------------------------------------------------------------
    def _files(self) -> dict[str, Path]:
        """Service-account keys (once), token file and the controller manager's kubeconfig."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        sa_key, sa_pub = self.home / "sa.key", self.home / "sa.pub"
        if not sa_key.exists():
            key = ec.generate_private_key(ec.SECP256R1())
            _write(sa_key, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()))
            _write(sa_pub, key.public_key().public_bytes(serialization.Encoding.PEM,
                                                         serialization.PublicFormat.SubjectPublicKeyInfo))
        rows = []
        for secret_name, (user, groups) in IDENTITIES.items():
            token = self.ctx.secret(secret_name)
            rows.append(f'{token},{user},{user}' + (f',"{",".join(groups)}"' if groups else ""))
        tokens = self.home / "tokens.csv"
        _write(tokens, ("\n".join(rows) + "\n").encode())
        kubeconfig = self.home / "kube-controller-manager.kubeconfig"
        _write(kubeconfig, json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "kcm",
            "clusters": [{"name": "lab", "cluster": {"server": "https://127.0.0.1:%d" % self.ctx.port("kube-apiserver"),
                                                     "certificate-authority": str(self.ctx.tls.ca_cert)}}],
            "users": [{"name": "kcm", "user": {"token": self.ctx.secret("kube_controller_manager_token")}}],
            "contexts": [{"name": "kcm", "context": {"cluster": "lab", "user": "kcm"}}]}).encode())
        return {"sa_key": sa_key, "sa_pub": sa_pub, "tokens": tokens, "kcm_kubeconfig": kubeconfig}

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = open(self.home / "logs" / f"{name}.log", "ab")
        try:
            # etcd shuts down cleanly and quickly on SIGTERM; kube-apiserver's graceful termination can
            # wait for open watches and neither it nor the controller manager keeps state: SIGKILL
            sig = signal.SIGTERM if name == "etcd" else signal.SIGKILL
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, close_fds=True,
                                    preexec_fn=_dies_with_parent(sig), cwd=self.home)
        finally:
            log.close()
        self.procs.append((name, proc))

    def _wait_http(self, url: str, token: str | None, ok, name: str, timeout: float = 60) -> None:
        """Poll a health endpoint until `ok(body)`; fail at once when the process has exited."""
        proc = dict(self.procs)[name]
        ssl_ctx = self.ctx.client_ssl_context() if url.startswith("https") else None
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}; see {self.home / 'logs' / (name + '.log')}")
            req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
            try:
                with urllib.request.urlopen(req, timeout=5, context=ssl_ctx) as resp:
                    body = resp.read()
                    if ok(body):
                        return
                    last = body[:200].decode(errors="replace")
            except (urllib.error.URLError, OSError, ssl.SSLError) as e:
                last = str(e)
            time.sleep(0.1)
        raise RuntimeError(f"{name} not ready after {timeout}s: {last}")

    def _admin(self) -> KubeClient:
        return KubeClient(self.ctx.urls["kube_direct"], self.ctx.secret("kube_admin_token"),
                          ca_file=str(self.ctx.tls.ca_cert))

    def _apply_rbac(self) -> None:
        kube = self._admin()
        for name, rules in CLUSTER_ROLES.items():
            _put(kube, CLUSTER_ROLE, {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                                      "metadata": {"name": name}, "rules": rules})
            _put(kube, CLUSTER_ROLE_BINDING, {
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                "metadata": {"name": name},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
                "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": SUBJECTS[name]}]})

    def _wait_default_service_account(self, admin: str, timeout: float = 60) -> None:
        """The controller manager is working once it has made the `default` ServiceAccount."""
        kube = self._admin()
        deadline = time.monotonic() + timeout
        if kube.get(SERVICE_ACCOUNTS, "default", "default"):
            return
        while (left := deadline - time.monotonic()) > 0:
            proc = dict(self.procs)["kube-controller-manager"]
            if proc.poll() is not None:
                raise RuntimeError(f"kube-controller-manager exited with {proc.returncode}; "
                                   f"see {self.home / 'logs' / 'kube-controller-manager.log'}")
            for _etype, obj in kube.watch(SERVICE_ACCOUNTS, "default", timeout_seconds=max(1, min(5, int(left))),
                                          field_selector="metadata.name=default"):
                if obj.get("metadata", {}).get("name") == "default":
                    return
        raise RuntimeError("kube-controller-manager made no `default` ServiceAccount in 60 s")


def _put(kube: KubeClient, res: Resource, obj: dict[str, Any]) -> None:
    current = kube.get(res, None, obj["metadata"]["name"])
    if current is None:
        try:
            kube.create(res, obj)
            return
        except KubeError as e:
            if e.status != 409:
                raise
            current = kube.get(res, None, obj["metadata"]["name"])
    body = dict(obj, metadata=dict(obj["metadata"], resourceVersion=current["metadata"]["resourceVersion"]))
    kube.update(res, body)


def _write(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
