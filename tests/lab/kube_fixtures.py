"""Start the lab's real Kubernetes control plane (maaslab.controlplane: etcd, kube-apiserver,
kube-controller-manager, the fault proxy) in-process on a temp dir and talk to it with real clients."""
from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path

import requests
import yaml
from maaslab.context import LabContext
from maaslab.controlplane import ControlPlane

from conftest import wait_for  # noqa: F401  (re-exported: lab tests import it from here)

VENV = Path(__file__).resolve().parents[2] / ".venv"
KUBECTL = str(VENV / "bin" / "kubectl")
UPSTREAM_CRDS = Path("/work/shared/reference/threescale-operator/crds")
K8S_VERSION = next(line.split()[1] for line in (Path(__file__).resolve().parents[2] / "lab/k8s/go.mod").read_text()
                   .splitlines() if line.strip().startswith("k8s.io/kubernetes "))
CAP = "/apis/capabilities.3scale.net/v1beta1"


class KubeLab:
    """One control plane on `directory`, with a kubeconfig, a requests session and kubectl."""

    def __init__(self, directory: Path, settings: dict | None = None):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        settings_file = self.dir / "settings.json"   # keeps tokens and the port across restarts
        saved = json.loads(settings_file.read_text()) if settings_file.exists() else {}
        self.ctx = LabContext.create(self.dir, {**saved.get("settings", {}), **(settings or {})},
                                     saved.get("ports", {}))
        self.server = ControlPlane(self.ctx)
        self.server.start()
        settings_file.write_text(json.dumps({"settings": self.ctx.settings, "ports": self.ctx.ports}))
        os.chmod(settings_file, 0o600)   # holds the lab tokens
        self.url = self.ctx.urls["kube"]
        self.token = self.ctx.secret("kube_admin_token")
        self.ca = str(self.ctx.tls.ca_cert)
        self.kubeconfig = self.dir / "kubeconfig"
        self.kubeconfig.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "lab",
            "clusters": [{"name": "lab", "cluster": {
                "server": self.url,
                "certificate-authority-data": base64.b64encode(self.ctx.tls.ca_cert.read_bytes()).decode()}}],
            "users": [{"name": "admin", "user": {"token": self.token}}],
            "contexts": [{"name": "lab", "context": {"cluster": "lab", "user": "admin", "namespace": "default"}}]}))
        os.chmod(self.kubeconfig, 0o600)
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {self.token}"

    def stop(self) -> None:
        self.http.close()
        self.server.stop()

    # clients ---------------------------------------------------------------------------------
    def env(self) -> dict:
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig), "HOME": str(self.dir), "TMPDIR": str(self.dir)}

    def kubectl_cmd(self, *args) -> list[str]:
        return [KUBECTL, "--cache-dir", str(self.dir / "kcache"), *args]

    def kubectl(self, *args, check: bool = True, input: str | None = None, timeout: float = 30):
        p = subprocess.run(self.kubectl_cmd(*args), env=self.env(), capture_output=True, text=True,
                           input=input, timeout=timeout, check=False)
        if check and p.returncode:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({p.returncode}): {p.stderr}")
        return p

    def req(self, method: str, path: str, **kw) -> requests.Response:
        # per request: REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE in the environment override session.verify
        return self.http.request(method, self.url + path, timeout=10, verify=self.ca, **kw)

    def dynamic(self):
        from kubernetes import config, dynamic
        api = config.new_client_from_config(config_file=str(self.kubeconfig))
        return dynamic.DynamicClient(api, cache_file=str(self.dir / "dyn-discovery.json"))

    def set_status(self, path: str, status: dict) -> dict:
        r = self.req("PATCH", path + "/status", json={"status": status},
                     headers={"Content-Type": "application/merge-patch+json"})
        assert r.status_code == 200, r.text
        return r.json()
