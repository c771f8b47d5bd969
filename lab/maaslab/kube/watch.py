"""Watch streams: chunked JSON events from the history, resumption by resourceVersion (410 when too
old), bookmarks, sendInitialEvents, label/field selectors applied to both old and new objects."""
from __future__ import annotations

import logging
import ssl
import time

from ..httpbase import JSONHandler
from .core import BOOKMARK_EVERY, DEFAULT_WATCH_TIMEOUT, ApiError, WatchRequest
from .selectors import fields_match, labels_match, parse_field_selector, parse_label_selector

LOG = logging.getLogger("maaslab.kube")


class Watcher:
    """Mixin of KubeAPIServer: serves one watch stream on an HTTP handler."""

    def serve_watch(self, h: JSONHandler, w: WatchRequest) -> None:
        """`h` is the server's handler (it adds write_chunk and client_gone to JSONHandler)."""
        rt, version, ns, q = w.rt, w.version, w.ns, w.q
        labels = parse_label_selector(q.get("labelSelector"))
        fields = parse_field_selector(q.get("fieldSelector"), rt)
        try:
            timeout = float(q.get("timeoutSeconds") or DEFAULT_WATCH_TIMEOUT)
        except ValueError:
            raise ApiError(400, "BadRequest", "invalid timeoutSeconds") from None
        bookmarks = q.get("allowWatchBookmarks", "").lower() == "true"
        table = "as=Table" in (h.headers.get("Accept") or "")   # kubectl get -w
        initial_events = q.get("sendInitialEvents", "").lower() == "true"
        rv_param = q.get("resourceVersion") or ""

        def match(o):
            return o is not None and (not ns or o["metadata"].get("namespace") == ns) and \
                labels_match(labels, o["metadata"].get("labels") or {}) and fields_match(fields, o)

        expired = None
        with self.lock:
            if initial_events or rv_param in ("", "0"):
                initial = [self._out(rt, version, o) for o in self._select(rt, ns, q)]
                last = self.rv
            else:
                try:
                    last = int(rv_param)
                except ValueError:
                    raise ApiError(400, "BadRequest", f"invalid resource version: {rv_param}") from None
                initial = []
                if last < self.floor:
                    expired = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "reason": "Expired",
                               "code": 410, "message": f"too old resource version: {last} ({self.floor})"}
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Transfer-Encoding", "chunked")
        h.send_header("Cache-Control", "no-cache, private")
        h.end_headers()

        def bookmark(extra_annotations=None):
            md = {"resourceVersion": str(last)}
            if extra_annotations:
                md["annotations"] = extra_annotations
            return {"type": "BOOKMARK", "object": {"kind": rt.kind, "apiVersion": rt.gv(version), "metadata": md}}

        early = w.close_after is not None and w.close_after < timeout
        deadline = time.monotonic() + (w.close_after if early else timeout)
        next_bookmark = time.monotonic() + BOOKMARK_EVERY
        with self.lock:
            self._watching[id(h)] = f"{rt.qualified} ns={ns or ''} {q.get('fieldSelector') or ''}".strip()
        try:
            if expired:
                h.write_chunk({"type": "ERROR", "object": expired})
                return
            for o in initial:
                h.write_chunk({"type": "ADDED", "object": self._table(rt, version, [o], {}) if table else o})
            if initial_events and bookmarks:
                h.write_chunk(bookmark({"k8s.io/initial-events-end": "true"}))
            while not self._stop.is_set():
                now = time.monotonic()
                if now >= deadline:
                    if early:
                        self.faults.count("watch_closes")
                    break
                with self.cond:
                    pending = [e for e in self.history if e[0] > last]
                    if not pending:
                        self.cond.wait(min(1.0, deadline - now))
                        pending = [e for e in self.history if e[0] > last]
                    if pending and pending[0][0] > last + 1 and last < self.floor:
                        h.write_chunk({"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1", "metadata": {},
                                       "status": "Failure", "reason": "Expired", "code": 410, "message": "watch fell behind"}})
                        return
                out = []
                for erv, etype, key, obj, old in pending:
                    last = erv
                    if key != rt.key:
                        continue
                    now_m, was_m = match(obj), match(old)
                    if etype == "MODIFIED" and now_m != was_m:
                        etype = "ADDED" if now_m else "DELETED"
                        if not now_m:
                            obj = {**old, "metadata": {**old["metadata"], "resourceVersion": obj["metadata"]["resourceVersion"]}}
                    elif not now_m:
                        continue
                    o = self._out(rt, version, obj)
                    out.append({"type": etype, "object": self._table(rt, version, [o], {}) if table else o})
                for ev in out:
                    h.write_chunk(ev)
                if bookmarks and time.monotonic() >= next_bookmark:
                    h.write_chunk(bookmark())
                    next_bookmark = time.monotonic() + BOOKMARK_EVERY
                if h.client_gone():
                    return
        except (OSError, ssl.SSLError, ValueError):
            h.close_connection = True
            return
        except Exception:
            LOG.exception("kube: watch on %s failed", rt.qualified)
            h.close_connection = True
            return
        finally:
            with self.lock:
                self._watching.pop(id(h), None)
            if not h.close_connection:
                try:
                    h.wfile.write(b"0\r\n\r\n")
                    h.wfile.flush()
                except (OSError, ValueError):
                    h.close_connection = True

    def watches(self) -> list[str]:
        """Descriptions of the open watch streams, e.g. 'backends.capabilities.3scale.net ns=3scale metadata.name=x'."""
        with self.lock:
            return list(self._watching.values())
