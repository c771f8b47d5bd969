"""Filter plugins are loaded again in every task's worker process (a fork of the controller that has
not loaded them): importing the kubernetes client there cost about 0.4 s per task, a quarter of an
onboarding run. Every filter of the collection must import without it."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

FILTERS = sorted(p.stem for p in (Path(__file__).resolve().parents[4] / "plugins" / "filter").glob("*.py")
                 if p.stem != "__init__")


@pytest.mark.parametrize("name", FILTERS)
def test_a_filter_plugin_does_not_import_the_kubernetes_client(name):
    code = ("import sys; import ansible_collections.maas.threescale.plugins.filter.%s; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('kubernetes', 'urllib3', 'yaml')))" % name)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": ":".join(sys.path)}).stdout
    assert "kubernetes" not in out, "%s imports the kubernetes client: %s" % (name, out)


def test_every_filter_file_is_checked():
    assert {"catalog", "k8s_retry", "outcomes", "promotion"} <= set(FILTERS)
