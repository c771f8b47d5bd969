"""AAP as code: the controller data is well formed, and the onboard job template runs the way
automation controller runs it (ansible-runner, survey extra vars, credential injectors) without
leaking a secret into the job's events or artifacts."""
from __future__ import annotations

import base64
import json
import os
import secrets
import ssl
import urllib.request
from pathlib import Path
from urllib.parse import urlencode

import jinja2.sandbox
import pytest
import yaml

from conftest import REPO, VENV_BIN

AAP = REPO / "aap"
SURVEY_TYPES = {"text", "textarea", "password", "integer", "float", "multiplechoice", "multiselect"}
FIELD_TYPES = {"string", "boolean"}


class _Loader(yaml.SafeLoader):
    """Reads `!unsafe` (Ansible's marker for text it must not template) as a plain string."""


_Loader.add_constructor("!unsafe", lambda loader, node: loader.construct_scalar(node))


def controller_config() -> dict:
    return yaml.load((AAP / "controller_config.yml").read_text(), Loader=_Loader)  # noqa: S506 - SafeLoader subclass


def template(name: str) -> dict:
    return next(t for t in controller_config()["controller_templates"] if t["name"] == name)


# --- What automation controller does with a survey and with credentials (emulated) -------------

def survey_extra_vars(survey: dict, answers: dict) -> dict:
    """Extra vars a launch produces: answers (or defaults) typed per question; unanswered optional
    questions without a default are left out, as the controller does."""
    unknown = set(answers) - {q["variable"] for q in survey["spec"]}
    assert not unknown, f"answers for questions the survey does not have: {unknown}"
    extra = {}
    for q in survey["spec"]:
        var, kind = q["variable"], q["type"]
        value = answers.get(var, q.get("default", ""))
        if value in ("", None, []):
            assert not q.get("required"), f"required survey question {var} has no answer"
            continue
        if kind == "integer":
            value = int(value)
            assert q.get("min", value) <= value <= q.get("max", value), var
        elif kind == "float":
            value = float(value)
        elif kind == "multiselect":
            value = value.split("\n") if isinstance(value, str) else list(value)
            assert set(value) <= set(q["choices"]), var
        else:
            value = str(value)
            assert q.get("min", 0) <= len(value) <= q.get("max", len(value)), f"{var}: length out of range"
            if kind == "multiplechoice":
                assert value in q["choices"], f"{var}: {value!r} not in {q['choices']}"
        extra[var] = value
    return extra


def inject(credential_type: dict, inputs: dict, private_dir: Path) -> dict:
    """Render a credential type's injectors like the controller: file templates are written
    into the job's private data dir, env templates see them as tower.filename.<name>."""
    env = jinja2.sandbox.ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined)
    values = {f["id"]: inputs.get(f["id"], "") for f in credential_type["inputs"]["fields"]}
    filenames = {}
    for key, text in (credential_type["injectors"].get("file") or {}).items():
        path = private_dir / f"tmp_cred_{key.split('.', 1)[-1]}"
        path.write_text(env.from_string(text).render(**values))
        path.chmod(0o600)
        filenames[key.split(".", 1)[-1]] = str(path)
    context = dict(values, tower={"filename": filenames})
    return {k: env.from_string(v).render(**context) for k, v in credential_type["injectors"].get("env", {}).items()}


# The controller's built-in "OpenShift or Kubernetes API Bearer Token" credential type.
OPENSHIFT_CREDENTIAL_TYPE = {
    "inputs": {"fields": [{"id": "host"}, {"id": "bearer_token"}, {"id": "verify_ssl"}, {"id": "ssl_ca_cert"}]},
    "injectors": {"file": {"template": "{{ ssl_ca_cert }}"},
                  "env": {"K8S_AUTH_HOST": "{{ host }}", "K8S_AUTH_API_KEY": "{{ bearer_token }}",
                          "K8S_AUTH_VERIFY_SSL": "{{ verify_ssl }}", "K8S_AUTH_SSL_CA_CERT": "{{ tower.filename.template }}"}},
}


# --- Structure --------------------------------------------------------------------------------

def test_credential_type_injects_the_environment_the_modules_read(tmp_path):
    (ctype,) = controller_config()["controller_credential_types"]
    fields = {f["id"]: f for f in ctype["inputs"]["fields"]}
    assert all(f["type"] in FIELD_TYPES and f.get("label") for f in fields.values())
    assert fields["access_token"].get("secret") is True
    assert set(ctype["inputs"]["required"]) == {"admin_url", "access_token"}
    assert ctype["kind"] == "cloud"
    # Every variable the injectors name is defined: rendering with strict undefined proves it.
    env = inject(ctype, {"admin_url": "https://a.example", "access_token": "t0k", "ca_bundle": "PEM"}, tmp_path)
    assert env["THREESCALE_ADMIN_URL"] == "https://a.example" and env["THREESCALE_ACCESS_TOKEN"] == "t0k"
    assert Path(env["THREESCALE_CA_BUNDLE"]).read_text() == "PEM"
    # Without a CA the variable is empty, so the modules use the system trust store.
    assert inject(ctype, {"admin_url": "u", "access_token": "t"}, tmp_path)["THREESCALE_CA_BUNDLE"] == ""
    # The modules really read those variables (doc fragment = what the module's argspec uses).
    fragment = (REPO / "plugins" / "doc_fragments" / "threescale.py").read_text()
    for name in env:
        assert f"E({name})" in fragment, f"{name} is not documented as a module environment fallback"


@pytest.mark.parametrize("name", ["MaaS - Onboard model", "MaaS - Offboard model", "MaaS - Bootstrap workshop"])
def test_job_template_is_complete(name):
    config = controller_config()
    jt = template(name)
    assert (REPO / jt["playbook"]).is_file(), jt["playbook"]
    assert jt["project"] in {p["name"] for p in config["controller_projects"]}
    assert jt["inventory"] in {i["name"] for i in config["controller_inventories"]}
    assert jt["execution_environment"] in {e["name"] for e in config["controller_execution_environments"]}
    assert set(jt["credentials"]) <= {c["name"] for c in config["controller_credentials"]}
    # Survey answers are the only input: no free-form extra vars at launch.
    assert jt["survey_enabled"] is True and jt["ask_variables_on_launch"] is False
    spec = jt["survey_spec"]["spec"]
    variables = [q["variable"] for q in spec]
    assert len(variables) == len(set(variables)), "duplicate survey variable"
    playbook_text = "".join(p.read_text() for p in (REPO / "playbooks").rglob("*.yml"))
    for q in spec:
        assert q["type"] in SURVEY_TYPES and q["question_name"] and "required" in q
        if q["type"] in ("multiplechoice", "multiselect"):
            assert q["default"] in q["choices"]
        # Every survey variable is one the playbooks actually read.
        assert q["variable"] in playbook_text, f"{q['variable']} is not used by any playbook"
    secretish = [q["variable"] for q in spec if "password" in q["variable"] or "token" in q["variable"]]
    assert all(q["type"] == "password" for q in spec if q["variable"] in secretish)


def test_configure_playbook_feeds_every_list_to_a_module():
    plays = yaml.safe_load((AAP / "configure_controller.yml").read_text())
    loops = {t.get("loop") for t in plays[0]["tasks"]}
    for key in controller_config():
        assert "{{ %s }}" % key in loops, f"{key} is never applied"
    credential_task = next(t for t in plays[0]["tasks"] if t.get("loop") == "{{ controller_credentials }}")
    assert credential_task.get("no_log") is True


# --- A job launch against the lab -------------------------------------------------------------

def _porta_get(lab, path: str, **params):
    url = lab["urls"]["porta"] + path + "?" + urlencode(params)
    req = urllib.request.Request(url, headers={"Accept": "application/json"})
    token = lab["env"]["THREESCALE_ACCESS_TOKEN"].encode()
    req.add_header("Authorization", "Basic " + base64.b64encode(b":" + token).decode())
    ctx = ssl.create_default_context(cafile=lab["tls"]["ca_cert"])
    with urllib.request.urlopen(req, context=ctx, timeout=30) as resp:
        return json.load(resp)


def _all_user_keys(lab) -> set[str]:
    keys, page = set(), 1
    while True:
        apps = _porta_get(lab, "/admin/api/applications.json", page=page, per_page=500)["applications"]
        keys |= {a["application"]["user_key"] for a in apps if a["application"].get("user_key")}
        if len(apps) < 500:
            return keys
        page += 1


def test_onboard_job_template_under_ansible_runner_leaks_no_secret(lab, installed, tmp_path, monkeypatch):
    ansible_runner = pytest.importorskip("ansible_runner")
    config = controller_config()
    jt = template("MaaS - Onboard model")

    # The model the lab serves, as an operator would read it from /v1/models.
    with urllib.request.urlopen(lab["urls"]["model"] + "/v1/models", timeout=30) as resp:
        model_id = json.load(resp)["data"][0]["id"]
    name = "aap-" + secrets.token_hex(3)
    unused_password = "Pw-" + secrets.token_hex(8)  # survey password: must not show up either
    extra_vars = survey_extra_vars(jt["survey_spec"], {
        "maas_model_name": name, "maas_model_display_name": f"AAP {name}",
        "maas_model_endpoint": lab["urls"]["model"], "maas_model_id": model_id,
        "maas_model_accounts": "user1", "maas_account_password": unused_password})
    assert extra_vars["maas_auth_mode"] == "authorization" and extra_vars["maas_smoke_test"] == "true"

    # The job's private data dir, as the controller lays it out: inventory + injected credentials.
    private = tmp_path / "job"
    (private / "inventory").mkdir(parents=True)
    hosts = {h["name"]: h.get("variables", {}) for h in config["controller_hosts"] if h["inventory"] == jt["inventory"]}
    (private / "inventory" / "hosts.json").write_text(json.dumps({"all": {"hosts": hosts}}))
    creds = lab["credentials"]
    (ctype,) = config["controller_credential_types"]
    env = inject(ctype, {"admin_url": lab["env"]["THREESCALE_ADMIN_URL"], "access_token": lab["env"]["THREESCALE_ACCESS_TOKEN"],
                         "ca_bundle": Path(lab["tls"]["ca_cert"]).read_text()}, private)
    env |= inject(OPENSHIFT_CREDENTIAL_TYPE, {"host": lab["urls"]["kube"], "bearer_token": creds["kube_admin_token"],
                                              "verify_ssl": True, "ssl_ca_cert": Path(lab["tls"]["ca_cert"]).read_text()}, private)
    # The execution environment: ansible from .venv, collections = the installed artifact.
    env |= {"ANSIBLE_COLLECTIONS_PATH": str(installed), "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"}
    for var in ("KUBECONFIG", "K8S_AUTH_KUBECONFIG", "K8S_AUTH_CONTEXT", "THREESCALE_ADMIN_URL",
                "THREESCALE_ACCESS_TOKEN", "THREESCALE_CA_BUNDLE", "ANSIBLE_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PATH", f"{VENV_BIN}:{os.environ.get('PATH', '')}")

    result = ansible_runner.run(
        private_data_dir=str(private), project_dir=str(REPO), playbook=jt["playbook"],
        inventory=str(private / "inventory" / "hosts.json"), extravars=extra_vars, envvars=env,
        quiet=True, suppress_env_files=True, timeout=600)
    stdout = result.stdout.read()
    assert result.status == "successful" and result.rc == 0, stdout[-4000:]

    # The job did what the survey asked: product published, user1 has an application on it.
    services = _porta_get(lab, "/admin/api/services.json", per_page=500)["services"]
    service = next((s["service"] for s in services if s["service"]["system_name"] == name), None)
    assert service, f"no 3scale product {name} after the job"
    account = _porta_get(lab, "/admin/api/accounts/find.json", username="user1")["account"]
    apps = _porta_get(lab, f"/admin/api/accounts/{account['id']}/applications.json")["applications"]
    assert any(a["application"]["service_id"] == service["id"] for a in apps)

    # No secret anywhere in what the controller keeps: events and the artifact dir.
    leaks = {"3scale access token": lab["env"]["THREESCALE_ACCESS_TOKEN"], "survey password": unused_password}
    leaks |= {f"lab credential {k}": v for k, v in creds.items() if isinstance(v, str) and len(v) >= 8}
    leaks |= {f"API key {k[:4]}…": k for k in _all_user_keys(lab)}
    artifacts = private / "artifacts"
    files = [p for p in artifacts.rglob("*") if p.is_file()]
    assert any("job_events" in str(p) for p in files)
    events = json.dumps(list(result.events))
    for label, value in leaks.items():
        assert value not in events, f"{label} appears in the job events"
        for path in files:
            assert value not in path.read_text(errors="replace"), f"{label} appears in {path.relative_to(private)}"
