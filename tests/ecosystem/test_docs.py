"""Documentation gates: role docs render, READMEs follow the argument specs, and the workshop
mapping points only at things that exist."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import pytest
import yaml

pytest.register_assert_rewrite("ecosystem_helpers")  # before its first import
from ecosystem_helpers import REPO, VENV_BIN, run

ROLES = sorted(p.name for p in (REPO / "roles").iterdir() if (p / "meta" / "argument_specs.yml").is_file())
ROLE_DOCS = [sys.executable, str(REPO / "hack" / "role_docs.py")]


def test_role_argument_specs_render_with_ansible_doc():
    proc = run([str(VENV_BIN / "ansible-doc"), "-t", "role", "--json", *[f"maas.threescale.{r}" for r in ROLES]])
    assert proc.stderr.strip() == "", proc.stderr
    docs = json.loads(proc.stdout)
    for role in ROLES:
        main = docs[f"maas.threescale.{role}"]["entry_points"]["main"]
        assert main["short_description"] and main["options"], role


def test_role_readmes_match_argument_specs():
    proc = subprocess.run([*ROLE_DOCS, "--check"], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr + "\nrun: hack/role_docs.py --write"


def test_role_docs_detects_drift_and_regenerates(tmp_path):
    role = tmp_path / "demo_role"
    shutil.copytree(REPO / "roles" / ROLES[0] / "meta", role / "meta")
    check_cmd = [*ROLE_DOCS, "--check", str(role)]
    assert subprocess.run(check_cmd, capture_output=True, text=True, check=False).returncode == 1  # no README yet
    subprocess.run([*ROLE_DOCS, "--write", str(role)], check=True, capture_output=True)
    assert subprocess.run(check_cmd, capture_output=True, text=True, check=False).returncode == 0
    readme = (role / "README.md").read_text()
    (role / "README.md").write_text("# Demo\n\nHand-written intro.\n" + readme[readme.index("<!-- BEGIN"):] + "\nUsage notes.\n")
    spec_file = role / "meta" / "argument_specs.yml"
    specs = yaml.safe_load(spec_file.read_text())
    specs["argument_specs"]["main"]["options"]["demo_added_option"] = {
        "description": "Added after the README was written | with a pipe.", "type": "int", "default": 3}
    spec_file.write_text(yaml.safe_dump(specs))
    stale = subprocess.run(check_cmd, capture_output=True, text=True, check=False)
    assert stale.returncode == 1 and "+| `demo_added_option` | int | no | `3` |" in stale.stderr
    subprocess.run([*ROLE_DOCS, "--write", str(role)], check=True, capture_output=True)
    assert subprocess.run(check_cmd, capture_output=True, text=True, check=False).returncode == 0
    text = (role / "README.md").read_text()
    assert text.startswith("# Demo\n\nHand-written intro.\n") and text.endswith("\nUsage notes.\n")
    assert "with a pipe" in text and "\\| with a pipe" in text


MAPPING = REPO / "docs" / "workshop-mapping.md"


@pytest.mark.skipif(not MAPPING.exists(), reason="docs/workshop-mapping.md not written yet")
def test_workshop_mapping_points_at_real_content():
    text = MAPPING.read_text()
    for path in set(re.findall(r"`((?:roles|playbooks|plugins|aap|docs)/[\w./-]+)`", text)):
        assert (REPO / path).exists(), f"{path} named in the mapping does not exist"
    modules = {p.stem for p in (REPO / "plugins").rglob("*.py")}
    modules |= {p.stem for p in (REPO / "plugins" / "filter").glob("*.yml")}   # filters: named by their docs
    for name in set(re.findall(r"maas\.threescale\.(\w+)", text)):
        assert name in modules or name in ROLES or (REPO / "playbooks" / f"{name}.yml").exists(), name
    # Every manual step of both workshop texts has a row.
    for step in ("system-seed", "Access Code", "Backend", "Product", "ProxyConfigPromote", "ActiveDoc",
                 "Service Subscription", "application", "curl"):
        assert step.lower() in text.lower(), f"workshop step '{step}' is not mapped"
