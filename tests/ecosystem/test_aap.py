"""AAP as code: the controller data is well formed, and the onboard job template runs the way
automation controller runs it (ansible-runner, survey extra vars, credential injectors) without
leaking a secret into the job's events or artifacts."""
from __future__ import annotations

import base64
import json
import os
import secrets
import ssl
import sys
import urllib.request
from pathlib import Path
from urllib.parse import urlencode

import jinja2.sandbox
import pytest
import yaml

pytest.register_assert_rewrite("ecosystem_helpers")  # before its first import
from ecosystem_helpers import REPO, VENV_BIN, run, tool_env

pytest_plugins = ["ecosystem_helpers"]

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


@pytest.mark.parametrize("name", ["MaaS - Onboard model", "MaaS - Offboard model", "MaaS - Bootstrap workshop",
                                  "MaaS - Usage report", "MaaS - Verify models"])
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
    guide = (REPO / "docs" / "aap.md").read_text()
    assert name in guide and all(f"`{v}`" in guide for v in variables), "docs/aap.md does not describe this survey"
    secretish = [q["variable"] for q in spec if "password" in q["variable"] or "token" in q["variable"]]
    assert all(q["type"] == "password" for q in spec if q["variable"] in secretish)


# Survey questions whose answer the playbooks hand to a role option: same choices, same limits.
ROLE_OPTION_OF = {"maas_auth_mode": ("maas_product", "maas_product_auth_mode")}


def test_survey_choices_match_the_role_argument_specs():
    for q in template("MaaS - Onboard model")["survey_spec"]["spec"]:
        if q["variable"] in ROLE_OPTION_OF:
            role, option = ROLE_OPTION_OF[q["variable"]]
            specs = yaml.safe_load((REPO / "roles" / role / "meta" / "argument_specs.yml").read_text())
            spec = specs["argument_specs"]["main"]["options"][option]
            assert sorted(q["choices"]) == sorted(spec["choices"]) and q["default"] == spec["default"]


def test_configure_playbook_feeds_every_list_to_a_module():
    plays = yaml.safe_load((AAP / "configure_controller.yml").read_text())
    loops = {t.get("loop") for t in plays[0]["tasks"]}
    for key in controller_config():
        assert "{{ %s }}" % key in loops, f"{key} is never applied"
    credential_task = next(t for t in plays[0]["tasks"] if t.get("loop") == "{{ controller_credentials }}")
    assert credential_task.get("no_log") is True


# A stand-in for the ansible.controller collection (not installable here): each module records
# the arguments it was called with, so the test sees exactly what a controller would receive.
RECORDING_MODULE = """#!/usr/bin/python
from __future__ import absolute_import, division, print_function
__metaclass__ = type
import json
import os
import sys
from ansible.module_utils.basic import _load_params

params = {k: v for k, v in _load_params().items() if not k.startswith("_ansible")}
with open(os.environ["CONTROLLER_RECORD"], "a") as record:
    record.write(json.dumps({"module": os.path.basename(__file__)[:-3], "params": params}) + "\\n")
print(json.dumps({"changed": True}))
sys.exit(0)
"""


def test_configure_playbook_sends_the_data_unrendered(tmp_path):
    modules = tmp_path / "collections" / "ansible_collections" / "ansible" / "controller" / "plugins" / "modules"
    modules.mkdir(parents=True)
    plays = yaml.safe_load((AAP / "configure_controller.yml").read_text())
    used = {key.split(".")[-1] for task in plays[0]["tasks"] for key in task if key.startswith("ansible.controller.")}
    for name in used:
        (modules / f"{name}.py").write_text(RECORDING_MODULE)
    record = tmp_path / "calls.jsonl"
    env = tool_env(ANSIBLE_COLLECTIONS_PATH=f"{tmp_path / 'collections'}:{REPO / '.venv' / 'collections'}",
                   CONTROLLER_RECORD=str(record))
    base = [str(VENV_BIN / "ansible-playbook"), "-i", "localhost,", str(AAP / "configure_controller.yml"),
            "-e", f"ansible_python_interpreter={sys.executable}"]
    run([*base, "-e", "maas_aap_ee_image=quay.io/acme/maas-threescale-ee:1.0.0",
         "-e", "maas_aap_threescale_admin_url=https://3scale-admin.example.com", "-e", "maas_aap_threescale_access_token=s3cr3t"],
        env=env)
    calls = [json.loads(line) for line in record.read_text().splitlines()]
    by_module = {}
    for call in calls:
        by_module.setdefault(call["module"], []).append(call["params"])
    config = controller_config()
    (ctype,) = by_module["credential_type"]
    assert ctype["injectors"] == config["controller_credential_types"][0]["injectors"]  # still controller templates
    assert ctype["injectors"]["env"]["THREESCALE_ADMIN_URL"] == "{{ admin_url }}"
    (host,) = by_module["host"]
    assert host["variables"]["ansible_python_interpreter"] == "{{ ansible_playbook_python }}"
    # Only the credential whose secret was given; empty inputs are not sent.
    (cred,) = by_module["credential"]
    assert cred["name"] == "3scale Admin API" and cred["inputs"] == {
        "admin_url": "https://3scale-admin.example.com", "access_token": "s3cr3t"}
    templates = {t["name"]: t for t in by_module["job_template"]}
    for expected in config["controller_templates"]:
        sent = templates[expected["name"]]
        assert sent["survey_spec"] == expected["survey_spec"] and sent["playbook"] == expected["playbook"]
        assert sent["credentials"] == expected["credentials"]
    assert by_module["execution_environment"][0]["image"] == "quay.io/acme/maas-threescale-ee:1.0.0"
    assert by_module["project"][0]["scm_url"] == "https://github.com/maas/threescale.git"


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


def launch(name: str, answers: dict, lab: dict, installed: Path, private: Path):
    """Launch a job template as automation controller does: ansible-runner in a private data dir
    holding the inventory and the injected credentials, extra vars = what the survey produces."""
    ansible_runner = pytest.importorskip("ansible_runner")
    config = controller_config()
    jt = template(name)
    (private / "inventory").mkdir(parents=True)
    hosts = {h["name"]: h.get("variables", {}) for h in config["controller_hosts"] if h["inventory"] == jt["inventory"]}
    (private / "inventory" / "hosts.json").write_text(json.dumps({"all": {"hosts": hosts}}))
    ca_pem = Path(lab["tls"]["ca_cert"]).read_text()
    (ctype,) = config["controller_credential_types"]
    assert jt["credentials"] == ["OpenShift API", "3scale Admin API"]
    env = inject(OPENSHIFT_CREDENTIAL_TYPE, {"host": lab["urls"]["kube"], "bearer_token": lab["credentials"]["kube_admin_token"],
                                             "verify_ssl": True, "ssl_ca_cert": ca_pem}, private)
    env |= inject(ctype, {"admin_url": lab["env"]["THREESCALE_ADMIN_URL"], "access_token": lab["env"]["THREESCALE_ACCESS_TOKEN"],
                          "ca_bundle": ca_pem}, private)
    # The execution environment: ansible from .venv, collections = the installed artifact.
    env |= {"ANSIBLE_COLLECTIONS_PATH": str(installed), "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"}
    result = ansible_runner.run(
        private_data_dir=str(private), project_dir=str(REPO), playbook=jt["playbook"],
        inventory=str(private / "inventory" / "hosts.json"), extravars=survey_extra_vars(jt["survey_spec"], answers),
        envvars=env, quiet=True, suppress_env_files=True, timeout=600)
    stdout = result.stdout.read()
    assert result.status == "successful" and result.rc == 0, f"{name} failed:\n{stdout[-4000:]}"
    return result


def assert_no_leak(result, private: Path, leaks: dict) -> None:
    """No secret in what the controller keeps of a job: its events and its artifact dir."""
    artifacts = private / "artifacts"
    files = [p for p in artifacts.rglob("*") if p.is_file()]
    assert any(p.parent.name == "job_events" for p in files)
    # ansible-runner itself records the launch environment (the injected credentials) in
    # artifacts/<id>/command, owner-only; the controller deletes it with the private data dir.
    # Everything else (events, stdout, status, rc, fact cache) must be clean.
    runner_command = [p for p in files if p.name == "command" and p.parent.parent == artifacts]
    assert all(p.stat().st_mode & 0o077 == 0 for p in runner_command)
    files = [p for p in files if p not in runner_command]
    events = json.dumps(list(result.events))
    for label, value in leaks.items():
        assert value not in events, f"{label} appears in the job events"
        for path in files:
            assert value not in path.read_text(errors="replace"), f"{label} appears in {path.relative_to(private)}"


def test_job_templates_under_ansible_runner_leak_no_secret(lab, installed, tmp_path, monkeypatch):
    for var in ("KUBECONFIG", "K8S_AUTH_KUBECONFIG", "K8S_AUTH_CONTEXT", "THREESCALE_ADMIN_URL",
                "THREESCALE_ACCESS_TOKEN", "THREESCALE_CA_BUNDLE", "ANSIBLE_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PATH", f"{VENV_BIN}:{os.environ.get('PATH', '')}")
    # The model the lab serves, as an operator would read it from /v1/models.
    with urllib.request.urlopen(lab["urls"]["model"] + "/v1/models", timeout=30) as resp:
        model_id = json.load(resp)["data"][0]["id"]
    name = "aap-" + secrets.token_hex(3)
    unused_password = "Pw-" + secrets.token_hex(8)  # survey password: must not show up either

    onboard = launch("MaaS - Onboard model", {
        "maas_model_name": name, "maas_model_display_name": f"AAP {name}",
        "maas_model_endpoint": lab["urls"]["model"], "maas_model_id": model_id,
        "maas_model_accounts": "user1", "maas_account_password": unused_password}, lab, installed, tmp_path / "onboard")

    # The job did what the survey asked: product published, user1 has an application on it.
    services = _porta_get(lab, "/admin/api/services.json", per_page=500)["services"]
    service = next((s["service"] for s in services if s["service"]["system_name"] == name), None)
    assert service, f"no 3scale product {name} after the job"
    account = _porta_get(lab, "/admin/api/accounts/find.json", username="user1")["account"]
    apps = _porta_get(lab, f"/admin/api/accounts/{account['id']}/applications.json")["applications"]
    assert any(a["application"]["service_id"] == service["id"] for a in apps)

    leaks = {"3scale access token": lab["env"]["THREESCALE_ACCESS_TOKEN"], "survey password": unused_password}
    leaks |= {f"lab credential {k}": v for k, v in lab["credentials"].items() if isinstance(v, str) and len(v) >= 8}
    leaks |= {f"API key {k[:4]}…": k for k in _all_user_keys(lab)}  # before offboarding deletes some
    assert_no_leak(onboard, tmp_path / "onboard", leaks)

    # The offboard template undoes it (and leaves the shared lab as it was).
    offboard = launch("MaaS - Offboard model", {"maas_model_name": name, "maas_model_accounts": "user1"},
                      lab, installed, tmp_path / "offboard")
    services = _porta_get(lab, "/admin/api/services.json", per_page=500)["services"]
    assert all(s["service"]["system_name"] != name for s in services), f"{name} still in 3scale after offboarding"
    assert_no_leak(offboard, tmp_path / "offboard", leaks)
