"""The real 3scale operator: upstream's capabilities controllers (Backend, Product, ActiveDoc,
ProxyConfigPromote, CustomPolicyDefinition, DeveloperAccount, DeveloperUser, Application, OpenAPI,
Tenant), built from the Go module github.com/3scale/3scale-operator by `hack/build-operator.sh`
(module `lab/operator`, a `main` of ours: upstream's main also starts the OpenShift-only
controllers), run as a child process against the lab's kube-apiserver.

* Identity: the static token `kube_operator_token` (user `maaslab:3scale-operator`, bound to the
  ClusterRole of the same name, see `maaslab.controlplane.CLUSTER_ROLES`), in a kubeconfig of its
  own (`<dir>/operator/kubeconfig`), straight to the API server (past the fault proxy).
* It watches the lab namespace (`WATCH_NAMESPACE`, required by upstream) and finds 3scale through the
  seeded Secret `threescale-provider-account`, as on a cluster. porta's certificate is signed by the
  lab CA: `SSL_CERT_FILE` makes Go's TLS trust it (crypto/x509 reads it on Linux), so certificate
  verification stays on.
* Logs: `<dir>/operator/operator.log`. The process gets PR_SET_PDEATHSIG, like the control plane.
* `stop()` / `start()` are also the lab's `operator stop|start` commands: what an operator pod
  being rescheduled looks like to the collection.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from .context import LabContext
from .controlplane import REPO, _dies_with_parent

LOG = logging.getLogger("maaslab.operator")


def bin_dir() -> Path:
    """Where `hack/build-operator.sh` put the binary and the CRDs: $MAASLAB_OPERATOR_BIN, else
    <repo>/.venv/operator-bin."""
    return Path(os.environ.get("MAASLAB_OPERATOR_BIN") or REPO / ".venv" / "operator-bin")


def crd_dir() -> Path:
    """The operator module's own CRDs (config/crd/bases), copied there at build time."""
    return bin_dir() / "crds"


class ThreescaleOperator:
    def __init__(self, ctx: LabContext):
        self.ctx = ctx
        self.home = Path(ctx.dir) / "operator"
        self.proc: subprocess.Popen | None = None
        self.serial = 0

    @property
    def log_file(self) -> Path:
        return self.home / "operator.log"

    def start(self) -> None:
        binary = bin_dir() / "threescale-operator"
        if not binary.is_file():
            raise RuntimeError(f"{binary} not found: run `make setup` (hack/build-operator.sh)")
        self.home.mkdir(parents=True, exist_ok=True)
        os.chmod(self.home, 0o700)
        kubeconfig = self.home / "kubeconfig"
        fd = os.open(kubeconfig, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({
                "apiVersion": "v1", "kind": "Config", "current-context": "operator",
                "clusters": [{"name": "lab", "cluster": {"server": self.ctx.urls["kube_direct"],
                                                         "certificate-authority": str(self.ctx.tls.ca_cert)}}],
                "users": [{"name": "operator", "user": {"token": self.ctx.secret("kube_operator_token")}}],
                "contexts": [{"name": "operator", "context": {"cluster": "lab", "user": "operator"}}]}, f)
        probe = self.ctx.port("operator-probe")
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.home),
               "KUBECONFIG": str(kubeconfig), "WATCH_NAMESPACE": self.ctx.settings["namespace"],
               "SSL_CERT_FILE": str(self.ctx.tls.ca_cert)}
        log = open(self.log_file, "ab")
        try:
            self.proc = subprocess.Popen(
                [str(binary), f"--health-probe-bind-address=127.0.0.1:{probe}", "--zap-log-level=info",
                 "--zap-encoder=console", "--zap-time-encoding=iso8601"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, close_fds=True, env=env, cwd=self.home,
                preexec_fn=_dies_with_parent(signal.SIGKILL))
        finally:
            log.close()
        try:
            self._wait_ready(f"http://127.0.0.1:{probe}/readyz")
        except RuntimeError as e:
            self.write_state(str(e))
            raise
        self.write_state()
        LOG.info("3scale operator (pid %d) watching namespace %s", self.proc.pid, self.ctx.settings["namespace"])

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()  # controller-runtime stops its workers and returns on SIGTERM
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                LOG.warning("3scale operator still running 10 s after SIGTERM; killing it")
                proc.kill()
                proc.wait(timeout=5)
        if not self.ctx.stopping.is_set():
            self.write_state()

    def write_state(self, error: str | None = None) -> None:
        """<dir>/operator/state.json, rewritten after every start and stop (`maaslab operator`)."""
        self.serial += 1
        state = {"running": self.running(), "pid": self.proc.pid if self.running() else None,
                 "serial": f"{os.getpid()}-{self.serial}", "log": str(self.log_file)}
        if error:
            state["error"] = error
        tmp = self.home / "state.json.tmp"
        tmp.write_text(json.dumps(state))
        os.replace(tmp, self.home / "state.json")

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def pids(self) -> dict[str, int]:
        return {"threescale-operator": self.proc.pid} if self.running() else {}

    def _wait_ready(self, url: str, timeout: float = 60) -> None:
        """The manager answers /readyz once it runs; fail at once when the process exits."""
        deadline = time.monotonic() + timeout
        delay = 0.02
        last = ""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the 3scale operator exited with {self.proc.returncode}; see {self.log_file}")
            try:
                with urllib.request.urlopen(url, timeout=2) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError) as e:
                last = str(e)
            time.sleep(delay)
            delay = min(delay * 2, 0.5)
        raise RuntimeError(f"the 3scale operator is not ready after {timeout}s ({last}); see {self.log_file}")
