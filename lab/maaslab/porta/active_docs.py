"""ActiveDocs (porta admin/api/api_docs_controller)."""
from __future__ import annotations

import json

from ..context import now_iso
from .server import A, ID, created, invalid, parameterize, Reply, Req, route, truthy


# ---- ActiveDocs
def doc_fields(api, req: Req, d: dict) -> dict:
    if req.has("name") or "name" not in d:
        if not str(req.get("name") or "").strip():
            raise invalid("name", "can't be blank")
        d["name"] = str(req.get("name"))
    if req.has("description"):
        d["description"] = req.get("description")
    for f in ("published", "skip_swagger_validations"):
        if req.has(f) or f not in d:
            d[f] = truthy(req.get(f, False))
    if req.has("service_id"):
        sid = req.get("service_id")
        d["service_id"] = api.need_service(sid)["id"] if sid not in (None, "") else None
    if req.has("body") or "body" not in d:
        body = req.get("body")
        body = json.dumps(body) if isinstance(body, (dict, list)) else str(body or "")
        try:
            spec = json.loads(body)
        except ValueError:
            raise invalid("body", "JSON Spec is invalid") from None
        if not d["skip_swagger_validations"] and not (isinstance(spec, dict) and
                                                      (spec.get("swagger") or spec.get("openapi"))):
            raise invalid("body", "JSON Spec is invalid")
        d["body"] = body
    d["updated_at"] = now_iso()
    return d


@route("GET", A + "/active_docs")
def docs_list(api, req: Req):
    return {"api_docs": [api.doc_json(d) for d in api.store.all("active_doc")]}


@route("POST", A + "/active_docs")
def doc_create(api, req: Req):
    d = doc_fields(api, req, {"created_at": now_iso(), "service_id": None})
    d["system_name"] = str(req.get("system_name") or parameterize(d["name"]))
    if api.store.first("active_doc", system_name=d["system_name"]):
        raise invalid("system_name", "has already been taken")
    return created(api.doc_json(api.store.insert("active_doc", d)))


@route("GET", A + "/active_docs/" + ID)
def doc_show(api, req: Req, id):
    return api.doc_json(api.need("active_doc", id))


@route("PUT", A + "/active_docs/" + ID)
def doc_update(api, req: Req, id):
    return api.doc_json(api.store.save("active_doc", doc_fields(api, req, api.need("active_doc", id))))


@route("DELETE", A + "/active_docs/" + ID)
def doc_delete(api, req: Req, id):
    api.store.delete("active_doc", api.need("active_doc", id)["id"])
    return Reply(200, None)
