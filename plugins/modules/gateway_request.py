#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the maas.threescale collection
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: Apache-2.0 OR GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: gateway_request
short_description: Call a model through a 3scale gateway with an application key, waiting until the gateway is ready
version_added: 1.0.0
description:
  - >-
    Sends one OpenAI-style request (the model list, a completion, a chat completion, embeddings,
    tokenization or the health check) through an APIcast gateway with an application key as
    C(Authorization: Bearer <key>), and reads the answer: the generated text, the token usage, the
    latency of the request.
  - A gateway that has not picked up a new promotion yet answers 404 (no mapping rule matched), 403
    C(Authentication failed) (the key has not reached the backend), 502 or 503, or does not answer;
    those are tried again every O(delay) seconds until O(wait_timeout) runs out (O(retry_statuses)).
  - A 401, or a 403 whose body says the credentials are missing (O(auth_missing_pattern)), means the
    key is not where the product looks for it (its authentication mode); that is never retried.
  - The smoke test of the C(maas_smoke_test) role and the health check of C(verify_models.yml) both
    call the gateway through this module.
author:
  - Models-as-a-Service automation maintainers (@maas-threescale)
options:
  endpoint:
    description:
      - Base URL of the gateway, for example the production endpoint of the product
        (C(https://tinyllama-3scale-apicast-production.apps.example.com:443)).
    type: str
    required: true
  user_key:
    description:
      - The application key the gateway authenticates the request with. Never logged or returned.
    type: str
    required: true
  operation:
    description:
      - What to call. V(models) is C(GET /v1/models) (the answer must list O(model_id)), V(health)
        C(GET /health); V(completions), V(chat/completions), V(embeddings) and V(tokenize) C(POST)
        the O(prompt) to C(/v1/completions), C(/v1/chat/completions), C(/v1/embeddings) and C(/tokenize).
    type: str
    choices: [models, health, completions, chat/completions, embeddings, tokenize]
    default: completions
  model_id:
    description:
      - The model the request names (vLLM's served model name); required by the C(POST) operations.
        With O(operation=models), the list must name it (without it, any non-empty list will do).
    type: str
  prompt:
    description: The prompt (or the text to embed or tokenize).
    type: str
    default: San Francisco is a
  max_tokens:
    description: Most tokens to generate (completions and chat completions; the temperature is 0).
    type: int
    default: 15
  wait_timeout:
    description:
      - Seconds to go on trying while the gateway answers one of O(retry_statuses). V(0) sends one request.
      - Production APIcast on OpenShift reloads its configuration every 300 seconds.
    type: int
    default: 0
  delay:
    description: Seconds between two tries.
    type: float
    default: 5
  retry_statuses:
    description:
      - The HTTP statuses that mean "not ready yet" and are tried again until O(wait_timeout);
        V(-1) stands for no answer (refused connection, reset, timeout).
    type: list
    elements: int
    default: [-1, 403, 404, 502, 503]
  auth_missing_pattern:
    description:
      - A 403 whose body matches this regular expression is the product's "credentials missing" answer
        (porta's default C(error_auth_missing) text); it ends the request at once, and the module fails.
    type: str
    default: Authentication parameters missing
  expect_success:
    description:
      - V(true) fails the task unless the last answer is 200 with a non-empty result (a listed model,
        generated text, an embedding, tokens) and, for generation, a non-zero token usage.
      - V(false) returns whatever the gateway answered, for a health report to classify.
    type: bool
    default: true
  request_timeout:
    description: Seconds one request may take (a first completion on a cold model can be slow).
    type: int
    default: 180
  validate_certs:
    description: Verify the gateway's TLS certificate.
    type: bool
    default: true
  ca_path:
    description:
      - PEM file of the CA that signed the gateway's certificate, when not a system-trusted one. Empty
        or unset uses the system trust store.
    type: path
attributes:
  check_mode:
    support: full
    description: In check mode no request is sent (the key may not exist yet); RV(skipped_reason) says so.
  diff_mode:
    support: none
    description: Changes nothing.
notes:
  - The request is never retried after a 200, 400, 422, 429 or 500 answer; a 429 means the plan's
    limits were reached, which waiting a few seconds would hide rather than fix.
"""

EXAMPLES = r"""
- name: Complete a prompt through the production gateway, waiting up to 6 minutes for the promotion
  maas.threescale.gateway_request:
    endpoint: "{{ product.production_endpoint }}"
    user_key: "{{ app.user_key }}"
    model_id: tinyllama/tinyllama-1.1b-chat-v1.0
    operation: completions
    wait_timeout: 360
  register: answer

- name: Probe a model for a health report, never failing
  maas.threescale.gateway_request:
    endpoint: "{{ product.production_endpoint }}"
    user_key: "{{ monitor.user_key }}"
    model_id: tinyllama/tinyllama-1.1b-chat-v1.0
    operation: models
    retry_statuses: [401, 403]
    wait_timeout: 3
    delay: 1
    expect_success: false
  register: probe
"""

RETURN = r"""
endpoint:
  description: The gateway's base URL, as given (O(endpoint)).
  returned: always
  type: str
operation:
  description: The operation called (O(operation)).
  returned: always
  type: str
  sample: completions
model_id:
  description: The model id sent (O(model_id)); empty for a request without one.
  returned: always
  type: str
url:
  description: The URL called (it never carries the key).
  returned: always
  type: str
  sample: https://tinyllama-3scale-apicast-production.apps.example.com:443/v1/completions
method:
  description: The HTTP method.
  returned: always
  type: str
  sample: POST
status:
  description: HTTP status of the last answer; V(-1) when the gateway did not answer.
  returned: when a request was sent
  type: int
  sample: 200
attempts:
  description: Requests sent.
  returned: when a request was sent
  type: int
  sample: 1
latency_ms:
  description: Milliseconds the last request took, from sending it to the end of the answer.
  returned: when a request was sent
  type: int
  sample: 412
waited_ms:
  description: Milliseconds from the first request to the end of the last answer, waits included.
  returned: when a request was sent
  type: int
  sample: 5420
text:
  description:
    - What the model answered, read from the answer by operation - the completion's text, the chat
      message's content, C(embedding of N dimensions), C(tokens - ...), C(model listed); empty when
      the answer has none.
  returned: when a request was sent
  type: str
  sample: " a city of contrasts"
usage:
  description: The answer's C(usage) object (OpenAI format), empty when it has none.
  returned: when a request was sent
  type: dict
  sample: {prompt_tokens: 5, completion_tokens: 15, total_tokens: 20}
total_tokens:
  description: C(usage.total_tokens), or the token count of a tokenization; V(0) when absent.
  returned: when a request was sent
  type: int
  sample: 20
model_listed:
  description: With O(operation=models), whether the list names O(model_id).
  returned: when O(operation=models) and a request was sent
  type: bool
body_excerpt:
  description: The first 300 characters of a failed answer's body, to say what the gateway meant.
  returned: when the answer is not 200
  type: str
  sample: No Mapping Rule matched
skipped_reason:
  description: Why no request was sent.
  returned: in check mode
  type: str
  sample: check mode sends no request
"""

import json
import math
import re
import socket
import ssl
import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native, to_text
from ansible.module_utils.six.moves.urllib.error import HTTPError, URLError
from ansible.module_utils.urls import Request

from ansible_collections.maas.threescale.plugins.module_utils.threescale_api import USER_AGENT

PATHS = {
    "models": ("GET", "/v1/models"),
    "health": ("GET", "/health"),
    "completions": ("POST", "/v1/completions"),
    "chat/completions": ("POST", "/v1/chat/completions"),
    "embeddings": ("POST", "/v1/embeddings"),
    "tokenize": ("POST", "/tokenize"),
}
GENERATING = ("completions", "chat/completions")


def request_body(operation, model_id, prompt, max_tokens):
    """The JSON body the operation sends (None for a GET)."""
    if operation in ("models", "health"):
        return None
    if operation == "completions":
        return {"model": model_id, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0}
    if operation == "chat/completions":
        return {"model": model_id, "messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens,
                "temperature": 0}
    if operation == "embeddings":
        return {"model": model_id, "input": prompt}
    return {"model": model_id, "prompt": prompt}


def _first(seq):
    return seq[0] if isinstance(seq, list) and seq and isinstance(seq[0], dict) else {}


def read_answer(operation, body, model_id):
    """``(text, usage, total_tokens, model_listed)`` from a decoded answer (anything, even not a dict)."""
    body = body if isinstance(body, dict) else {}
    usage = body.get("usage") if isinstance(body.get("usage"), dict) else {}
    total = usage.get("total_tokens")
    listed = None
    if operation == "completions":
        text = _first(body.get("choices")).get("text") or ""
    elif operation == "chat/completions":
        text = (_first(body.get("choices")).get("message") or {}).get("content") or ""
    elif operation == "embeddings":
        vector = _first(body.get("data")).get("embedding") or []
        text = "embedding of %d dimensions" % len(vector) if vector else ""
    elif operation == "tokenize":
        tokens = body.get("tokens") or []
        text = "tokens: %s" % " ".join(to_text(t) for t in tokens) if tokens else ""
        total = total if total is not None else body.get("count", len(tokens))
    elif operation == "models":
        ids = [m.get("id") for m in body.get("data") or [] if isinstance(m, dict)]
        listed = model_id in ids if model_id else bool(ids)
        text = ("model listed" if model_id else "%d model(s) listed" % len(ids)) if listed else ""
    else:
        text = "healthy"
    try:
        total = int(total or 0)
    except (TypeError, ValueError):
        total = 0
    return to_text(text), usage, total, listed


def auth_missing(status, body_text, pattern):
    """The gateway found no key where the product expects it: 401 (APIcast's own fallback), or 403 with
    porta's error_auth_missing text."""
    return status == 401 or (status == 403 and bool(pattern) and re.search(pattern, body_text or "") is not None)


def problem(operation, status, text, total, listed, model_id):
    """Why a 200 answer is not a success, or None."""
    if status != 200:
        return "answered %d" % status if status >= 0 else "did not answer"
    if operation == "models" and not listed:
        return "answered 200 but its model list does not name %s" % (model_id or "any model")
    if not text:
        return "answered 200 with no result in it"
    if operation in GENERATING and total <= 0:
        return "answered 200 with no token usage"
    return None


class Gateway(object):
    """One request, sent and read; ``send`` answers ``(status, body_text, error)``, never raises."""

    def __init__(self, module):
        p = module.params
        self.http = Request(use_proxy=True, timeout=p["request_timeout"], validate_certs=p["validate_certs"],
                            ca_path=p["ca_path"] or None, http_agent=USER_AGENT, follow_redirects="none")

    def send(self, method, url, headers, data):
        try:
            resp = self.http.open(method, url, data=data, headers=headers)
            return resp.getcode(), to_text(resp.read(), errors="surrogate_or_replace"), None
        except HTTPError as e:
            try:
                text = to_text(e.read(), errors="surrogate_or_replace")
            except Exception:  # a body the server cut off
                text = ""
            return e.code, text, None
        except (URLError, socket.error, ssl.SSLError, IOError) as e:
            reason = getattr(e, "reason", e)
            if isinstance(reason, ssl.SSLError) or "CERTIFICATE_VERIFY_FAILED" in to_native(reason):
                raise TLSError(to_native(reason))
            return -1, "", to_native(reason)


class TLSError(Exception):
    pass


def run(module, gateway, clock=time.monotonic, sleep=time.sleep):
    p = module.params
    operation = p["operation"]
    method, path = PATHS[operation]
    url = p["endpoint"].rstrip("/") + path
    result = dict(changed=False, url=url, method=method, endpoint=p["endpoint"], operation=operation,
                  model_id=p["model_id"] or "")
    if method == "POST" and not p["model_id"]:
        module.fail_json(msg="model_id is required for operation %s: give the model's served name, e.g. "
                             "tinyllama/tinyllama-1.1b-chat-v1.0" % operation, **result)
    if module.check_mode:
        result["skipped_reason"] = "check mode sends no request"
        module.exit_json(**result)
    body = request_body(operation, p["model_id"], p["prompt"], p["max_tokens"])
    data = json.dumps(body) if body is not None else None
    headers = {"Authorization": "Bearer " + p["user_key"], "Accept": "application/json"}
    if data is not None:
        headers["Content-Type"] = "application/json"
    retry = set(p["retry_statuses"])
    started = clock()
    deadline = started + max(0, p["wait_timeout"])
    attempts = 0
    while True:
        attempts += 1
        t0 = clock()
        try:
            status, text, error = gateway.send(method, url, headers, data)
        except TLSError as e:
            module.fail_json(msg="%s %s: TLS verification failed (%s); give the CA that signed the gateway's "
                                 "certificate as ca_path, or set validate_certs false for a test gateway"
                                 % (method, url, e), **result)
        t1 = clock()
        missing = auth_missing(status, text, p["auth_missing_pattern"])
        if missing or status not in retry or t1 + p["delay"] > deadline:
            break
        sleep(p["delay"])
    try:
        decoded = json.loads(text) if text else {}
    except ValueError:
        decoded = {}
    answer, usage, total, listed = read_answer(operation, decoded, p["model_id"])
    result.update(status=status, attempts=attempts, latency_ms=int(math.ceil((t1 - t0) * 1000)),
                  waited_ms=int(round((t1 - started) * 1000)), text=answer if status == 200 else "", usage=usage,
                  total_tokens=total)
    if operation == "models":
        result["model_listed"] = bool(listed) and status == 200
    if status != 200:
        result["body_excerpt"] = (text or error or "")[:300]
    if missing:
        module.fail_json(msg="%s %s answered %d %r: the gateway found no key where the product expects it. This "
                             "request sends 'Authorization: Bearer <key>'; check the product's authentication "
                             "(auth_mode 'authorization', or 'headers_remove_bearer' with the remove-bearer policy "
                             "installed in APIcast)" % (method, url, status, (text or "")[:200].strip()), **result)
    why = problem(operation, status, result["text"], total, listed, p["model_id"])
    if why and p["expect_success"]:
        hint = ""
        if status == 404:
            hint = "; 404 means the gateway has no production configuration for this host yet (promoted?)"
        elif status == 403:
            hint = "; 403 'Authentication failed' means the key is unknown to the backend or not authorised"
        waited = " after %d attempt(s) in %.0f s" % (attempts, t1 - started) if attempts > 1 else ""
        module.fail_json(msg="%s %s %s%s%s: %s" % (method, url, why, waited, hint, result.get("body_excerpt", "")[:300]),
                         **result)
    module.exit_json(**result)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            endpoint=dict(type="str", required=True),
            user_key=dict(type="str", required=True, no_log=True),
            operation=dict(type="str", default="completions", choices=list(PATHS)),
            model_id=dict(type="str"),
            prompt=dict(type="str", default="San Francisco is a"),
            max_tokens=dict(type="int", default=15, no_log=False),  # tokens of text, not a credential
            wait_timeout=dict(type="int", default=0),
            delay=dict(type="float", default=5),
            retry_statuses=dict(type="list", elements="int", default=[-1, 403, 404, 502, 503]),
            auth_missing_pattern=dict(type="str", default="Authentication parameters missing"),
            expect_success=dict(type="bool", default=True),
            request_timeout=dict(type="int", default=180),
            validate_certs=dict(type="bool", default=True),
            ca_path=dict(type="path"),
        ),
        supports_check_mode=True,
    )
    if not module.params["endpoint"].lower().startswith(("https://", "http://")):
        module.fail_json(msg="endpoint %r is not an http(s) URL: give the gateway's base URL, e.g. "
                             "https://model-3scale-apicast-production.apps.example.com:443" % module.params["endpoint"])
    if module.params["delay"] < 0 or module.params["wait_timeout"] < 0:
        module.fail_json(msg="delay and wait_timeout must be 0 or more seconds")
    run(module, Gateway(module))


if __name__ == "__main__":
    main()
