"""The backend listener (apisonator stand-in): authrep/authorize over plain HTTP, usage counters."""
from __future__ import annotations

import datetime
import hmac
import re
from collections import Counter
from urllib.parse import parse_qs, urlsplit
from xml.sax.saxutils import escape, quoteattr

from .db import PERIODS, iso, period_bounds
from .server import BackendHandler, to_int


HITS_RE = re.compile(r"^hits(\.\d+)?$")
GRANULARITY = {p: i for i, p in enumerate(PERIODS)}


class BackendListenerMixin:
    def handle_backend(self, h: "BackendHandler") -> None:
        url = urlsplit(h.path)
        h.read_body()
        kind = {"/transactions/authrep.xml": "authrep", "/transactions/authorize.xml": "authorize"}.get(url.path)
        if kind is None or h.command != "GET":
            return h.send_bytes(404, b"", None)
        with self.stats_lock:
            self.backend_stats[kind] += 1
        q = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        # apisonator Listener.threescale_extensions: optional features asked for in `3scale-options`
        ext = {k: v[-1] for k, v in parse_qs(h.headers.get("3scale-options") or "").items()}
        store = self.store
        if store is None:
            return h.send_bytes(503, b"", None, {"Connection": "close"})
        with store.lock:
            store.begin()
            try:
                status, xml, info = self.authrep(q, report=kind == "authrep")
                store.commit()
            except BaseException:
                store.rollback()
                raise
        headers = {}
        if status != 200 and info.get("reason") and ext.get("rejection_reason_header") == "1":
            headers["3scale-rejection-reason"] = info["reason"]
        if ext.get("limit_headers") == "1" and (status == 200 or info.get("reason") == "limits_exceeded"):
            headers.update({f"3scale-limit-{k}": str(v) for k, v in info.get("limit_headers", {}).items()})
        body = b"" if ext.get("no_body") in ("1", "true") else (
            '<?xml version="1.0" encoding="UTF-8"?>' + xml).encode()
        h.send_bytes(status, body, "application/vnd.3scale-v2.0+xml", headers)

    def find_backend_app(self, svc: dict, q: dict) -> tuple[dict | None, tuple[int, str, str] | None]:
        """user_key (backend_version 1) or app_id + app_key (2): apisonator's Key validator."""
        st = self.store
        if svc["backend_version"] == "1" or q.get("user_key") is not None:
            key = q.get("user_key")
            app = st.first("application", service_id=svc["id"], user_key=key) if key else None
            if app is None:
                return None, (403, "user_key_invalid", f'user key "{key or ""}" is invalid')
            return app, None
        app_id = q.get("app_id")
        app = st.first("application", service_id=svc["id"], application_id=app_id) if app_id else None
        if app is None:
            return None, (404, "application_not_found", f'application with id="{app_id or ""}" was not found')
        keys = [k["value"] for k in app.get("keys") or []]
        app_key = q.get("app_key")
        if keys and not app_key:  # lab: 403 <error> (apisonator answers 409 <status> with this reason)
            return None, (403, "application_key_invalid", "application key is missing")
        if app_key and app_key not in keys:
            return None, (403, "application_key_invalid", f'application key "{app_key}" is invalid')
        return app, None

    def authrep(self, q: dict, report: bool) -> tuple[int, str, dict]:
        """(status, xml, info): info carries `reason` (rejection reason code) and `limit_headers`."""
        st = self.store

        def error(status: int, code: str, msg: str) -> tuple[int, str, dict]:
            return status, f"<error code={quoteattr(code)}>{escape(msg)}</error>", {"reason": code}

        svc = st.get("service", q.get("service_id"))
        if svc is None or svc.get("state") == "deleted":
            return error(404, "service_id_invalid", f'service id "{q.get("service_id", "")}" is invalid')
        if not hmac.compare_digest(str(q.get("service_token", "")).encode(), svc["service_token"].encode()):
            return error(403, "service_token_invalid", "service token is invalid")
        app, err = self.find_backend_app(svc, q)
        if err:
            return error(*err)
        if app["state"] != "live":
            return error(403, "application_not_active", "application is not active")
        metrics = st.all("metric", owner="service", owner_id=svc["id"])
        for u in st.all("backend_usage", service_id=svc["id"]):
            metrics += st.all("metric", owner="backend_api", owner_id=u["backend_id"])
        by_name = {m["system_name"]: m for m in metrics}  # backend names are extended: no clash
        by_id = {m["id"]: m for m in metrics}
        product_hits = next((m for m in metrics if m["owner"] == "service" and m["system_name"] == "hits"), None)
        usage: Counter = Counter()
        for k, v in q.items():
            mm = re.fullmatch(r"usage\[(.+)\]", k)
            if not mm:
                continue
            m = by_name.get(mm.group(1))
            if m is None:
                return error(404, "metric_invalid", f'metric "{mm.group(1)}" is invalid')
            delta = to_int(v) or 0
            # a method counts for its parent metric too; a backend's hits roll up to the product's hits
            # (BackendApiLogic::MetricExtension#parent_id_for_service)
            while m is not None:
                usage[m["id"]] += delta
                parent = by_id.get(m.get("parent_id")) if m.get("parent_id") else None
                if parent is None and m["owner"] == "backend_api" and HITS_RE.match(m["system_name"]):
                    parent = product_hits
                m = parent
        plan = st.get("plan", app["plan_id"]) or {"name": ""}
        now = datetime.datetime.now(datetime.timezone.utc)
        reports, exceeded, constrained = [], False, []
        for lim in st.all("limit", plan_id=app["plan_id"]):
            m = by_id.get(lim["metric_id"])
            if m is None:
                continue
            start, end = period_bounds(lim["period"], now)
            current = st.usage(app["id"], m["id"], lim["period"], iso(start))
            over = current + usage.get(m["id"], 0) > lim["value"]
            exceeded = exceeded or (over and usage.get(m["id"], 0) > 0)
            shown = current + (usage.get(m["id"], 0) if report else 0)
            period_xml = "" if lim["period"] == "eternity" else (
                f"<period_start>{iso(start)}</period_start><period_end>{iso(end)}</period_end>")
            flag = ' exceeded="true"' if over else ""
            reports.append(f'<usage_report metric={quoteattr(m["system_name"])} period="{lim["period"]}"{flag}>'
                           f'{period_xml}'
                           f'<max_value>{lim["value"]}</max_value><current_value>{shown}</current_value></usage_report>')
            if not usage or m["id"] in usage:
                reset = -1 if lim["period"] == "eternity" else max(int((end - now).total_seconds()), 0)
                constrained.append((max(lim["value"] - shown, 0), -GRANULARITY[lim["period"]],
                                    {"remaining": max(lim["value"] - shown, 0), "reset": reset,
                                     "max-value": lim["value"]}))
        # apisonator Transactor::LimitHeaders: the most constrained report, larger period first on ties
        limit_headers = min(constrained, key=lambda c: c[:2])[2] if constrained else {"remaining": -1, "reset": -1}
        body_tail = f"<plan>{escape(plan['name'])}</plan>" + (
            f"<usage_reports>{''.join(reports)}</usage_reports>" if reports else "")
        if exceeded:
            return 409, ("<status><authorized>false</authorized><reason>usage limits are exceeded</reason>"
                         + body_tail + "</status>"), {"reason": "limits_exceeded", "limit_headers": limit_headers}
        if report and usage:
            for mid, delta in usage.items():
                for period in PERIODS:
                    st.add_usage(app["id"], mid, period, iso(period_bounds(period, now)[0]), delta)
            if not app.get("first_traffic_at") or not str(app.get("first_daily_traffic_at", "")).startswith(
                    now.strftime("%Y-%m-%d")):
                app["first_traffic_at"] = app.get("first_traffic_at") or iso(now)
                app["first_daily_traffic_at"] = iso(now)
                st.save("application", app)
        return 200, "<status><authorized>true</authorized>" + body_tail + "</status>", {"limit_headers": limit_headers}
