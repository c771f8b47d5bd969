"""Backend APIs and backend usages (porta admin/api/backend_apis_controller,
services/backend_usages_controller)."""
from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from ..context import now_iso
from .server import A, ID, created, invalid, paginate, parameterize, Reply, Req, route, with_port


class BackendsMixin:
    def check_private_endpoint(self, url: Any) -> str:
        url = str(url or "").strip()
        if not url:
            raise invalid("private_endpoint", "can't be blank")
        if len(url) > 255:
            raise invalid("private_endpoint", "is too long (maximum is 255 characters)")
        try:
            u = urlsplit(url)
            normalized = with_port(url)  # also validates the port (ValueError)
        except ValueError:
            raise invalid("private_endpoint", "is invalid") from None
        host = u.hostname or ""
        if (u.scheme not in ("http", "https", "ws", "wss") or not host or u.username or u.password or u.query
                or u.fragment or len(host) > 255 or any(len(lbl) > 63 for lbl in host.split("."))):
            raise invalid("private_endpoint", "is invalid")
        if host == "localhost" or host.startswith("127."):
            # lab deviation: the lab's model servers (its own, the KServe stand-in's) are the only
            # loopback targets porta accepts
            if (host, urlsplit(normalized).port) not in self.ctx.model_endpoints():
                raise invalid("private_endpoint", "Sorry, this domain is protected")
        return normalized


# ---- backend APIs and usages
@route("GET", A + "/backend_apis")
def backends_list(api, req: Req):
    page, meta = paginate(api.store.all("backend_api"), req)
    out: dict = {"backend_apis": [api.backend_json(b) for b in page]}
    if meta:
        out["metadata"] = meta
    return out


@route("POST", A + "/backend_apis")
def backend_create(api, req: Req):
    name = str(req.get("name") or "").strip()
    if not name:
        raise invalid("name", "can't be blank")
    system_name = str(req.get("system_name") or parameterize(name))
    if not re.fullmatch(r"\w[\w\-/]+", system_name):
        raise invalid("system_name", "invalid. Only ASCII letters, numbers, dashes and underscores are allowed.")
    if api.store.first("backend_api", system_name=system_name):
        raise invalid("system_name", "has already been taken")
    endpoint = api.check_private_endpoint(req.get("private_endpoint"))
    now = now_iso()
    b = api.store.insert("backend_api", {"name": name, "system_name": system_name,
                                         "description": req.get("description"), "private_endpoint": endpoint,
                                         "created_at": now, "updated_at": now})
    api._create_metric({"friendly_name": "Hits", "system_name": "hits", "unit": "hit",
                        "description": "Number of API hits"}, "backend_api", b["id"])
    return created(api.backend_json(b))


@route("GET", A + "/backend_apis/" + ID)
def backend_show(api, req: Req, id):
    return api.backend_json(api.need("backend_api", id))


@route("PUT", A + "/backend_apis/" + ID)
def backend_update(api, req: Req, id):
    b = api.need("backend_api", id)
    if req.has("name"):
        if not str(req.get("name") or "").strip():
            raise invalid("name", "can't be blank")
        b["name"] = str(req.get("name"))
    if req.has("description"):
        b["description"] = req.get("description")
    if req.has("private_endpoint"):
        b["private_endpoint"] = api.check_private_endpoint(req.get("private_endpoint"))
    b["updated_at"] = now_iso()
    return api.backend_json(api.store.save("backend_api", b))


@route("DELETE", A + "/backend_apis/" + ID)
def backend_delete(api, req: Req, id):
    b = api.need("backend_api", id)
    live = {s["id"] for s in api.services()}
    if any(u["service_id"] in live for u in api.store.all("backend_usage", backend_id=b["id"])):
        raise Reply(403, {"errors": {"base": ["cannot be deleted because it is used by at least one Product"]}})
    for m in api.store.all("metric", owner="backend_api", owner_id=b["id"]):
        if not m.get("parent_id"):
            api._delete_metric(m)
    for r in api.store.all("mapping_rule", owner="backend_api", owner_id=b["id"]):
        api.store.delete("mapping_rule", r["id"])
    for u in api.store.all("backend_usage", backend_id=b["id"]):
        api.store.delete("backend_usage", u["id"])
    api.store.delete("backend_api", b["id"])
    return Reply(200, None)


def usage_path(api, req: Req, sid: int, exclude: int | None) -> str:
    path = str(req.get("path") if req.get("path") is not None else "/")
    path = "/" + path.strip("/") if path.strip("/") else "/"
    if len(path) > 255 or not re.fullmatch(r"/[\w\-.~/%]*", path):
        raise invalid("path", "is invalid")
    if any(u["path"].lower() == path.lower() and u["id"] != exclude
           for u in api.store.all("backend_usage", service_id=sid)):
        raise invalid("path", "has already been taken")
    return path


@route("GET", A + "/services/(?P<sid>\\d+)/backend_usages")
def usages_list(api, req: Req, sid):
    s = api.need_service(sid)
    page, _ = paginate(api.store.all("backend_usage", service_id=s["id"]), req)
    return Reply(200, [api.usage_json(u) for u in page])


@route("POST", A + "/services/(?P<sid>\\d+)/backend_usages")
def usage_create(api, req: Req, sid):
    s = api.need_service(sid)
    b = api.store.get("backend_api", req.get("backend_api_id"))
    if b is None:
        raise invalid("backend_api", "can't be blank")
    if api.store.first("backend_usage", service_id=s["id"], backend_id=b["id"]):
        raise invalid("backend_api_id", "has already been taken")
    path = usage_path(api, req, s["id"], None)
    return created(api.usage_json(api.store.insert("backend_usage", {"service_id": s["id"], "backend_id": b["id"],
                                                                      "path": path})))


@route("GET", A + "/services/(?P<sid>\\d+)/backend_usages/" + ID)
def usage_show(api, req: Req, sid, id):
    s = api.need_service(sid)
    return api.usage_json(api.need("backend_usage", id, service_id=s["id"]))


@route("PUT", A + "/services/(?P<sid>\\d+)/backend_usages/" + ID)
def usage_update(api, req: Req, sid, id):
    s = api.need_service(sid)
    u = api.need("backend_usage", id, service_id=s["id"])
    if req.has("path"):
        u["path"] = usage_path(api, req, s["id"], u["id"])
    return api.usage_json(api.store.save("backend_usage", u))


@route("DELETE", A + "/services/(?P<sid>\\d+)/backend_usages/" + ID)
def usage_delete(api, req: Req, sid, id):
    s = api.need_service(sid)
    api.store.delete("backend_usage", api.need("backend_usage", id, service_id=s["id"])["id"])
    return Reply(200, None)
