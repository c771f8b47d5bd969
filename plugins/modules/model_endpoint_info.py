#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the maas.threescale collection
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: Apache-2.0 OR GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: model_endpoint_info
short_description: Ask vLLM endpoints which model ids they serve, before a model is published
version_added: 1.1.0
description:
  - Sends C(GET /v1/models) to the endpoint of each model, directly (not through 3scale), all
    endpoints at once, and compares the ids the answer lists with the model's C(model_id).
  - A model whose endpoint answers without its id is listed in RV(unserved) with the ids the
    endpoint does serve, so that a play can stop before anything is created for it.
  - An endpoint the controller cannot reach (a cluster-internal C(*.svc.cluster.local) name seen from
    outside the cluster, a refused connection, a timeout, a TLS error, an answer that is not a vLLM
    model list) is not an error; it is listed in RV(unchecked) with the reason, with a warning, and
    the smoke test through the gateway is then what checks the model.
  - Only reads; runs the same in check mode.
author:
  - Models-as-a-Service automation maintainers (@maas-threescale)
options:
  models:
    description:
      - The models to check, as dicts with the keys C(name) (used in messages), C(endpoint) (the model
        server's base URL, without C(/v1)) and C(model_id) (the id it must be served as, vLLM's
        C(--served-model-name)), all required.
      - Other keys are ignored, so a catalog's normalised models can be given as they are.
    type: list
    elements: dict
    required: true
  request_timeout:
    description: Seconds to wait for each endpoint.
    type: int
    default: 10
  validate_certs:
    description: Verify the endpoints' TLS certificates.
    type: bool
    default: true
  ca_path:
    description: A PEM file of the CA that signed the endpoints' certificates (the cluster's service CA).
    type: path
attributes:
  check_mode:
    support: full
    description: Only reads; the endpoints are asked in check mode too.
  diff_mode:
    support: none
    description: Nothing is changed, so there is no diff.
"""

EXAMPLES = r"""
- name: Ask each endpoint what it serves
  maas.threescale.model_endpoint_info:
    models:
      - name: tinyllama
        endpoint: https://tinyllama-predictor.llm-hosting.svc.cluster.local:8443
        model_id: tinyllama/tinyllama-1.1b-chat-v1.0
    ca_path: /etc/pki/service-ca.crt
  register: served

- name: Refuse a model id its endpoint does not serve
  ansible.builtin.assert:
    that: served.unserved | length == 0
    fail_msg: "{{ served.unserved | map(attribute='message') | join(' ') }}"
"""

RETURN = r"""
models:
  description: One entry per model, in the order given.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The model's name.
      type: str
    endpoint:
      description: The endpoint asked.
      type: str
    model_id:
      description: The id looked for.
      type: str
    checked:
      description: Whether the endpoint answered with a model list.
      type: bool
    served:
      description: The ids the endpoint listed (empty when not checked).
      type: list
      elements: str
    serves_model_id:
      description: Whether RV(models[].served) contains RV(models[].model_id); V(null) when not checked.
      type: bool
    message:
      description: What was found, for a person.
      type: str
  sample:
    - name: tinyllama
      endpoint: http://127.0.0.1:8000
      model_id: tinyllama/tinyllama-1.1b-chat-v1.0
      checked: true
      served: [tinyllama/tinyllama-1.1b-chat-v1.0]
      serves_model_id: true
      message: "tinyllama: http://127.0.0.1:8000 serves tinyllama/tinyllama-1.1b-chat-v1.0"
unserved:
  description: The entries of RV(models) whose endpoint answered without their model id.
  returned: always
  type: list
  elements: dict
unchecked:
  description: The entries of RV(models) whose endpoint could not be asked, with the reason in RV(models[].message).
  returned: always
  type: list
  elements: dict
"""

import json
import socket
import ssl
from concurrent.futures import ThreadPoolExecutor

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native, to_text
from ansible.module_utils.six.moves.urllib.error import HTTPError, URLError
from ansible.module_utils.urls import Request

USER_AGENT = "maas.threescale-model-endpoint-info"
MAX_LISTED = 10  # ids named in a message; the result has them all


def listed_ids(text):
    """The ids of an OpenAI-style model list ({"data": [{"id": ...}]}), or None when it is not one."""
    try:
        body = json.loads(text)
    except ValueError:
        return None
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        return None
    return [to_text(m["id"]) for m in body["data"] if isinstance(m, dict) and m.get("id") is not None]


def verdict(model, status, text, error):
    """The entry for one model from the endpoint's answer (``status`` -1 when there was none)."""
    name, endpoint, model_id = model["name"], model["endpoint"], model["model_id"]
    entry = dict(name=name, endpoint=endpoint, model_id=model_id, checked=False, served=[], serves_model_id=None)
    url = endpoint.rstrip("/") + "/v1/models"
    ids = listed_ids(text) if status == 200 else None
    if ids is None:
        if status < 0:
            why = "no answer (%s)" % error
        elif status == 200:
            why = "its answer is not a model list"
        else:
            why = "it answered HTTP %d" % status
        entry["message"] = ("%s: could not ask GET %s which models it serves: %s. Not checked before publishing; "
                            "the smoke test through the gateway checks it." % (name, url, why))
        return entry
    entry.update(checked=True, served=ids, serves_model_id=model_id in ids)
    if model_id in ids:
        entry["message"] = "%s: %s serves %s" % (name, endpoint, model_id)
    else:
        shown = ", ".join(ids[:MAX_LISTED]) + (" and %d more" % (len(ids) - MAX_LISTED) if len(ids) > MAX_LISTED else "")
        entry["message"] = ("%s: the endpoint %s does not serve model_id %s, nothing was changed; it serves: %s. Fix: "
                            "set the model's model_id to one of those (vLLM's --served-model-name), or its endpoint to "
                            "the server of %s." % (name, endpoint, model_id, shown or "no model", model_id))
    return entry


class Endpoints(object):
    """GET <endpoint>/v1/models; ``ask`` answers ``(status, body_text, error)`` and never raises."""

    def __init__(self, timeout, validate_certs, ca_path):
        self.http = Request(use_proxy=True, timeout=timeout, validate_certs=validate_certs, ca_path=ca_path or None,
                            http_agent=USER_AGENT, follow_redirects="safe")

    def ask(self, endpoint):
        url = endpoint.rstrip("/") + "/v1/models"
        try:
            resp = self.http.open("GET", url, headers={"Accept": "application/json"})
            return resp.getcode(), to_text(resp.read(), errors="surrogate_or_replace"), None
        except HTTPError as e:
            return e.code, "", None
        except (URLError, socket.error, ssl.SSLError, IOError, ValueError) as e:
            reason = to_native(getattr(e, "reason", e))
            if "CERTIFICATE_VERIFY_FAILED" in reason:
                reason += "; give the CA that signed it as ca_path"
            return -1, "", reason


def check(models, endpoints, workers=8):
    """The result of the module for ``models``, each endpoint asked once, several at a time."""
    unique = sorted(set(m["endpoint"].rstrip("/") for m in models))
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(unique)))) as pool:
        answers = dict(zip(unique, pool.map(endpoints.ask, unique)))
    entries = [verdict(m, *answers[m["endpoint"].rstrip("/")]) for m in models]
    return dict(changed=False, models=entries, unserved=[e for e in entries if e["serves_model_id"] is False],
                unchecked=[e for e in entries if not e["checked"]])


def main():
    module = AnsibleModule(
        argument_spec=dict(
            models=dict(type="list", elements="dict", required=True),
            request_timeout=dict(type="int", default=10),
            validate_certs=dict(type="bool", default=True),
            ca_path=dict(type="path"),
        ),
        supports_check_mode=True,
    )
    p = module.params
    models = []
    for i, m in enumerate(p["models"]):
        missing = [k for k in ("name", "endpoint", "model_id") if not to_text(m.get(k) or "").strip()]
        if missing:
            module.fail_json(msg="models[%d] (%s) has no %s: give each model its name, endpoint and model_id"
                                 % (i, to_text(m.get("name") or "unnamed"), ", ".join(missing)))
        models.append(dict((k, to_text(m[k]).strip()) for k in ("name", "endpoint", "model_id")))
    bad = [m["name"] for m in models if not m["endpoint"].lower().startswith(("https://", "http://"))]
    if bad:
        module.fail_json(msg="models[].endpoint of %s is not an http(s) URL: give the model server's base URL, e.g. "
                             "https://tinyllama-predictor.llm-hosting.svc.cluster.local:8443" % ", ".join(bad))
    if not models:
        module.exit_json(changed=False, models=[], unserved=[], unchecked=[])
    result = check(models, Endpoints(p["request_timeout"], p["validate_certs"], p["ca_path"]))
    for entry in result["unchecked"]:
        module.warn(entry["message"])
    module.exit_json(**result)


if __name__ == "__main__":
    main()
