#!/usr/bin/env python
"""The end of `make demo`: what a user of the model needs, from the onboarding report and the lab.

    demo_summary.py REPORT LAB_DIR LOG

Prints the OpenAI base URL, the lab user's API key (read from the lab's 3scale admin API: the lab is
local and throwaway; the playbook itself never prints a key unless maas_show_keys), three lines of
the OpenAI Python SDK and a curl, each for the operation the smoke test proved, both runnable as printed.
"""
import base64
import json
import ssl
import sys
import urllib.parse
import urllib.request

from ansible_collections.maas.threescale.plugins.plugin_utils.outcomes import example_curl, example_python


def lab_key(lab, product_id, account):
    """The user key of ``account``'s application on the product, from the lab's admin API."""
    token = lab["env"]["THREESCALE_ACCESS_TOKEN"].encode()
    ctx = ssl.create_default_context(cafile=lab["tls"]["ca_cert"])

    def get(path, **params):
        req = urllib.request.Request("%s/admin/api/%s?%s" % (lab["urls"]["porta"], path, urllib.parse.urlencode(params)),
                                     headers={"Accept": "application/json",
                                              "Authorization": "Basic " + base64.b64encode(b":" + token).decode()})
        with urllib.request.urlopen(req, context=ctx, timeout=30) as resp:
            return json.load(resp)
    account_id = get("accounts/find.json", username=account)["account"]["id"]
    apps = get("accounts/%s/applications.json" % account_id)["applications"]
    return next(a["application"]["user_key"] for a in apps if a["application"]["service_id"] == product_id)


def main(report_path, lab_dir, log_path):
    with open(report_path, encoding="utf-8") as f:
        report = json.load(f)
    with open("%s/lab.json" % lab_dir, encoding="utf-8") as f:
        lab = json.load(f)
    out = []
    for m in report["models"]:
        smoke = m.get("smoke_test") or {}
        operation = smoke.get("operation") or "completions"
        account = m["applications"][0]["account"]
        key = lab_key(lab, m["product_id"], account)
        base = m["production_endpoint"].rstrip("/")
        out += ["", "%s is served through the 3scale production gateway (product %s, accounts %s)."
                % (m["model_id"], m["product"], ", ".join(a["account"] for a in m["applications"]))]
        if smoke.get("status"):
            answer = json.dumps(smoke.get("text") or "")[:100]
            out.append("  smoke test: %s -> HTTP %s in %s ms: %s" % (operation, smoke["status"], smoke.get("latency_ms"), answer))
        out += ["", "  OpenAI base URL  %s/v1" % base,
                "  API key          %s   (%s's; shown because this is the local, throwaway lab: against a real"
                % (key, account),
                "                   cluster keys are printed only with -e maas_show_keys=true)", ""]
        python = example_python(base, m["model_id"], operation, key)
        if python:
            out.append("  Python, OpenAI SDK (pip install openai, or .venv/bin/python which has it):")
            out += ["    " + line for line in python]
            out.append("")
        out += ["  curl:", "    " + example_curl(base, m["model_id"], operation, key)]
    out += ["", "Full Ansible output: %s" % log_path]
    print("\n".join(out))


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
