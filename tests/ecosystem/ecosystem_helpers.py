"""Helpers and fixtures of the ecosystem tests, loaded with `pytest_plugins = ["ecosystem_helpers"]`.

Not a conftest.py: tests/conftest.py and the test modules of tests/lab import `conftest` by name,
and a second conftest module on sys.path would shadow it when all of tests/ is collected."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
KUBERNETES_CORE = REPO / ".venv" / "collections" / "ansible_collections" / "kubernetes"


def tool_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}:{env.get('PATH', '')}"
    env["ANSIBLE_COLLECTIONS_PATH"] = str(REPO / ".venv" / "collections")
    env["ANSIBLE_NOCOLOR"] = "1"
    env.update(extra)
    return env


def run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    """Run a tool and fail the test with its output when it exits non-zero."""
    kwargs.setdefault("env", tool_env())
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=kwargs.pop("timeout", 120), check=False, **kwargs)
    if proc.returncode != 0:
        pytest.fail(f"{' '.join(map(str, cmd))} exited {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


@pytest.fixture(scope="session")
def artifact(tmp_path_factory) -> Path:
    """`ansible-galaxy collection build` of the working tree, as a release would do it."""
    out = tmp_path_factory.mktemp("artifact")
    proc = run([str(VENV_BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(out), str(REPO)])
    match = re.search(r"Created collection for maas\.threescale at (\S+)", proc.stdout)
    assert match, proc.stdout
    return Path(match.group(1))


@pytest.fixture(scope="session")
def installed(artifact, tmp_path_factory) -> Path:
    """The artifact installed offline (no Galaxy) into a fresh collections path; kubernetes.core
    is linked from .venv. Returns the collections path (holding ansible_collections/)."""
    path = tmp_path_factory.mktemp("collections")
    # Only the target path on ANSIBLE_COLLECTIONS_PATH: .venv/collections links this checkout as
    # maas.threescale, and ansible-galaxy would call the collection "already installed".
    run([str(VENV_BIN / "ansible-galaxy"), "collection", "install", "--offline", "--no-deps", "-p", str(path), str(artifact)],
        env=tool_env(ANSIBLE_COLLECTIONS_PATH=str(path)))
    assert (path / "ansible_collections" / "maas" / "threescale" / "MANIFEST.json").is_file()
    (path / "ansible_collections" / "kubernetes").symlink_to(KUBERNETES_CORE)
    return path
