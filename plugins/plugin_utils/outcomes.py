# -*- coding: utf-8 -*-
# Copyright: Contributors to the maas.threescale collection
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: Apache-2.0 OR GPL-3.0-or-later
"""What the playbooks and roles tell a person: results, reports, summaries and the explanation of a
failure, built as data here (once, unit-tested) instead of YAML text assembled in Jinja and parsed
back. Every string meant for a shell is quoted for it (shlex.quote), whatever a name contains.

Pure functions of plain data: the filters of plugins/filter/outcomes.py call them.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import re
import secrets
import shlex
import socket
import string

from ansible_collections.maas.threescale.plugins.module_utils.spreadsheet import spreadsheet_cell
from ansible_collections.maas.threescale.plugins.plugin_utils.catalog import _text, created_accounts, smoke_test_operation, split_list

TLS_PROBLEM = re.compile(r"CERTIFICATE_VERIFY_FAILED|certificate verify failed|SSL")
SMOKE_PROMPT = {"prompt": "San Francisco is a", "max_tokens": 15, "temperature": 0}


def _truncate(text, size=300):
    text = "" if text is None else str(text)
    return text if len(text) <= size else text[:size - 3] + "..."


# ---------------------------------------------------------------------------------------- connection
def k8s_access_problem(failed, namespace, host=None):
    """Why the cluster check (a k8s_info of Products) failed, and what to set: a message naming the fix."""
    failed = failed or {}
    status, msg = failed.get("status") or 0, str(failed.get("msg") or "")
    if status == 401 or re.search(r"401|Unauthorized", msg):
        why = "the API server refused the credentials (HTTP 401: wrong or expired token)."
    elif status == 403 or re.search(r"403|Forbidden", msg):
        why = "the token may not read Products in namespace %s (HTTP 403)." % namespace
    elif TLS_PROBLEM.search(msg):
        why = "the server certificate is not trusted (CA)."
    else:
        why = "the API server cannot be reached or is not a Kubernetes API server."
    return ("Cannot use the cluster %s, nothing was changed: %s (%s) Fix: set a valid token in maas_k8s_api_key (or "
            "K8S_AUTH_API_KEY; log in again with oc login when it expired), the API server URL in maas_k8s_host (or "
            "K8S_AUTH_HOST), its CA in maas_k8s_ca_cert (or K8S_AUTH_SSL_CA_CERT), or point maas_k8s_kubeconfig (or "
            "K8S_AUTH_KUBECONFIG / KUBECONFIG) at a kubeconfig with a current login."
            % (host or "of the kubeconfig", why, _truncate(msg)))


def admin_access_problem(failed, admin_url, namespace):
    """Why the admin API check (a product read) failed, and what to set."""
    failed = failed or {}
    status, msg = failed.get("status"), str(failed.get("msg") or "")
    if "is plain http" in msg:  # refused before any request (allow_insecure_http), the message says the fix
        return msg
    if status in (401, 403):
        why = "it refused the access token (HTTP %s)." % status
    elif TLS_PROBLEM.search(msg):
        why = "its certificate is not trusted (CA)."
    elif status is None:
        why = "it cannot be reached."
    else:
        why = "it answered HTTP %s." % status
    return ("Cannot use the 3scale admin API at %s, nothing was changed: %s (%s) Fix: set maas_admin_access_token (or "
            "THREESCALE_ACCESS_TOKEN; a token with Account Management API read-write scope), maas_admin_url (or "
            "THREESCALE_ADMIN_URL, the tenant admin URL https://<tenant>-admin.<wildcard domain>), and for a private "
            "CA maas_admin_ca_path (or THREESCALE_CA_BUNDLE); without them the Secrets threescale-provider-account and "
            "system-seed in namespace %s are used." % (admin_url, why, _truncate(msg), namespace))


# ---------------------------------------------------------------------------------------- maas_product
def cr_rejections(resources, timeout):
    """The models whose CR the operator rejected or that were not ready in time (cr_wait results), as
    ``{name, phase, message}`` with the operator's message and a hint where one is known."""
    out = []
    for r in resources or []:
        if r.get("state") not in ("failed", "timeout"):
            continue
        where = "%s %s/%s" % (r.get("kind"), r.get("namespace"), r.get("name"))
        if r.get("state") == "failed":
            message = "The 3scale operator rejected %s: %s" % (where, r.get("message"))
            if re.search(r"system_name.*has already been taken", str(r.get("message") or "")):
                message += (" Hint: 3scale still holds the system name of a deleted product until it is purged; "
                            "wait, or onboard with another system_name.")
        else:
            message = "%s was not %s after %s s; last conditions: %s" % (
                where, r.get("condition") or "ready", timeout, json.dumps(r.get("conditions") or []))
        out.append({"name": r.get("name"), "phase": r.get("kind"), "message": message})
    return out


def product_results(items, infos, failed, plan, promote):
    """maas_product_results: one entry per model, with what 3scale now holds and the failure, if any."""
    by_product = dict((i.get("product"), i) for i in infos or [])
    errors = {}
    for f in failed or []:
        errors.setdefault(f.get("name"), []).append(f.get("message") or "")
    out = []
    for m in items or []:
        info = by_product.get(m["system_name"]) or {}
        model = m.get("model") or {}
        out.append({
            "name": m["name"], "display_name": model.get("display_name"), "system_name": m["system_name"],
            "model_id": model.get("model_id"), "auth_mode": model.get("auth_mode"), "plan": plan,
            "exists": info.get("exists", False), "product_id": info.get("id"), "endpoint": info.get("endpoint"),
            "sandbox_endpoint": info.get("sandbox_endpoint"), "production_version": info.get("production_version"),
            "operations": model.get("operations"),
            "pending_promotion": bool(m.get("removed_methods")) and not promote,
            "failed": m["name"] in errors, "error": "; ".join(errors.get(m["name"], [])),
        })
    return out


# ---------------------------------------------------------------------------------------- maas_access
def account_specs(accounts, email_domain, passwords=None, default_password=""):
    """threescale_account entries for account names (a username, or an email when it has @)."""
    passwords = passwords or {}
    out = []
    for account in accounts or []:
        account = str(account)
        spec = {"email": account} if "@" in account else {
            "username": account, "org_name": account, "email": "%s@%s" % (account, email_domain)}
        password = passwords.get(account, default_password)
        if password:
            spec["password"] = password
        out.append(spec)
    return out


# ---------------------------------------------------------------------------------------- onboard_model
def _public_applications(applications):
    return [dict((k, v) for k, v in a.items() if k != "user_key") for a in applications or []]


def onboard_report(onboarded):
    """The models of the report file: no key in it (the applications without user_key)."""
    return [{"name": m.get("name"), "product": m.get("display_name"), "system_name": m.get("system_name"),
             "product_id": m.get("product_id"), "production_endpoint": m.get("endpoint"), "model_id": m.get("model_id"),
             "auth_mode": m.get("auth_mode"), "applications": _public_applications(m.get("applications")),
             "smoke_test": m.get("smoke_test")} for m in onboarded or []]


# The example request printed for each operation a model can be called with: path and JSON body.
EXAMPLE_PROMPT = "San Francisco is a"
EXAMPLE_BODIES = {
    "completions": ("/v1/completions", lambda m: dict({"model": m}, **SMOKE_PROMPT)),
    "chat/completions": ("/v1/chat/completions", lambda m: {"model": m, "max_tokens": 15, "messages": [
        {"role": "user", "content": "What is San Francisco famous for?"}]}),
    "embeddings": ("/v1/embeddings", lambda m: {"model": m, "input": EXAMPLE_PROMPT}),
    "tokenize": ("/tokenize", lambda m: {"model": m, "prompt": EXAMPLE_PROMPT}),
}


def example_operation(operations, smoke_test=None):
    """The operation a printed example calls: the one the smoke test proved (when it ran), else the first
    of completions, chat, embeddings, tokenize the model exposes ("" when none)."""
    tested = (smoke_test or {}).get("operation")
    if tested in EXAMPLE_BODIES and "skipped" not in (smoke_test or {}):
        return tested
    return smoke_test_operation(list(EXAMPLE_BODIES) if operations is None else operations)  # None: all (the default)


def example_curl(endpoint, model_id, operation="completions", key="<API_KEY>"):
    """A curl command line for one request of ``operation`` through the gateway, every argument quoted
    for a POSIX shell ("" for an operation with no example)."""
    if operation not in EXAMPLE_BODIES:
        return ""
    path, body = EXAMPLE_BODIES[operation]
    url = (endpoint or "<endpoint>").rstrip("/") + path
    return " ".join(["curl", "-X", "POST", shlex.quote(url), "-H", shlex.quote("Content-Type: application/json"),
                     "-H", shlex.quote("Authorization: Bearer %s" % key), "-d", shlex.quote(json.dumps(body(model_id)))])


# The same requests with the OpenAI Python SDK: the call and what to print of its answer.
EXAMPLE_SDK = {
    "completions": ("client.completions.create(model=%s, prompt=%r, max_tokens=15)", ".choices[0].text"),
    "chat/completions": ("client.chat.completions.create(model=%s, max_tokens=15, messages=[{'role': 'user', "
                         "'content': 'What is San Francisco famous for?'}])", ".choices[0].message.content"),
    "embeddings": ("client.embeddings.create(model=%s, input=%r)", ".data[0].embedding[:4]"),
}


def example_python(endpoint, model_id, operation="completions", key="<API_KEY>"):
    """Three lines of Python with the OpenAI SDK that call ``operation`` through the gateway ([] for an
    operation the SDK has no call for); every value a Python string literal, whatever it contains."""
    if operation not in EXAMPLE_SDK:
        return []
    call, answer = EXAMPLE_SDK[operation]
    call = call % ((repr(model_id), EXAMPLE_PROMPT) if "%r" in call else (repr(model_id),))
    return ["from openai import OpenAI",
            "client = OpenAI(base_url=%r, api_key=%r)" % ((endpoint or "<endpoint>").rstrip("/") + "/v1", key),
            "print(%s%s)" % (call, answer)]


def completion_curl(endpoint, model_id, key="<API_KEY>"):
    """The curl of one completion through the gateway (example_curl for completions)."""
    return example_curl(endpoint, model_id, "completions", key)


def onboard_record(published, applications, smoke_test=None, smoke_enabled=True):
    """What the run keeps of one published model after its access phase: the maas_product result with
    its applications (keys included, for the summary and the credentials file) and the smoke test's
    result when one ran."""
    record = dict(published or {})
    record["applications"] = list(applications or [])
    record["smoke_test"] = dict(smoke_test or {}) if smoke_enabled and record["applications"] else {}
    return record


def access_preview(published, accounts):
    """What a real run would do for a model check mode cannot give access to (its product does not exist yet)."""
    return ("Check mode: product %s does not exist yet; a real run would subscribe %s to it and create one application "
            "per account, then promote the configuration to production."
            % ((published or {}).get("system_name"), ", ".join(accounts or []) or "no account"))


def failed_model(name, phase, failed_result):
    """A model set aside: its name, the phase it failed in and the failed task's message."""
    return {"name": name, "phase": phase, "message": (failed_result or {}).get("msg") or "failed"}


def onboard_failures(failed, total, note=""):
    """The end of a run that set models aside: how many, and each with its message ("" when none)."""
    failed = failed or []
    if not failed:
        return ""
    return "%d of %d model(s) could not be onboarded (the others were%s): %s" % (
        len(failed), total, note, " | ".join("%s: %s" % (f.get("name"), f.get("message")) for f in failed))


def onboard_summary(onboarded, show_keys=False, pruned=None, check_mode=False):
    """The run's summary for a person: per model its product, endpoint, accounts, smoke test and a
    curl to try, for the operation the smoke test called or else the first the model exposes
    (with the first key only when show_keys); then, when maas_prune removed models, which
    (in check mode, which it would remove)."""
    out = []
    for m in onboarded or []:
        apps = m.get("applications") or []
        key = apps[0].get("user_key") if show_keys and apps else "<API_KEY>"
        entry = {
            "product": "%s (system name %s, id %s)" % (m.get("display_name"), m.get("system_name"), m.get("product_id")),
            "production_endpoint": m.get("endpoint"), "model_id": m.get("model_id"),
            "accounts": ["%s -> application %s" % (a.get("account"), a.get("application_id")) for a in apps],
        }
        smoke = m.get("smoke_test") or {}
        if smoke:
            entry["smoke_test"] = ("skipped: %s" % smoke["skipped"] if "skipped" in smoke else
                                   "OK, %s tokens in %s ms" % (smoke.get("total_tokens"), smoke.get("latency_ms")))
        if show_keys:
            entry["keys"] = ["%s: %s" % (a.get("account"), a.get("user_key")) for a in apps]
        operation = example_operation(m.get("operations"), smoke)
        entry["curl"] = (example_curl(m.get("endpoint"), m.get("model_id"), operation, key or "<API_KEY>") or
                         "no example: the product exposes none of completions, chat/completions, embeddings, tokenize")
        out.append(entry)
    if pruned:
        out.append({"pruned": "%s %d model(s) that left the catalog: %s" % (
            "Would offboard (check mode)" if check_mode else "Offboarded", len(pruned), ", ".join(pruned))})
    return out


# ---------------------------------------------------------------------------------------- verify_models
def gateway_verdict(status, latency_ms, exists=True, path="/", check_mode=False, slow_ms=2000, listed=True):
    """(status, detail) of one health probe through the gateway: OK, slow, key refused, gateway not
    serving, model down, model not served (200, but the model list lacks the model id), error N;
    not published / nothing to probe / check mode report as they are."""
    status = int(status if status is not None else -1)
    if not exists:
        detail = "not published"
    elif not path:
        detail = "no GET operation to probe"
    elif check_mode:
        detail = "skipped (check mode)"
    elif status == 200 and not listed:
        detail = "model not served"
    elif status == 200:
        detail = "slow" if int(latency_ms) > int(slow_ms) else "OK"
    elif status in (401, 403):
        detail = "key refused"
    elif status in (-1, 404):
        detail = "gateway not serving"
    elif status in (500, 502, 503, 504):
        detail = "model down"
    else:
        detail = "error %s" % status
    summary = "OK" if detail in ("no GET operation to probe", "skipped (check mode)") else detail
    return summary, detail


def smoke_test_result(response, models, operation=None, endpoint=None, model_id=None):
    """What the smoke test publishes (maas_smoke_test_result) from the gateway_request results of the
    checked operation and of the model list (skipped when the product does not map it). The gateway's
    readiness wait happens in the first call made, so its attempts are the ones reported. The call's
    endpoint, operation and model id are the ones gateway_request returns, unless given."""
    response, models = response or {}, models or {}
    out = {"endpoint": endpoint or response.get("endpoint"), "model_id": model_id or response.get("model_id"),
           "operation": operation or response.get("operation")}
    if response.get("skipped_reason"):
        out["skipped"] = "check mode"
        return out
    first = models if "attempts" in models else response
    out.update(status=int(response.get("status", -1)), text=response.get("text") or "",
               usage=response.get("usage") or {}, total_tokens=int(response.get("total_tokens") or 0),
               latency_ms=int(response.get("latency_ms") or 0),
               completion_seconds=round(int(response.get("latency_ms") or 0) / 1000.0, 3),
               attempts=int(first.get("attempts") or 1))
    return out


def verify_result(target, product, status, latency_ms=0, check_mode=False, slow_ms=2000):
    """One line of the health report: the model, its endpoint, the verdict and the timing. ``status``
    is the HTTP status, or the gateway_request result itself (its status and latency_ms; a skipped
    call has neither: no answer)."""
    product, listed = product or {}, True
    if isinstance(status, dict):
        listed = status.get("model_listed", True) is not False
        status, latency_ms = status.get("status"), status.get("latency_ms") or 0
    status = int(status if status is not None else -1)
    summary, detail = gateway_verdict(status, latency_ms, product.get("exists", False), target.get("path"),
                                      check_mode, slow_ms, listed)
    return {"model": target.get("name"), "system_name": target.get("system_name"), "endpoint": product.get("endpoint"),
            "path": target.get("path"), "status": summary, "detail": detail, "http_status": status,
            "latency_ms": int(latency_ms),
            "line": "%s: %s (HTTP %s, %s ms)%s" % (target.get("name"), detail, status, int(latency_ms),
                                                   ": the gateway's model list does not name %s" % target.get("model_id")
                                                   if detail == "model not served" else "")}


def verify_report(results, cluster):
    """The health check's outcome: ``lines`` for a person, ``file`` for the report file (no key, no
    line), ``problem`` naming every model that is neither OK nor slow ("" when none)."""
    results = list(results or [])
    bad = [r for r in results if r.get("status") not in ("OK", "slow")]
    return {"lines": [r.get("line") for r in results] or ["No product is managed by maas.threescale here."],
            "file": {"cluster": cluster, "models": [dict((k, v) for k, v in r.items() if k != "line") for r in results]},
            "problem": ("%d model(s) not answering: %s" % (len(bad), "; ".join(r.get("line") for r in bad))) if bad else ""}


# ---------------------------------------------------------------------------------------- kubernetes.core.k8s
def _calls(registered):
    """The per-definition outcomes of a kubernetes.core.k8s task: one call with a list of definitions
    (``result.results``), or a loop of calls (``results``), or one call with one definition."""
    calls = registered.get("results") if isinstance(registered, dict) and "results" in registered else [registered]
    out = []
    for call in calls or []:
        call = call or {}
        result = call.get("result") if isinstance(call.get("result"), dict) else {}
        out.extend(result["results"] if "results" in result else [call])
    return out


def k8s_apply_results(registered):
    """One outcome per definition applied, in order, whether the task applied them in one call or one each."""
    return _calls(registered)


def k8s_apply_retryable(result, pattern):
    """Whether a kubernetes.core.k8s call (continue_on_error) is worth another try: it failed with a
    transient error, or it went through with a transient error for a definition (429/5xx, no answer)."""
    result = result or {}
    rx = re.compile(pattern)
    if result.get("failed"):
        return bool(rx.search(str(result.get("msg") or "")))
    return any(rx.search(json.dumps(o.get("error"), sort_keys=True, default=str))
               for o in _calls(result) if isinstance(o, dict) and "error" in o)


def k8s_apply_refusals(definitions, results, namespace, label="maas.threescale/model"):
    """The definitions the API refused, as failures of the model their label names."""
    out = []
    for d, r in zip(definitions or [], results or []):
        if isinstance(r, dict) and "error" in r:
            err = r.get("error")
            msg = err.get("msg") if isinstance(err, dict) else None
            out.append({"name": ((d.get("metadata") or {}).get("labels") or {}).get(label), "phase": d.get("kind"),
                        "message": "The Kubernetes API refused %s %s/%s: %s" % (
                            d.get("kind"), namespace, (d.get("metadata") or {}).get("name"), msg or "error")})
    return out


# ---------------------------------------------------------------------------------------- usage_report
def usage_window(period=None, since=None, until=None, granularity=None):
    """The threescale_usage_info period options of the usage report (empty means not given): a start
    date (an AAP survey's) wins over the predefined period, and the granularity goes with it."""
    period, since, until, granularity = (str(v or "").strip() for v in (period, since, until, granularity))
    return {"period": None if since else (period or None), "since": since or None, "to": until or None,
            "granularity": (granularity or None) if since else None}


def usage_products(given, product_crs):
    """The products to report: those given (a list, or "a,b" from an AAP survey), else the system name
    of every Product CR the collection manages, sorted, once each."""
    if given is not None and given != "":
        items = given.split(",") if isinstance(given, str) else list(given)
        items = [str(i).strip() for i in items if str(i).strip()]
        if items:
            return items
    names = set()
    for cr in product_crs or []:
        names.add((cr.get("spec") or {}).get("systemName") or (cr.get("metadata") or {}).get("name"))
    return sorted(n for n in names if n)


def usage_rows(results):
    """One row per (model, account, operation) of threescale_usage_info results: no keys, calls as ints.
    An account is its id (two accounts may have the same organization name), its name beside it."""
    rows = []
    for r in results or []:
        if not r.get("exists"):
            continue
        product = r.get("product") or {}
        ops = [m.get("system_name") for m in r.get("methods") or []]
        for acc in r.get("accounts") or []:
            for op in ops:
                rows.append({"model": product.get("system_name"), "product": product.get("name"),
                             "account_id": acc.get("id"), "account": str(acc.get("name") or acc.get("id")),
                             "operation": op, "calls": int((acc.get("methods") or {}).get(op) or 0)})
    return rows


def usage_csv(rows, period=None):
    """usage.csv: a header and one line per row, quoted as RFC 4180 says (csv module), every text cell
    neutralised for spreadsheets."""
    import csv
    import io
    period = period or {}
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["model", "account_id", "account", "operation", "calls", "since", "until"])
    for r in rows or []:
        writer.writerow([spreadsheet_cell(r.get("model")), spreadsheet_cell(r.get("account_id")),
                         spreadsheet_cell(r.get("account")),
                         spreadsheet_cell(r.get("operation")), int(r.get("calls") or 0),
                         spreadsheet_cell(period.get("since") or ""), spreadsheet_cell(period.get("until") or "")])
    return out.getvalue()


# ---------------------------------------------------------------------------------------- managed products
def _sorted_crs(crs):
    return sorted((c for c in crs or [] if isinstance(c, dict)), key=lambda c: (c.get("metadata") or {}).get("name") or "")


def prune_targets(crs):
    """The models of Product CRs to offboard (playbooks/tasks/prune.yml): name, system_name, display_name
    (the CR's name when the Product has none)."""
    return [{"name": (c.get("metadata") or {}).get("name"), "system_name": (c.get("spec") or {}).get("systemName") or "",
             "display_name": (c.get("spec") or {}).get("name") or (c.get("metadata") or {}).get("name"), "accounts": []}
            for c in crs or []]


def prune_plan(crs, models, allow_empty=False):
    """What maas_prune offboards: the Product CRs this collection created whose model is no longer in the
    catalog (``models``, as prune_targets gives them, in name order), and ``problem`` when the catalog is
    empty and pruning would offboard every model without ``allow_empty`` (then nothing is removed)."""
    keep = set(m.get("name") for m in models or [])
    gone = prune_targets(c for c in _sorted_crs(crs) if (c.get("metadata") or {}).get("name") not in keep)
    problem = ""
    if not keep and gone and not allow_empty:
        problem = ("maas_prune: the catalog is empty (no maas_models and no discovered InferenceService), so every model "
                   "would be offboarded (%s); nothing was removed. Check maas_discover_namespaces and "
                   "maas_discover_label_selector, or set maas_prune_allow_empty true to really do it."
                   % ", ".join(m["name"] for m in gone))
        gone = []
    return {"models": gone, "problem": problem}


def verify_targets(crs):
    """What the health check calls for each Product CR: GET /v1/models when the product maps it (vLLM
    answers it from the loaded model; the answer must list the model id the Product's
    maas.threescale/model-id annotation names, when it has one), else GET /health, else nothing
    (reported, not probed)."""
    out = []
    for c in _sorted_crs(crs):
        spec, name = c.get("spec") or {}, (c.get("metadata") or {}).get("name")
        gets = [r.get("pattern") for r in spec.get("mappingRules") or [] if r.get("httpMethod") == "GET"]
        path = "/v1/models" if "/v1/models" in gets else ("/health" if "/health" in gets else "")
        annotations = (c.get("metadata") or {}).get("annotations") or {}
        out.append({"name": name, "system_name": spec.get("systemName") or name,
                    "plan": (list(spec.get("applicationPlans") or {}) + [""])[0], "path": path,
                    "operation": {"/v1/models": "models", "/health": "health"}.get(path, ""),
                    "model_id": annotations.get("maas.threescale/model-id", "") if path == "/v1/models" else ""})
    return out


def existing_accounts(accounts, account_result, check_mode=False):
    """The accounts the access steps can use: in check mode, those threescale_account only pretended
    to create (action created) are left out, by username or email; otherwise every account."""
    accounts = list(accounts or [])
    if not check_mode:
        return accounts
    new = created_accounts(account_result)
    return [a for a in accounts if a not in new]


def access_products(products):
    """maas_access_products normalised: ``{product, display_name, accounts}`` per product, accounts as a list
    (a comma-separated string is split). Raises ValueError naming the item and the fix."""
    if not isinstance(products, list):
        raise ValueError("maas_access_products: expected a list of {product, display_name, accounts}, got %s"
                         % type(products).__name__)
    out = []
    for i, item in enumerate(products):
        product = _text((item or {}).get("product")) if isinstance(item, dict) else ""
        if not product:
            raise ValueError("maas_access_products[%d]: every item needs a product (its system name or id); "
                             "nothing was changed" % i)
        out.append({"product": product, "display_name": _text(item.get("display_name")) or product,
                    "accounts": split_list(item.get("accounts"))})
    return out


def access_items(published, models):
    """maas_access_products for the published models: each product's system name, its model's display
    name and accounts."""
    by_name = dict((m.get("name"), m) for m in models or [])
    return [{"product": p.get("system_name"), "display_name": (by_name.get(p.get("name")) or {}).get("display_name")
             or p.get("system_name"), "accounts": list((by_name.get(p.get("name")) or {}).get("accounts") or [])}
            for p in published or []]


def access_accounts(products, accounts=None):
    """Every account the role works on, once: maas_access_accounts, then each product's, in order."""
    out = []
    for name in split_list(accounts) + [a for p in access_products(products or []) for a in p["accounts"]]:
        if name not in out:
            out.append(name)
    return out


def access_results(registered):
    """maas_access_results from the role's loop over maas_access_products: per product its name, whether it
    failed and why, and its applications' account, id and key (none when it failed)."""
    out = []
    for r in (registered or {}).get("results") or []:
        item = r.get("item") or {}
        failed = bool(r.get("failed"))
        out.append({"product": item.get("product"), "failed": failed,
                    "message": (r.get("msg") or "failed") if failed else "",
                    "applications": [] if failed else application_keys(r.get("applications"))})
    return out


def smoke_test_results(registered, models_registered=None):
    """maas_smoke_test_results from the role's loops over maas_smoke_test_targets: per target its name, whether
    it failed and why, and else what maas_smoke_test_result holds for one model."""
    listed = dict((((r.get("item") or {}).get("name")), r) for r in (models_registered or {}).get("results") or []
                  if not r.get("skipped"))
    out = []
    for r in (registered or {}).get("results") or []:
        target = r.get("item") or {}
        models = listed.get(target.get("name")) or {}
        if r.get("skipped"):  # no operation the smoke test can call
            out.append({"name": target.get("name"), "failed": True, "message": (
                "its operations (%s) have none of completions, chat/completions, embeddings or tokenize: nothing to "
                "smoke-test; turn the smoke test off (maas_smoke_test false)" % ", ".join(target.get("operations") or []))})
            continue
        failed = bool(r.get("failed") or models.get("failed"))
        entry = {"name": target.get("name"), "failed": failed}
        if failed:
            entry["message"] = (models.get("msg") if models.get("failed") else r.get("msg")) or "failed"
        else:
            entry.update(smoke_test_result(r, models))
        out.append(entry)
    return out


def smoke_test_report(results):
    """One line per model of maas_smoke_test_results, for a person."""
    lines = []
    for r in results or []:
        if r.get("failed"):
            lines.append("%s: failed: %s" % (r.get("name"), r.get("message")))
        elif "skipped" in r:
            lines.append("%s: not called (%s)" % (r.get("name"), r["skipped"]))
        else:
            lines.append('%s: %s answered %s through %s: "%s" (%s tokens, in %s ms, gateway ready after %s attempt(s))' % (
                r.get("name"), r.get("model_id"), r.get("operation"), r.get("endpoint"), (r.get("text") or "").strip(),
                r.get("total_tokens"), r.get("latency_ms"), r.get("attempts")))
    return lines


def smoke_test_targets(published, access, models):
    """What the batch smoke test calls: per published model that has a key, its production endpoint, one
    key, its model id and operations (the models whose access failed are left out)."""
    keys = dict((a.get("product"), a.get("applications") or []) for a in access or [] if not a.get("failed"))
    by_name = dict((m.get("name"), m) for m in models or [])
    out = []
    for p in published or []:
        apps = keys.get(p.get("system_name")) or []
        model = by_name.get(p.get("name")) or {}
        if apps and apps[0].get("user_key"):
            out.append({"name": p.get("name"), "endpoint": p.get("endpoint"), "user_key": apps[0]["user_key"],
                        "model_id": model.get("model_id"), "operations": model.get("operations") or []})
    return out


def onboard_batch(published, access, smoke, smoke_enabled=True):
    """The access phase's outcome for every published model: ``onboarded`` (onboard_record of each) and
    ``failed`` (failed_model, phase access, for a model whose applications or smoke test failed).
    ``access``: maas_access_results (by product system name); ``smoke``: maas_smoke_test_results (by name)."""
    by_product = dict((a.get("product"), a) for a in access or [])
    by_name = dict((s.get("name"), s) for s in smoke or [])
    onboarded, failed = [], []
    for p in published or []:
        got = by_product.get(p.get("system_name")) or {}
        test = by_name.get(p.get("name"))
        if got.get("failed"):
            failed.append(failed_model(p.get("name"), "access", {"msg": got.get("message")}))
        elif test is not None and test.get("failed"):
            failed.append(failed_model(p.get("name"), "access", {"msg": test.get("message")}))
        else:
            result = dict((k, v) for k, v in (test or {}).items() if k not in ("name", "failed"))
            onboarded.append(onboard_record(p, got.get("applications") or [], result, smoke_enabled))
    return {"onboarded": onboarded, "failed": failed}


def application_keys(applications):
    """The account, application id and key of each application (maas_access_applications)."""
    return [{"account": a.get("account"), "application_id": a.get("application_id"), "user_key": a.get("user_key")}
            for a in applications or []]


def object_refs(names, kind, namespace, api_version="v1"):
    """References (apiVersion, kind, metadata) of named objects, e.g. to delete them."""
    return [{"apiVersion": api_version, "kind": kind, "metadata": {"name": n, "namespace": namespace}} for n in names or []]


def custom_policy_problem(models, cpds, namespace, policy="remove-bearer", auth_mode="headers_remove_bearer"):
    """Why APIcast could not load the custom policy the models' auth mode needs ("" when a
    CustomPolicyDefinition of that name exists, or no model needs it)."""
    needing = [m.get("name") for m in models or [] if m.get("auth_mode") == auth_mode]
    found = [(c.get("spec") or {}).get("name") for c in cpds or []]
    if not needing or policy in found:
        return ""
    return ("auth_mode '%s' (models %s) needs the workshop's custom %s policy (CustomPolicyDefinition plus APIManager "
            "customPolicies); none found in namespace %s. Use auth_mode 'authorization' (no custom policy), or set "
            "maas_product_check_custom_policy false if the policy is installed another way."
            % (auth_mode, ", ".join(needing), policy, namespace))


def offboard_objects(pcps, secrets, name, namespace, api_version="capabilities.3scale.net/v1beta1"):
    """What offboarding a model deletes, in the order it must go: ``crs`` - its ProxyConfigPromotes
    (normally none, they delete themselves), the ActiveDoc (it references the Product), the Product (it
    references the Backend, whose finalizer cannot delete a backend a product still uses), the Backend -
    then ``secrets``, its OpenAPI Secrets (named after each document's hash)."""
    secret_re = re.compile(r"%s-openapi(-[0-9a-f]+)?" % re.escape(name))
    left = sorted((p.get("metadata") or {}).get("name") for p in pcps or []
                  if (p.get("spec") or {}).get("productCRName") == name)
    docs = sorted(n for n in ((s.get("metadata") or {}).get("name") for s in secrets or []) if n and secret_re.fullmatch(n))
    return {"crs": (object_refs(left, "ProxyConfigPromote", namespace, api_version)
                    + [r for kind in ("ActiveDoc", "Product", "Backend") for r in object_refs([name], kind, namespace, api_version)]),
            "secrets": object_refs(docs, "Secret", namespace)}


# ---------------------------------------------------------------------------------------- k8s_lease
def lease_summary(lease):
    """What the onboarding lock task says when it holds its Leases (and for whom it waited)."""
    lease = lease or {}
    held = ", ".join(h.get("name", "?") for h in lease.get("held") or [])
    waited = float(lease.get("waited") or 0)
    if waited <= 0:
        return "Holding %s" % held
    seen = []
    for one in lease.get("leases") or []:
        if float(one.get("waited") or 0) > 0 and one.get("holder_seen") not in seen:
            seen.append(one.get("holder_seen"))
    return "Holding %s after waiting %s s for %s" % (held, lease.get("waited"), ", ".join(str(h) for h in seen))


def lease_holder(stable=None, hostname=None):
    """The holder identity of this run's Leases: maas.threescale/<stable> when the operator gives one
    (maas_lock_holder, e.g. an AAP job template id: a re-run after a kill -9 then takes its own Lease
    over at once), else maas.threescale/<host>/<12 random characters>, so that two runs never share it."""
    if stable not in (None, ""):
        return "maas.threescale/%s" % stable
    alphabet = string.ascii_lowercase + string.digits
    return "maas.threescale/%s/%s" % (hostname or socket.gethostname(), "".join(secrets.choice(alphabet) for _i in range(12)))


def lease_problem(lease, namespace, timeout):
    """Why the onboarding lock could not be taken, naming the variable to change; empty when it was."""
    lease = lease or {}
    if lease.get("reason") is None and lease.get("held") is not None:
        return ""
    if lease.get("reason") == "held_by_other":
        return ("Another run holds the onboarding lock of this model (Lease %s/%s, holder %s); nothing was changed. "
                "Fix: wait for that run to end and run again, or raise maas_lock_timeout (seconds to wait, now %s). (%s)"
                % (namespace, lease.get("lease_name") or "?", lease.get("holder_seen") or "?", timeout,
                   lease.get("msg") or ""))
    msg = lease.get("msg") or ""
    return ("Cannot take the onboarding lock (Lease) on the cluster, nothing was changed: %s"
            % (msg if len(msg) <= 500 else msg[:497] + "..."))
