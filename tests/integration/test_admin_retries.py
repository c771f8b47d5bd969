"""maas_admin_retries reaches every playbook (issue 18, item 6): the connection settings of the
threescale modules are written once (playbooks/vars/connection.yml), so the health check and the
usage report honour the retry count like the onboarding does. Proven with porta answering 503 to the
first admin API read of the run: with no retry the run fails naming the 503, with retries it succeeds.

Upstream: porta answers 503 from its front proxy while a pod restarts; plugins/module_utils/threescale_api.py
retries 429/503 for every method."""
from __future__ import annotations

import subprocess
import sys

import pytest

from dryrun_helpers import playbook

# The first admin API read of every playbook: the maas_connect role's product lookup (not the operator's).
FIRST_READ = ["error_rate=1", "error_status=503", 'verbs=["GET"]', r"path_regex=^/admin/api/services\.json$",
              "exclude_operator=true", "max_count=1"]


def fault(lab, lab_env, *args):
    subprocess.run([sys.executable, "-m", "maaslab", "fault", "--dir", lab["dir"], *args], check=True,
                   capture_output=True, env=lab_env, timeout=60)


@pytest.mark.parametrize("book, extra", [
    ("verify_models", {}),
    ("usage_report", {"maas_usage_products": "granite-3dot2-8b-instruct"}),
])
def test_maas_admin_retries_reaches_the_playbook(lab, lab_env, tmp_path, book, extra):
    if book == "usage_report":
        extra = dict(extra, maas_usage_report_dir=str(tmp_path / "usage"))
    outcomes = {}
    try:
        for retries in (0, 2):
            fault(lab, lab_env, "porta", *FIRST_READ)  # new switches: the max_count budget starts again
            proc, seconds = playbook(lab_env, book, dict(extra, maas_admin_retries=retries))
            outcomes[retries] = (proc.returncode, " ".join(proc.stdout.split()), seconds)
    finally:
        fault(lab, lab_env, "clear")
    rc, out, _seconds = outcomes[0]
    assert rc != 0 and "it answered HTTP 503" in out, out[-3000:]
    rc, out, seconds = outcomes[2]
    assert rc == 0, out[-3000:]
    print(f"\n{book}: one 503 fails the run with maas_admin_retries=0, retried with 2 ({seconds:.1f}s)")
