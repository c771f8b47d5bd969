"""Fault injection of the lab Kubernetes API server (switches `kube` in faults.json, see
context.FAULT_SWITCHES) and its counters (`GET /lab/stats.json`, `POST /lab/stats/reset`, bearer auth).

The error bodies are the ones a real API server writes:
* 429: the watch cache while it (re)initialises (apiserver pkg/storage/cacher/cacher.go →
  `errors.NewTooManyRequests`, message from cacher/ready.go), a `Status` with reason TooManyRequests,
  `details.retryAfterSeconds` and the `Retry-After` header (responsewriters/writers.go ErrorNegotiated).
* 503: apiserver pkg/server/filters/waitgroup.go while the server shuts down: `Retry-After: 1`,
  `NewServiceUnavailable("apiserver is shutting down")`.
* 500: `NewInternalError` around an etcd error ("Internal error occurred: etcdserver: leader changed").
Watches closed early end the chunked stream cleanly, as the server does when a watch times out.
"""
from __future__ import annotations

import re
import threading
from collections import Counter

from ..context import LabContext

_ERRORS = {
    429: ("TooManyRequests", "storage is (re)initializing"),
    503: ("ServiceUnavailable", "apiserver is shutting down"),
    500: ("InternalError", "Internal error occurred: etcdserver: leader changed"),
    504: ("Timeout", "Timeout: request did not complete within requested timeout - context deadline exceeded"),
}


def error_response(status: int, retry_after: int) -> tuple[int, dict, dict]:
    reason, message = _ERRORS.get(status, ("InternalError", f"Internal error occurred: injected {status}"))
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "code": status}
    headers = {}
    if status == 429:
        body["details"] = {"retryAfterSeconds": retry_after}
        headers["Retry-After"] = str(retry_after)
    elif status == 503:
        headers["Retry-After"] = str(retry_after)
    elif reason == "InternalError":
        body["details"] = {"causes": [{"message": message.split(": ", 1)[-1]}]}
    return status, body, headers


class KubeFaults:
    """Decides, per authenticated request, whether a fault is injected, and counts what it injects."""

    def __init__(self, ctx: LabContext):
        self.ctx = ctx
        self.lock = threading.Lock()
        self.requests: Counter = Counter()
        self.counts: Counter = Counter()

    def count(self, kind: str) -> None:
        with self.lock:
            self.counts[kind] += 1

    def inject(self, method: str, path: str, operator: bool):
        """None (serve normally), "drop", (status, Status body, headers) to answer, or a float:
        the number of seconds after which a watch stream must be closed."""
        with self.lock:
            self.requests[f"{method} {path}"] += 1
        faults = self.ctx.faults
        sw = faults.get("kube") if faults else {}
        if not sw:
            return None
        if operator and sw.get("exclude_operator", True):
            return None
        if sw.get("path_regex") and not re.search(str(sw["path_regex"]), path):
            return None
        verbs = sw.get("verbs")
        if verbs and method.upper() not in [str(v).upper() for v in verbs]:
            return None
        if faults.fire("kube", float(sw.get("drop_rate") or 0)):
            self.count("drops")
            return "drop"
        if faults.fire("kube", float(sw.get("error_rate") or 0)):
            self.count("errors")
            return error_response(int(sw.get("error_status") or 503), int(sw.get("retry_after") or 1))
        if sw.get("watch_close_after") is not None:
            return float(sw["watch_close_after"])
        return None

    def lab_endpoint(self, method: str, path: str) -> tuple[int, dict]:
        if path == "/lab/stats.json" and method == "GET":
            with self.lock:
                return 200, {"requests": sum(self.requests.values()), "by_method_path": dict(self.requests),
                             "faults": dict(self.counts)}
        if path == "/lab/stats/reset" and method == "POST":
            with self.lock:
                self.requests.clear()
                self.counts.clear()
            return 200, {}
        return 404, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                     "message": "the server could not find the requested resource", "reason": "NotFound", "code": 404}
