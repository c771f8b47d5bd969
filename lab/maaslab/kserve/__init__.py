"""KServe stand-in: the controller that turns `InferenceService` objects (serving.kserve.io/v1beta1)
into running model servers, so the collection can discover models like on OpenShift AI.

Like the real controller it only talks HTTP to the lab's Kubernetes API (`maaslab.kube.client`):
it lists and WATCHes InferenceServices in every namespace and writes their status subresource.
Per InferenceService it runs one vLLM-compatible server (`maaslab.model.ModelServer`) on its own
stable loopback port `ports["kserve/<ns>/<name>"]`, serving exactly the model id the predictor
names (`--served-model-name` in spec.predictor.model.args or containers[].args, else the name).

* Ready: status.url = status.address.url = `http://127.0.0.1:<port>`, conditions IngressReady,
  PredictorReady, Ready = True, status.observedGeneration = metadata.generation, modelStatus Loaded
  (deploymentMode RawDeployment, as OpenShift AI's default).
* Not ready (server stopped): annotation `serving.kserve.io/stop: "true"` (upstream's stop
  annotation: Stopped=True, Ready=False reason Stopped, no url), or the lab-only annotation
  `lab.maas/ready: "false"` (a model that fails to load: Ready=False reason ModelLoadFailed,
  modelStatus BlockedByFailedLoad; `lab.maas/message` sets the message).
* Faults (`kserve` in faults.json): `down: ["ns/name", ...]` closes that server's connections
  unanswered (the pod died, the status still says Ready), `delay: {"ns/name": seconds}`.
* Deleting the InferenceService stops its server; its port stays reserved (<dir>/kserve.json) so
  a re-created one, and every restart, gets the same URL.

Modules: `predictor` (served-name parsing, the per-InferenceService server), `controller`
(KServe: watch, work queue, reconcile, status).
"""
from .controller import KServe

__all__ = ["KServe"]
