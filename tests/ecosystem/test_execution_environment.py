"""execution-environment.yml and meta/execution-environment.yml produce an EE with every dependency.

`ansible-builder create` needs no container engine; `ansible-builder introspect` is the step that
runs inside the build on the installed collections (what a consumer's own EE build does with ours).
"""
from __future__ import annotations

import re
import shutil
import tarfile
import json

import pytest
import yaml

pytest.register_assert_rewrite("ecosystem_helpers")  # before its first import
from ecosystem_helpers import REPO, VENV_BIN, run

pytest_plugins = ["ecosystem_helpers"]


def requirement_names(path) -> set[str]:
    names = set()
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.add(re.split(r"[<>=!~\[; ]", line, 1)[0].lower())
    return names


def bindep_entries(path) -> set[str]:
    return {line.split("#", 1)[0].strip() for line in path.read_text().splitlines()
            if line.split("#", 1)[0].strip()}


@pytest.fixture(scope="module")
def context(artifact, tmp_path_factory):
    """Build context from a copy of the project files the EE definition names."""
    project = tmp_path_factory.mktemp("ee-project")
    for name in ("execution-environment.yml", "requirements.txt", "bindep.txt"):
        shutil.copy(REPO / name, project / name)
    (project / "build" / "ee").mkdir(parents=True)
    shutil.copy(artifact, project / "build" / "ee" / "maas-threescale.tar.gz")  # what hack/gates.sh build writes
    run([str(VENV_BIN / "ansible-builder"), "create", "-f", "execution-environment.yml", "-c", "context",
         "--output-filename", "Containerfile"], cwd=project)
    return project / "context"


def test_definition_is_schema_3_with_pinned_ansible():
    ee = yaml.safe_load((REPO / "execution-environment.yml").read_text())
    assert ee["version"] == 3
    tested = {re.split("==", line)[0]: line.strip() for line in (REPO / "test-requirements.txt").read_text().splitlines()
              if line.startswith(("ansible-core==", "ansible-runner=="))}
    assert ee["dependencies"]["ansible_core"]["package_pip"] == tested["ansible-core"]
    assert ee["dependencies"]["ansible_runner"]["package_pip"] == tested["ansible-runner"]


def test_bindep_file_parses_with_bindep():
    """bindep (what the image build runs) reads the file and lists our packages for this platform."""
    proc = run([str(VENV_BIN / "bindep"), "--file", str(REPO / "bindep.txt"), "--list_all", "newline"])
    listed = set(proc.stdout.split())
    assert listed and listed <= {entry.split()[0] for entry in bindep_entries(REPO / "bindep.txt")}


def test_context_names_every_dependency(context):
    containerfile = (context / "Containerfile").read_text()
    assert re.search(r'ANSIBLE_INSTALL_REFS="ansible-core==[\d.]+ ansible-runner==[\d.]+"', containerfile)
    assert "ansible-galaxy collection install" in containerfile

    build = context / "_build"
    # Python: everything the collection (and kubernetes.core through it) needs.
    assert requirement_names(REPO / "requirements.txt") >= {"kubernetes", "requests-oauthlib", "jsonpatch"}
    assert requirement_names(build / "requirements.txt") == requirement_names(REPO / "requirements.txt")
    # System packages.
    assert bindep_entries(build / "bindep.txt") == bindep_entries(REPO / "bindep.txt")
    # Collections: kubernetes.core from Galaxy/Automation Hub, ours from the artifact in the context.
    galaxy = yaml.safe_load((build / "requirements.yml").read_text())["collections"]
    by_name = {c["name"]: c for c in galaxy}
    assert "kubernetes.core" in by_name
    ours = [c for c in galaxy if c.get("type") == "file"]
    assert len(ours) == 1
    shipped = build / ours[0]["name"]  # the galaxy stage runs in /build, a copy of _build
    with tarfile.open(shipped) as tar:
        manifest = json.load(tar.extractfile("MANIFEST.json"))["collection_info"]
    galaxy_yml = yaml.safe_load((REPO / "galaxy.yml").read_text())
    assert (manifest["namespace"], manifest["name"], manifest["version"]) == \
        ("maas", "threescale", galaxy_yml["version"])
    # The collection's own kubernetes.core requirement is satisfiable by the EE's pin.
    assert "kubernetes.core" in galaxy_yml["dependencies"]


def test_consumer_ee_introspection_finds_our_dependencies(installed, tmp_path):
    """A consumer baking maas.threescale into its own EE gets our Python and system deps."""
    pip_out, bindep_out = tmp_path / "pip.txt", tmp_path / "bindep.txt"
    run([str(VENV_BIN / "ansible-builder"), "introspect", "--write-pip", str(pip_out),
         "--write-bindep", str(bindep_out), str(installed)])
    ours = [line for line in pip_out.read_text().splitlines() if "# from collection maas.threescale" in line]
    assert {re.split(r"[<>=!~ ]", line, 1)[0].lower() for line in ours} == requirement_names(REPO / "requirements.txt")
    system = [line for line in bindep_out.read_text().splitlines() if "# from collection maas.threescale" in line]
    assert {line.split("#")[0].strip() for line in system} == bindep_entries(REPO / "bindep.txt")
