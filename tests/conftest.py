"""Shared pytest fixtures: a whole lab (every component) for the session, over real HTTP."""
from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.02, what: str = "condition"):
    """Poll a condition until it holds (returns its value) or the deadline passes (no fixed sleeps)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def read_env_file(path: Path) -> dict[str, str]:
    env = {}
    for line in path.read_text().splitlines():
        if line.startswith("export "):
            key, _sep, value = line[len("export "):].partition("=")
            env[key] = shlex.split(value)[0] if value else ""
    return env


def start_lab(directory: Path, *extra: str) -> dict:
    """Start a lab with the real CLI and return lab.json plus the parsed lab.env."""
    subprocess.run([sys.executable, "-m", "maaslab", "up", "--dir", str(directory), *extra],
                   check=True, capture_output=True, text=True)
    info = json.loads((directory / "lab.json").read_text())
    info["env"] = read_env_file(directory / "lab.env")
    info["dir"] = str(directory)
    return info


def stop_lab(directory: Path) -> None:
    subprocess.run([sys.executable, "-m", "maaslab", "down", "--dir", str(directory)], check=True,
                   capture_output=True, text=True)


@pytest.fixture(scope="session")
def lab(tmp_path_factory):
    """One lab for the whole session. Tests must not rely on being alone in it: use unique names."""
    directory = tmp_path_factory.mktemp("lab")
    try:
        info = start_lab(directory)
    except subprocess.CalledProcessError as exc:
        log = (directory / "lab.log").read_text() if (directory / "lab.log").exists() else ""
        pytest.fail(f"lab did not start: {exc.stderr}\n{log[-4000:]}")
    yield info
    stop_lab(directory)


def user_env(info: dict) -> dict:
    """os.environ plus a lab's lab.env plus the venv and our collections path: what a user's shell has."""
    env = dict(os.environ)
    env.update(info["env"])
    env["PATH"] = f"{VENV_BIN}:{env.get('PATH', '')}"
    env["ANSIBLE_COLLECTIONS_PATH"] = str(REPO / ".venv" / "collections")
    return env


@pytest.fixture(scope="session")
def lab_env(lab):
    return user_env(lab)


@pytest.fixture(scope="module")
def own_lab(tmp_path_factory):
    """A lab of the test module's own, for tests that judge every product on it: (lab.json info, user env)."""
    directory = tmp_path_factory.mktemp("own-lab")
    info = start_lab(directory)
    yield info, dict(user_env(info), ANSIBLE_NOCOLOR="1")
    stop_lab(directory)
