# -*- coding: utf-8 -*-
# Copyright: Contributors to the maas.threescale collection
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: Apache-2.0 OR GPL-3.0-or-later
"""The model catalog, controller side: the one place that normalises and checks a model
(``maas_models``, the single-model ``maas_model_*`` form, a discovered InferenceService, the
``maas_product`` role's ``maas_product_models``) and builds its custom resources as data.

Used through the filters of ``plugins/filter/catalog.py``. Pure functions, no Ansible imports.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import copy
import hashlib
import json
import re

# The vLLM (OpenAI-compatible) surface that can be exposed through 3scale: one method, one mapping
# rule and one OpenAPI operation each. Method system names follow the workshop Product. A model
# selects from these by system_name; this order (the order of the mapping rules) is kept.
OPERATIONS = (
    {"method": "GET", "path": "/health", "system_name": "health", "friendly_name": "Health"},
    {"method": "POST", "path": "/tokenize", "system_name": "tokenize", "friendly_name": "Tokenize"},
    {"method": "POST", "path": "/detokenize", "system_name": "detokenize", "friendly_name": "Detokenize"},
    {"method": "GET", "path": "/v1/models", "system_name": "models", "friendly_name": "Models"},
    {"method": "GET", "path": "/version", "system_name": "version", "friendly_name": "Version"},
    {"method": "POST", "path": "/v1/chat/completions", "system_name": "chat/completions", "friendly_name": "Chat Completions"},
    {"method": "POST", "path": "/v1/completions", "system_name": "completions", "friendly_name": "Completions"},
    {"method": "POST", "path": "/v1/embeddings", "system_name": "embeddings", "friendly_name": "Embeddings"},
)
OPERATION_NAMES = tuple(op["system_name"] for op in OPERATIONS)
# What a smoke test calls, the first of these a model exposes: the workshop's completion when it can be.
SMOKE_TEST_ORDER = ("completions", "chat/completions", "embeddings", "tokenize")
AUTH_MODES = ("authorization", "headers_remove_bearer")
# The keys of a model the maas_product role takes (its argument spec of maas_product_models).
PRODUCT_KEYS = ("name", "system_name", "display_name", "description", "endpoint", "model_id", "auth_mode",
                "limits", "operations", "openapi_url")
MANAGED_BY = "maas.threescale"
MODEL_LABEL = "maas.threescale/model"
MODEL_ID_ANNOTATION = "maas.threescale/model-id"

# Kubernetes metadata.name of the CRs (DNS-1123 label); 40 leaves room for the suffixes of the
# OpenAPI Secret and the ProxyConfigPromote names.
NAME_RE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
NAME_MAX = 40
# porta app/models/service.rb: at least two characters; Kubernetes-side we keep it lower case.
SYSTEM_NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]+")
SYSTEM_NAME_MAX = 255
ENDPOINT_RE = re.compile(r"https?://[^/\s:]+(:[0-9]+)?(/\S*)?")
URL_RE = re.compile(r"https?://\S+")
SERVED_MODEL_NAME = "--served-model-name"


def _text(value):
    """A scalar as stripped text; None is empty."""
    return "" if value is None else str(value).strip()


def smoke_test_operation(operations):
    """The operation a smoke test calls for a model exposing ``operations`` ("" when none can be)."""
    chosen = split_list(operations)
    return next((op for op in SMOKE_TEST_ORDER if op in chosen), "")


def split_list(value):
    """A list, or a comma-separated string (an AAP survey field), as a list of non-empty strings."""
    if value is None:
        return []
    if isinstance(value, str):
        value = value.split(",")
    return [item for item in (_text(v) for v in value) if item]


def _given(models):
    """Whether maas_models was given: anything but None or an empty collection (a wrong type counts,
    so that it reaches the argument spec check)."""
    return models is not None and (not hasattr(models, "__len__") or len(models) > 0)


def select_input(models, single):
    """The models a playbook works on: ``models`` when given (anything non-empty, so that a wrong
    type reaches the argument spec check), else the single-model form when it has a name, else []."""
    if _given(models):
        return models
    single = single or {}
    return [dict(single)] if _text(single.get("name")) else []


# The single-model form's keys and the playbook variables that set them.
SINGLE_FORM = (("name", "maas_model_name"), ("display_name", "maas_model_display_name"),
               ("endpoint", "maas_model_endpoint"), ("model_id", "maas_model_id"), ("accounts", "maas_model_accounts"))


def input_conflict(models, single):
    """The error when both maas_models and the single-model maas_model_* form are given ("" when not):
    the single form would be ignored, so the run stops naming both and the way to choose one."""
    if not _given(models):
        return ""
    given = [var for key, var in SINGLE_FORM if split_list((single or {}).get(key))]
    if not given:
        return ""
    names = [_text(m.get("name")) for m in models if isinstance(m, dict)] if isinstance(models, list) else []
    return ("Both maas_models (%s) and the single-model form (%s) are set; the single-model form would be ignored, so "
            "nothing was changed. Fix: to work on the maas_models list, drop %s; to work on the single model with an "
            "inventory that sets maas_models, also pass -e '{\"maas_models\": []}'."
            % (", ".join(n for n in names if n) or "given", ", ".join(given), ", ".join(given)))


def normalise(model, operations=None, auth_mode=None, limits=None, openapi_url=None):
    """One model with every key filled in. The keyword arguments are the defaults of the caller
    (playbook or role) for keys the model leaves empty."""
    name = _text(model.get("name"))
    display_name = _text(model.get("display_name")) or name
    model_id = _text(model.get("model_id"))
    result = dict(model)
    result.update({
        "name": name,
        "display_name": display_name,
        "description": _text(model.get("description")) or "%s served by vLLM (%s)" % (display_name, model_id),
        "system_name": _text(model.get("system_name")) or name,
        "endpoint": _text(model.get("endpoint")),
        "model_id": model_id,
        "accounts": split_list(model.get("accounts")),
        "operations": split_list(model.get("operations") or operations or list(OPERATION_NAMES)),
        "auth_mode": _text(model.get("auth_mode")) or _text(auth_mode) or AUTH_MODES[0],
        "limits": [dict(limit) if isinstance(limit, dict) else limit for limit in (model.get("limits") or limits or [])],
        "openapi_url": _text(model.get("openapi_url")) or _text(openapi_url),
    })
    return result


def _whole_number(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def problems(model):
    """What is wrong with a normalised model, one sentence per field, each naming the field and
    the fix. Empty when the model is good."""
    found = []
    name, system_name = model["name"], model["system_name"]
    if not NAME_RE.fullmatch(name) or len(name) > NAME_MAX:
        found.append("name: Kubernetes and 3scale need a DNS-1123 label: lower-case letters, digits and '-', starting and"
                     " ending with a letter or digit, at most %d characters (got '%s', e.g. tinyllama)." % (NAME_MAX, name))
    if not ENDPOINT_RE.fullmatch(model["endpoint"]):
        found.append("endpoint: give the model server's base URL with http:// or https:// (got '%s')." % model["endpoint"])
    if not model["model_id"]:
        found.append("model_id: give the id the model server lists in /v1/models (e.g. tinyllama/tinyllama-1.1b-chat-v1.0).")
    if not SYSTEM_NAME_RE.fullmatch(system_name) or len(system_name) > SYSTEM_NAME_MAX:
        found.append("system_name: use 2 to %d lower-case letters, digits, '_' and '-', starting with a letter or digit"
                     " (got '%s'); leave it empty to use the name." % (SYSTEM_NAME_MAX, system_name))
    if model["auth_mode"] not in AUTH_MODES:
        found.append("auth_mode: choose %s (got '%s')." % (" or ".join(AUTH_MODES), model["auth_mode"]))
    if model["openapi_url"] and not URL_RE.fullmatch(model["openapi_url"]):
        found.append("openapi_url: give an http:// or https:// URL, or leave it empty (got '%s')." % model["openapi_url"])
    operations = model["operations"]
    if not operations or [op for op in operations if op not in OPERATION_NAMES]:
        found.append("operations: choose one or more of %s (got %s)." % (", ".join(OPERATION_NAMES), ", ".join(operations)))
    if [limit for limit in model["limits"] if not isinstance(limit, dict)]:
        found.append("limits: give each limit as a dict {metric, period, value} (got %s)." % model["limits"])
        return found
    values = [limit.get("value") for limit in model["limits"]]
    numbers = [_whole_number(v) for v in values]
    if any(n is None for n in numbers):
        found.append("limits: value must be a whole number (got %s)." % ", ".join(str(v) for v in values))
    elif any(n < 0 for n in numbers):
        found.append("limits: value must be 0 or more (got %s)." % ", ".join(str(v) for v in values))
    strangers = [str(limit.get("metric")) for limit in model["limits"] if limit.get("metric") not in ["hits"] + operations]
    if strangers:
        found.append("limits: a metric must be hits or one of the operations of the model (%s), got %s."
                     % (", ".join(operations), ", ".join(strangers)))
    return found


def catalog(models, operations=None, auth_mode=None, limits=None, openapi_url=None, accounts=None):
    """Normalise and check a list of models: ``{'models': [...], 'errors': [...]}``. Each error is
    a whole message naming the model, the field and the fix; nothing is raised so that the caller
    can fail with every message at once before it changes anything. ``accounts``, when not empty,
    replaces every model's accounts (a workshop's users)."""
    accounts = split_list(accounts)
    result = [normalise(dict(m, accounts=accounts) if accounts else m, operations, auth_mode, limits, openapi_url)
              for m in models or []]
    errors = []
    for model in result:
        found = problems(model)
        if found:
            errors.append("Model '%s' is invalid, nothing was changed: %s" % (model["name"], " ".join(found)))
    names = [m["name"] for m in result]
    if len(set(names)) != len(names):
        errors.append("name: every model needs its own name, nothing was changed (names given: %s)."
                      " Fix: remove or rename the repeated entries." % ", ".join(names))
    return {"models": result, "errors": errors}


def offboard_catalog(models, single=None):
    """The models to offboard (the list, else the single-model form): name, system_name, display_name
    and accounts, each name checked as onboarding checked it; ``{'models': [...], 'errors': [...]}``."""
    conflict = input_conflict(models, single)
    if conflict:
        return {"models": [], "errors": [conflict]}
    chosen = select_input(models, single)
    if not isinstance(chosen, list) or not all(isinstance(m, dict) for m in chosen):
        return {"models": [], "errors": ["maas_models: expected a list of models (dicts with a name), nothing was changed."]}
    result, errors = [], []
    for model in chosen:
        name = _text(model.get("name"))
        result.append({"name": name, "system_name": _text(model.get("system_name")),
                       "display_name": _text(model.get("display_name")) or name, "accounts": split_list(model.get("accounts"))})
        if not NAME_RE.fullmatch(name) or len(name) > NAME_MAX:
            errors.append("name %r: give the DNS-1123 name the model was onboarded with (maas_model_name or "
                          "maas_models[].name), nothing was changed." % name)
    if not result:
        errors.append("Nothing to offboard, nothing was changed: set maas_model_name (or maas_models[].name) to the "
                      "DNS-1123 name given at onboarding.")
    return {"models": result, "errors": errors}


def product_spec(model):
    """The keys of a model that the maas_product role takes."""
    return dict((key, model[key]) for key in PRODUCT_KEYS if key in model)


# --- discovered models -----------------------------------------------------------------------

def served_model_name(args):
    """The value of vLLM's --served-model-name in a container's arguments, or ''."""
    args = list(args or [])
    for index, arg in enumerate(args):
        if not isinstance(arg, str):
            continue
        if arg.startswith(SERVED_MODEL_NAME + "="):
            return arg.split("=", 1)[1]
        if arg == SERVED_MODEL_NAME and index + 1 < len(args):
            return str(args[index + 1])
    return ""


class UntrustedAnnotation(ValueError):
    """An annotation the discovery does not take from an InferenceService without an explicit option."""


def inference_service_model(isvc, accounts=None, allow_endpoint=False):
    """A KServe InferenceService as ``{'ready', 'namespace', 'reason', 'source', 'model'}``.
    The model takes its fields from the maas.threescale/* annotations, else from the object
    (name, status.url, the predictor's --served-model-name). Keys it has no value for are left
    out, so the playbook's defaults apply to them as to any other model. The Backend URL is the
    object's own status.url: an endpoint annotation is taken only with ``allow_endpoint`` (it would
    let whoever edits the InferenceService send 3scale's traffic anywhere), else UntrustedAnnotation."""
    metadata = isvc.get("metadata") or {}
    status = isvc.get("status") or {}
    annotations = metadata.get("annotations") or {}
    name = metadata.get("name", "")
    ready_conditions = [c for c in status.get("conditions") or [] if c.get("type") == "Ready"]
    ready = ([c.get("status") for c in ready_conditions] == ["True"]
             and status.get("observedGeneration", metadata.get("generation")) == metadata.get("generation")
             and bool(status.get("url")))
    predictor = (isvc.get("spec") or {}).get("predictor") or {}
    args = list((predictor.get("model") or {}).get("args") or [])
    for container in predictor.get("containers") or []:
        args.extend(container.get("args") or [])
    source = "InferenceService %s/%s" % (metadata.get("namespace", ""), name)
    if annotations.get("maas.threescale/endpoint") and not allow_endpoint:
        raise UntrustedAnnotation(
            "%s: annotation maas.threescale/endpoint is not trusted, the Backend URL is the InferenceService's own "
            "status.url. Fix: remove the annotation, or set maas_discover_allow_endpoint_annotation true if whoever "
            "may edit the InferenceServices of these namespaces may choose where 3scale sends their traffic." % source)
    model = {
        "name": name,
        "display_name": annotations.get("maas.threescale/display-name", ""),
        "endpoint": annotations.get("maas.threescale/endpoint") or status.get("url") or "",
        "model_id": annotations.get("maas.threescale/model-id") or served_model_name(args) or name,
        "accounts": annotations.get("maas.threescale/accounts") or accounts or [],
    }
    if annotations.get("maas.threescale/operations"):
        model["operations"] = annotations["maas.threescale/operations"]
    if "maas.threescale/limits" in annotations:
        try:
            model["limits"] = json.loads(annotations["maas.threescale/limits"])
        except ValueError as exc:
            raise ValueError("%s: annotation maas.threescale/limits is not JSON (%s). Fix: give a JSON list such as"
                             ' [{"metric": "hits", "period": "minute", "value": 60}].' % (source, exc))
    reasons = [c.get("message", "") for c in ready_conditions] + ["no Ready condition"]
    return {"ready": ready, "namespace": metadata.get("namespace", ""), "reason": reasons[0], "source": source,
            "model": model}


def discovered_models(listings, accounts=None, allow_endpoint=False):
    """The models of the InferenceServices a discovery listed (k8s_info results, one per namespace):
    ``{'models', 'discovered', 'skipped', 'report', 'annotated_accounts'}``. An InferenceService that is
    not Ready, or whose annotations cannot be read or are not trusted, is set aside with its name and
    the reason (``report``, one line); the others go on. ``annotated_accounts`` lists, per model whose
    accounts come from its maas.threescale/accounts annotation, those accounts and the object (they
    must exist: see discovery_accounts_check)."""
    isvcs = [i for listing in listings or [] for i in (listing or {}).get("resources") or []]
    isvcs.sort(key=lambda i: ((i.get("metadata") or {}).get("namespace") or "", (i.get("metadata") or {}).get("name") or ""))
    models, discovered, not_ready, invalid, untrusted, annotated = [], [], [], [], [], []
    for isvc in isvcs:
        metadata = isvc.get("metadata") or {}
        try:
            found = inference_service_model(isvc, accounts, allow_endpoint)
        except UntrustedAnnotation as exc:
            untrusted.append((metadata.get("name") or "", str(exc)))
            continue
        except ValueError as exc:
            invalid.append((metadata.get("name") or "", str(exc)))
            continue
        if found["ready"]:
            models.append(found["model"])
            discovered.append(found["model"]["name"])
            if (metadata.get("annotations") or {}).get("maas.threescale/accounts"):
                annotated.append({"name": found["model"]["name"], "source": found["source"],
                                  "accounts": split_list(found["model"]["accounts"])})
        else:
            not_ready.append((found["model"]["name"], "%s: %s" % (found["source"], found["reason"])))
    report = []
    if not_ready:
        report.append("Skipped, not Ready: " + "; ".join(r for _n, r in not_ready))
    if invalid:
        report.append("Skipped, unreadable annotations: " + "; ".join(r for _n, r in invalid))
    if untrusted:
        report.append("Skipped, untrusted annotations: " + "; ".join(r for _n, r in untrusted))
    return {"models": models, "discovered": discovered, "skipped": [n for n, _r in not_ready + invalid + untrusted],
            "report": " ".join(report), "annotated_accounts": annotated}


def created_accounts(account_result):
    """The usernames and emails of the accounts threescale_account created, or in check mode would
    create (action ``created``): in a check-mode lookup, the accounts that do not exist."""
    names = set()
    for entry in (account_result or {}).get("accounts") or []:
        if entry.get("action") == "created":
            names.update(v for v in (entry.get("username"), entry.get("email")) if v)
    return names


def discovery_accounts_check(discovery, account_result):
    """The discovery with the models set aside whose maas.threescale/accounts annotation names an account
    that does not exist in 3scale (an annotation never creates an account, whatever maas_create_accounts
    says). ``account_result``: threescale_account's check-mode result for those accounts, in which a
    missing account has the action ``created``."""
    discovery = dict(discovery or {})
    missing = created_accounts(account_result)
    refused = [(a["name"], "%s: %s" % (a["source"], ", ".join(x for x in a["accounts"] if x in missing)))
               for a in discovery.get("annotated_accounts") or [] if any(x in missing for x in a["accounts"])]
    if not refused:
        return discovery
    names = set(n for n, _r in refused)
    discovery["models"] = [m for m in discovery.get("models") or [] if m.get("name") not in names]
    discovery["discovered"] = [n for n in discovery.get("discovered") or [] if n not in names]
    discovery["skipped"] = list(discovery.get("skipped") or []) + [n for n, _r in refused]
    line = ("Skipped, the maas.threescale/accounts annotation names accounts that do not exist in 3scale (an "
            "annotation never creates an account): " + "; ".join(r for _n, r in refused))
    discovery["report"] = " ".join(x for x in (discovery.get("report"), line) if x)
    return discovery


# --- custom resources as data ----------------------------------------------------------------

def _metadata(name, namespace, labels):
    return {"name": name, "namespace": namespace, "labels": dict(labels)}


def _provider(spec, settings):
    if settings.get("provider_account_ref"):
        spec["providerAccountRef"] = {"name": settings["provider_account_ref"]}
    return spec


def selected_operations(model):
    """The operations of the model in the catalog's order (the order of the mapping rules)."""
    return [op for op in OPERATIONS if op["system_name"] in model["operations"]]


def _hits_metric():
    # Spelled out so the operator's defaulting does not have to rewrite the spec.
    return {"hits": {"friendlyName": "Hits", "unit": "hit", "description": "Number of API hits"}}


def backend(model, settings, labels):
    spec = {
        "name": model["display_name"],
        "systemName": model["system_name"],
        "description": model["description"],
        "privateBaseURL": model["endpoint"],
        "metrics": _hits_metric(),
    }
    return {"apiVersion": settings["api_version"], "kind": "Backend",
            "metadata": _metadata(model["name"], settings["namespace"], labels), "spec": _provider(spec, settings)}


def product(model, settings, labels):
    operations = selected_operations(model)
    if model["auth_mode"] == "headers_remove_bearer":
        userkey = {"authUserKey": "Authorization", "credentials": "headers"}
    else:
        userkey = {"credentials": "authorization"}
    timeout = int(settings["upstream_timeout"])
    policies = [{"name": "cors", "version": "builtin", "enabled": True,
                 "configuration": {"allow_credentials": True, "allow_headers": ["Authorization", "Content-type", "Accept"],
                                   "allow_methods": [], "allow_origin": settings["cors_allow_origin"]}}]
    if model["auth_mode"] == "headers_remove_bearer":
        # Must run before apicast: turns "Bearer <key>" into the bare key APIcast looks up.
        policies.append({"name": "remove-bearer", "version": "0.1", "enabled": True, "configuration": {}})
    policies.append({"name": "apicast", "version": "builtin", "enabled": True, "configuration": {}})
    policies.append({"name": "upstream_connection", "version": "builtin", "enabled": True,
                     "configuration": {"connect_timeout": timeout, "read_timeout": timeout, "send_timeout": timeout}})
    # The operator writes the whole spec back when it fills in defaults, and its PolicyConfig's
    # configurationRef is a struct (apis/capabilities/v1beta1/product_types.go): every policy comes
    # back with `configurationRef: {}` (no Secret: an empty name is ignored). Stating it here keeps
    # the next apply from removing it, which would change the Product on every second run.
    for policy in policies:
        policy["configurationRef"] = {}
    plan = {"name": settings["plan_name"], "appsRequireApproval": bool(settings["plan_requires_approval"]),
            "published": bool(settings["plan_published"])}
    if model["limits"]:
        plan["limits"] = [{"metricMethodRef": {"systemName": limit["metric"]}, "period": limit["period"],
                           "value": int(limit["value"])} for limit in model["limits"]]
    spec = {
        "name": model["display_name"],
        "systemName": model["system_name"],
        "description": model["description"],
        "metrics": _hits_metric(),
        "deployment": {"apicastHosted": {"authentication": {"userkey": userkey}}},
        "backendUsages": {model["system_name"]: {"path": "/"}},
        "mappingRules": [{"httpMethod": op["method"], "pattern": op["path"], "metricMethodRef": op["system_name"],
                          "increment": 1} for op in operations],
        "methods": dict((op["system_name"], {"friendlyName": op["friendly_name"]}) for op in operations),
        "policies": policies,
        "applicationPlans": {settings["plan_system_name"]: plan},
    }
    metadata = _metadata(model["name"], settings["namespace"], labels)
    # What the health check asks the gateway's model list for (verify_models.yml, verify_targets).
    metadata["annotations"] = {MODEL_ID_ANNOTATION: model["model_id"]}
    return {"apiVersion": settings["api_version"], "kind": "Product", "metadata": metadata,
            "spec": _provider(spec, settings)}


# Request bodies of the operations that take one, by path (components/schemas of the document).
_BODIES = {"/v1/completions": "Completion", "/v1/chat/completions": "ChatCompletion", "/v1/embeddings": "Embedding",
           "/tokenize": "Tokenize", "/detokenize": "Detokenize"}


def openapi(model):
    """The OpenAPI 3.0.3 document of a model (the developer portal's Swagger UI renders 3.0 best)."""
    model_id = model["model_id"]

    def schema(required, **properties):
        props = {"model": {"type": "string", "example": model_id}}
        props.update(properties)
        return {"type": "object", "required": required, "properties": props}

    schemas = {
        "Completion": schema(["model", "prompt"], prompt={"type": "string", "example": "San Francisco is a"},
                             max_tokens={"type": "integer", "example": 15}, temperature={"type": "number", "example": 0},
                             stream={"type": "boolean", "default": False}),
        "ChatCompletion": schema(
            ["model", "messages"],
            messages={"type": "array",
                      "items": {"type": "object", "required": ["role", "content"],
                                "properties": {"role": {"type": "string", "enum": ["system", "user", "assistant"]},
                                               "content": {"type": "string"}}},
                      "example": [{"role": "user", "content": "What is San Francisco known for?"}]},
            max_tokens={"type": "integer", "example": 64}, temperature={"type": "number", "example": 0},
            stream={"type": "boolean", "default": False}),
        "Embedding": schema(["model", "input"], input={"type": "string", "example": "San Francisco is a city"}),
        "Tokenize": schema(["model", "prompt"], prompt={"type": "string", "example": "San Francisco is a"}),
        "Detokenize": schema(["model", "tokens"], tokens={"type": "array", "items": {"type": "integer"}, "example": [1, 3087]}),
        "Object": {"type": "object", "additionalProperties": True},
    }
    paths = {}
    for op in selected_operations(model):
        operation = {"operationId": re.sub("[^a-z]", "_", op["system_name"]),
                     "summary": "%s (%s)" % (op["friendly_name"], model_id)}
        if op["path"] in _BODIES:
            operation["requestBody"] = {"required": True, "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/" + _BODIES[op["path"]]}}}}
        operation["responses"] = {
            "200": {"description": "Success",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Object"}}}},
            "403": {"description": "Authentication parameters missing, or authentication failed"},
            "404": {"description": "No mapping rule matched"},
            "429": {"description": "Usage limit exceeded"},
        }
        paths[op["path"]] = {op["method"].lower(): operation}
    return {
        "openapi": "3.0.3",
        "info": {"title": model["display_name"] + " API", "version": "1.0.0",
                 "description": 'OpenAI-compatible API of the model %s (vLLM), published through 3scale. Send your'
                                ' application key as "Authorization: Bearer <key>" and use "%s" as the model in'
                                ' request bodies.' % (model_id, model_id)},
        "security": [{"bearerAuth": []}],
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer",
                                               "description": "3scale application key (user_key) sent as a bearer token."}},
            "schemas": schemas,
        },
        "paths": paths,
    }


def _digest(data, algorithm):
    return hashlib.new(algorithm, json.dumps(data, sort_keys=True).encode("utf-8")).hexdigest()


def activedoc(model, settings, labels, secret_name):
    if model["openapi_url"]:
        ref = {"url": model["openapi_url"]}
    else:
        ref = {"secretRef": {"name": secret_name, "namespace": settings["namespace"]}}
    spec = {
        "name": model["display_name"] + " API",
        # Product/Backend systemName allows [a-z0-9_-]; ActiveDoc systemName only ^[a-z0-9]+$.
        "systemName": re.sub("[^a-z0-9]", "", model["system_name"]),
        "description": model["description"],
        "productSystemName": model["system_name"],
        "published": bool(settings["activedoc_published"]),
        "skipSwaggerValidations": True,
        "activeDocOpenAPIRef": ref,
    }
    return {"apiVersion": settings["api_version"], "kind": "ActiveDoc",
            "metadata": _metadata(model["name"], settings["namespace"], labels), "spec": _provider(spec, settings)}


def removed_methods(product_cr, current):
    """Methods the live Product CR (``current``, or None) lists that the new one drops, by name."""
    have = ((current or {}).get("spec") or {}).get("methods") or {}
    return sorted(set(have) - set(product_cr["spec"].get("methods") or {}))


def product_resources(model, settings, exists=False, current=None):
    """Everything the maas_product role applies for one normalised model, as data:
    Backend, Product, ActiveDoc, the OpenAPI Secret ({} with an openapi_url), the hash of the
    Backend and Product specs (what a promotion records) and the references cr_wait watches.

    Removing an operation takes two Product specs, ``product_first`` then ``product``: porta will
    not delete a method that the latest staging or production configuration still uses (porta
    app/models/metric.rb, ``belongs_to_latest_config?``), and the operator deletes methods before
    mapping rules and stops at the first failed task (3scale 2.14, controllers/capabilities/
    product_threescale_reconciler.go), after which its ProxyConfigPromote refuses the unsynced
    Product. So ``product_first`` drops the operation's mapping rule but keeps its method (as the
    live CR ``current`` has it); once that is promoted, ``product`` drops the method.
    ``removed_methods`` names them; without any, ``product_first`` is ``product``.

    ``settings``: api_version, namespace, plan_system_name, plan_name, plan_published,
    plan_requires_approval, upstream_timeout, cors_allow_origin, activedoc_published,
    provider_account_ref."""
    labels = {"app.kubernetes.io/managed-by": MANAGED_BY, MODEL_LABEL: model["name"]}
    secret = {}
    secret_name = ""
    if not model["openapi_url"]:
        # Keys in the order built (Swagger UI shows the paths in document order).
        # Raw UTF-8, not \u escapes: the operator reads the document with kin-openapi's
        # LoadFromData (YAML, gopkg.in/yaml.v2), which refuses the surrogate-pair escapes of a
        # character outside the BMP, e.g. an emoji in the display name ("found invalid Unicode
        # character escape code"; controllers/capabilities/activedoc_threescale_reconciler.go).
        document = json.dumps(openapi(model), ensure_ascii=False)
        # Named after the document's hash: a changed document changes the ActiveDoc (whose controller
        # does not watch Secrets), so the operator reads it again.
        secret_name = "%s-openapi-%s" % (model["name"], hashlib.sha256(document.encode("utf-8")).hexdigest()[:10])
        secret_labels = dict(labels)
        secret_labels["maas.threescale/component"] = "openapi"
        secret = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                  "metadata": _metadata(secret_name, settings["namespace"], secret_labels),
                  "data": {"openapi.json": base64.b64encode(document.encode("utf-8")).decode("ascii")}}
    backend_cr = backend(model, settings, labels)
    product_cr = product(model, settings, labels)
    removed = removed_methods(product_cr, current)
    product_first = product_cr
    if removed:
        product_first = copy.deepcopy(product_cr)
        for name in removed:
            product_first["spec"]["methods"][name] = copy.deepcopy(current["spec"]["methods"][name])
    refs = dict((kind, {"kind": kind, "name": model["name"], "namespace": settings["namespace"]})
                for kind in ("Backend", "Product", "ActiveDoc"))
    return {
        "name": model["name"],
        "system_name": model["system_name"],
        "model": copy.deepcopy(model),
        "exists": bool(exists),
        "backend": backend_cr,
        "product": product_cr,
        "product_first": product_first,
        "removed_methods": removed,
        "activedoc": activedoc(model, settings, labels, secret_name),
        "secret": secret,
        "config_hash": _digest([backend_cr, product_cr], "sha1"),
        "waits": refs,
    }


def stale_openapi_secrets(secrets, items, namespace):
    """References of the OpenAPI Secrets of these models (``<name>-openapi`` of v1.0, ``<name>-openapi-<hash>``)
    that no ActiveDoc references any more: every one but the Secret each item's ActiveDoc now uses."""
    names = [i.get("name") for i in items or []]
    if not names:
        return []
    pattern = re.compile("(%s)-openapi(-[0-9a-f]+)?" % "|".join(re.escape(n) for n in names))
    current = set(((i.get("secret") or {}).get("metadata") or {}).get("name") for i in items or [])
    stale = sorted(n for n in ((s.get("metadata") or {}).get("name") for s in secrets or [])
                   if n and pattern.fullmatch(n) and n not in current)
    return [{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": n, "namespace": namespace}} for n in stale]


def promote_requests(items, attempt, settings):
    """One ProxyConfigPromote per model item (name, system_name, config_hash) for a promotion
    attempt: ``{'model', 'system_name', 'name', 'definition', 'wait'}``. The name carries the
    specs' hash and the attempt number, so a re-run after an interruption finds the same object."""
    requests = []
    for item in items:
        name = "%s-%s-%s" % (item["name"], item["config_hash"][:8], attempt)
        definition = {
            "apiVersion": settings["api_version"], "kind": "ProxyConfigPromote",
            "metadata": _metadata(name, settings["namespace"], {"app.kubernetes.io/managed-by": MANAGED_BY,
                                                                MODEL_LABEL: item["name"]}),
            "spec": {"productCRName": item["name"], "production": True, "deleteCR": True},
        }
        requests.append({"model": item["name"], "system_name": item["system_name"], "name": name,
                         "definition": definition,
                         "wait": {"kind": "ProxyConfigPromote", "name": name, "namespace": settings["namespace"],
                                  "absent_ok": True}})
    return requests
