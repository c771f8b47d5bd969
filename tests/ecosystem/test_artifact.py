"""The release artifact: clean, complete, installable offline, and usable from the installed copy."""
from __future__ import annotations

import json
import re
import tarfile

import pytest
import yaml

pytest.register_assert_rewrite("ecosystem_helpers")  # before its first import
from ecosystem_helpers import REPO, VENV_BIN, run, tool_env

pytest_plugins = ["ecosystem_helpers"]

# Lab code and state (top-level lab/, tests/lab/, a lab dir's files), venvs, caches, build output.
FORBIDDEN = re.compile(r"^(lab|tests/lab|tests/output|build|\.lab[^/]*)/|(^|/)(\.venv|\.git|__pycache__|\.pytest_cache|\.cache)/"
                       r"|\.pyc$|\.sqlite3|\.tar\.gz$|(^|/)(lab\.env|lab\.json|faults\.json|kubeconfig)$")


def plugin_names(root):
    for kind, folder in (("module", "modules"), ("lookup", "lookup")):
        for path in sorted((root / "plugins" / folder).glob("*.py")):
            if path.stem != "__init__":
                yield kind, f"maas.threescale.{path.stem}"


def test_artifact_is_clean_and_complete(artifact):
    with tarfile.open(artifact) as tar:
        names = [m.name for m in tar.getmembers() if m.isfile()]
        manifest = json.load(tar.extractfile("MANIFEST.json"))
    bad = [n for n in names if FORBIDDEN.search(n)]
    assert not bad, f"files that must not ship: {bad[:20]}"
    expected = {"MANIFEST.json", "FILES.json", "meta/runtime.yml", "meta/execution-environment.yml",
                "requirements.txt", "bindep.txt", "README.md"}
    expected |= {str(p.relative_to(REPO)) for p in (REPO / "plugins").rglob("*.py") if "__pycache__" not in p.parts}
    expected |= {f"roles/{r.name}/meta/argument_specs.yml" for r in (REPO / "roles").iterdir() if r.is_dir()}
    expected |= {f"playbooks/{p.name}" for p in (REPO / "playbooks").glob("*.yml")}
    assert expected <= set(names), f"missing from the artifact: {sorted(expected - set(names))}"
    info = manifest["collection_info"]
    galaxy = yaml.safe_load((REPO / "galaxy.yml").read_text())
    assert (info["namespace"], info["name"], info["version"]) == ("maas", "threescale", galaxy["version"])
    size = artifact.stat().st_size
    print(f"\nartifact {artifact.name}: {size / 1024:.0f} KiB, {len(names)} files")
    assert size < 1024 * 1024, "artifact unexpectedly large: something that should be ignored was packed"


def test_every_plugin_documents_from_the_installed_copy(installed):
    root = installed / "ansible_collections" / "maas" / "threescale"
    plugins = list(plugin_names(root))
    kinds = {kind for kind, name in plugins}
    assert kinds == {"module", "lookup"}, kinds
    env = tool_env(ANSIBLE_COLLECTIONS_PATH=str(installed))
    for kind in ("module", "lookup"):  # one ansible-doc per plugin type: each start costs ~1 s
        names = [n for k, n in plugins if k == kind]
        proc = run([str(VENV_BIN / "ansible-doc"), "-t", kind, "--json", *names], env=env)
        assert proc.stderr.strip() == "", proc.stderr
        docs = json.loads(proc.stdout)
        assert set(docs) == set(names)
        for name, doc in docs.items():
            assert doc["doc"]["filename"].startswith(str(root)), f"{name} was not loaded from the installed copy"
            assert doc["doc"]["short_description"] and doc["examples"].strip(), name


def test_module_runs_from_the_installed_copy_against_the_lab(installed, lab):
    env = tool_env(ANSIBLE_COLLECTIONS_PATH=str(installed), ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
                   ANSIBLE_STDOUT_CALLBACK="ansible.builtin.minimal", **lab["env"])
    proc = run([str(VENV_BIN / "ansible"), "localhost", "-m", "maas.threescale.threescale_product_info",
                "-a", "product=granite-3dot2-8b-instruct"], env=env, cwd=installed)
    status, sep, body = proc.stdout.partition(" => ")  # minimal callback: "localhost | SUCCESS => {...}"
    assert sep and status.strip() == "localhost | SUCCESS", proc.stdout[-2000:]
    result = json.loads(body)
    assert result["exists"] is True and result["system_name"] == "granite-3dot2-8b-instruct"
    assert result["production_version"] and result["endpoint"].startswith("http")
    # The token came from the environment and is not echoed back.
    assert lab["env"]["THREESCALE_ACCESS_TOKEN"] not in proc.stdout
