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
        store = self.store
        if store is None:
            return h.send_bytes(503, b"", None, {"Connection": "close"})
        with store.lock:
            store.begin()
            try:
                status, xml = self.authrep(q, report=kind == "authrep")
                store.commit()
            except BaseException:
                store.rollback()
                raise
        h.send_bytes(status, ('<?xml version="1.0" encoding="UTF-8"?>' + xml).encode(),
                     "application/vnd.3scale-v2.0+xml")

    def authrep(self, q: dict, report: bool) -> tuple[int, str]:
        st = self.store

        def error(status: int, code: str, msg: str) -> tuple[int, str]:
            return status, f"<error code={quoteattr(code)}>{escape(msg)}</error>"

        svc = st.get("service", q.get("service_id"))
        if svc is None or svc.get("state") == "deleted":
            return error(404, "service_id_invalid", f'service id "{q.get("service_id", "")}" is invalid')
        if not hmac.compare_digest(str(q.get("service_token", "")).encode(), svc["service_token"].encode()):
            return error(403, "service_token_invalid", "service token is invalid")
        key = q.get("user_key")
        app = st.first("application", service_id=svc["id"], user_key=key) if key else None
        if app is None:
            return error(403, "user_key_invalid", f'user key "{key or ""}" is invalid')
        if app["state"] != "live":
            return error(403, "application_not_active", "application is not active")
        metrics = st.all("metric", owner="service", owner_id=svc["id"])
        for u in st.all("backend_usage", service_id=svc["id"]):
            metrics += st.all("metric", owner="backend_api", owner_id=u["backend_id"])
        by_name: dict[str, dict] = {}
        for m in metrics:  # product metrics win over backend metrics of the same name
            by_name.setdefault(m["system_name"], m)
        by_id = {m["id"]: m for m in metrics}
        usage: Counter = Counter()
        for k, v in q.items():
            mm = re.fullmatch(r"usage\[(.+)\]", k)
            if not mm:
                continue
            m = by_name.get(mm.group(1))
            if m is None:
                return error(404, "metric_invalid", f'metric "{mm.group(1)}" is invalid')
            delta = to_int(v) or 0
            # a method counts for its parent metric too; backend hits roll up to product hits
            while m is not None:
                usage[m["id"]] += delta
                parent = by_id.get(m.get("parent_id")) if m.get("parent_id") else None
                if parent is None and m["owner"] == "backend_api":
                    parent = next((x for x in metrics if x["owner"] == "service" and not x.get("parent_id")
                                   and x["system_name"] == m["system_name"]), None)
                m = parent
        plan = st.get("plan", app["plan_id"]) or {"name": ""}
        now = datetime.datetime.now(datetime.timezone.utc)
        reports, exceeded = [], False
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
        body_tail = f"<plan>{escape(plan['name'])}</plan>" + (
            f"<usage_reports>{''.join(reports)}</usage_reports>" if reports else "")
        if exceeded:
            return 409, ("<status><authorized>false</authorized><reason>usage limits are exceeded</reason>"
                         + body_tail + "</status>")
        if report and usage:
            for mid, delta in usage.items():
                for period in PERIODS:
                    st.add_usage(app["id"], mid, period, iso(period_bounds(period, now)[0]), delta)
            if not app.get("first_traffic_at") or not str(app.get("first_daily_traffic_at", "")).startswith(
                    now.strftime("%Y-%m-%d")):
                app["first_traffic_at"] = app.get("first_traffic_at") or iso(now)
                app["first_daily_traffic_at"] = iso(now)
                st.save("application", app)
        return 200, "<status><authorized>true</authorized>" + body_tail + "</status>"
