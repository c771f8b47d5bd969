"""maas.threescale.proxy_config_promote against the lab: it connects through the module_defaults of the
modules it runs (kubernetes.core.k8s, cr_wait, threescale_product_info), not the environment, and resumes
the ProxyConfigPromote a failed run left.

The environment is stripped of KUBECONFIG / K8S_AUTH_* / THREESCALE_*, so only module_defaults can reach
the cluster and the admin API. The seeded product (already promoted) with a config hash never recorded
is due: its PCP ends Failed "no product changes detected" (upstream proxyconfigpromote_controller.go),
is deleted, and the versions read back say nothing was left to promote. A run whose cr_wait connection
is wrong (module_defaults for maas.threescale.cr_wait only: group/maas.threescale.k8s extends
kubernetes.core's group, so it would reach the create too) fails after the create and leaves that PCP;
the next run finds the same object, and finishes it."""
from __future__ import annotations

import json
import subprocess
import uuid

from conftest import REPO

PLAY = """
- hosts: localhost
  gather_facts: false
  module_defaults:
    group/kubernetes.core.k8s: {{kubeconfig: "{kubeconfig}"}}
    maas.threescale.cr_wait: {{kubeconfig: "{wait_kubeconfig}"}}
    group/maas.threescale.threescale: {{admin_url: "{admin_url}", access_token: "{token}", ca_path: "{ca}"}}
  tasks:
    - maas.threescale.proxy_config_promote:
        models: [{{name: granite-3dot2-8b-instruct, system_name: granite-3dot2-8b-instruct, config_hash: "{hash}"}}]
        namespace: 3scale
        attempts: 2
        timeout: 60
      register: promotion
    - ansible.builtin.copy:
        content: "{{{{ promotion | to_json }}}}"
        dest: "{result}"
        mode: "0600"
"""


def run(lab_env, tmp_path, wait_kubeconfig, hash_, result=""):
    env = {k: v for k, v in lab_env.items() if not k.startswith(("K8S_AUTH_", "THREESCALE_")) and k != "KUBECONFIG"}
    book = tmp_path / ("pcp-%s.yml" % uuid.uuid4().hex[:6])
    book.write_text(PLAY.format(kubeconfig=lab_env["KUBECONFIG"], wait_kubeconfig=wait_kubeconfig, hash=hash_,
                                admin_url=lab_env["THREESCALE_ADMIN_URL"], token=lab_env["THREESCALE_ACCESS_TOKEN"],
                                ca=lab_env["THREESCALE_CA_BUNDLE"], result=result or tmp_path / "unused.json"))
    return subprocess.run(["ansible-playbook", "-i", "localhost,", "-c", "local", str(book), "-vvv",
                           "-e", "ansible_python_interpreter=" + str(REPO / ".venv" / "bin" / "python")],
                          cwd=REPO, env=dict(env, ANSIBLE_NOCOLOR="1"), capture_output=True, text=True, timeout=300,
                          check=False)


def pcps(lab_env, prefix):
    out = subprocess.run(["kubectl", "get", "proxyconfigpromotes.capabilities.3scale.net", "-n", "3scale", "-o", "json"],
                         env=lab_env, capture_output=True, text=True, check=True).stdout
    return [p["metadata"]["name"] for p in json.loads(out)["items"] if p["metadata"]["name"].startswith(prefix)]


def test_connects_through_module_defaults_and_resumes_a_left_pcp(lab_env, tmp_path):
    hash_ = uuid.uuid4().hex
    name = "granite-3dot2-8b-instruct-%s-1" % hash_[:8]
    bad = tmp_path / "nowhere.kubeconfig"
    bad.write_text("apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n")
    try:
        failed = run(lab_env, tmp_path, str(bad), hash_)
        assert failed.returncode == 2, failed.stdout[-4000:]
        assert "Waiting for the ProxyConfigPromotes failed" in failed.stdout, failed.stdout[-4000:]
        assert pcps(lab_env, name) == [name]  # created through group/kubernetes.core.k8s, then the wait failed

        done = run(lab_env, tmp_path, lab_env["KUBECONFIG"], hash_, tmp_path / "result.json")
        assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
        result = json.loads((tmp_path / "result.json").read_text())
        model = result["models"][0]
        assert model["outcome"] == "nothing_to_promote" and model["pcps"] == [name], result
        assert "no product changes detected" in model["messages"][0]
        assert result["promoted"] == ["granite-3dot2-8b-instruct"] and result["failures"] == [] and not result.get("failed")
        assert pcps(lab_env, name) == []  # the Failed one was deleted, none left
        for proc in (failed, done):
            assert lab_env["THREESCALE_ACCESS_TOKEN"] not in proc.stdout + proc.stderr
    finally:
        subprocess.run(["kubectl", "delete", "-n", "3scale", "--ignore-not-found",
                        "proxyconfigpromotes.capabilities.3scale.net/" + name], env=lab_env, capture_output=True, check=False)
