"""`make demo` as a newcomer sees it (issue 20 item 1): a compact output that ends with the OpenAI base
URL, the lab user's key, three lines of the OpenAI Python SDK and a curl, and each works as printed:
the SDK lines are run by the OpenAI SDK (openai on PyPI, nobody here wrote it) and the curl line by
/bin/sh, both against the lab's production gateway. The full Ansible output is in the log file named."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

from conftest import REPO


def test_make_demo_ends_with_a_key_and_calls_that_work_as_printed(lab, lab_env):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("THREESCALE_", "K8S_AUTH_", "KUBECONFIG"))}
    proc = subprocess.run(["bash", "hack/demo.sh", lab["dir"]], cwd=REPO, env=env, capture_output=True, text=True,
                          check=False, timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    out = proc.stdout
    lines = out.splitlines()
    # Compact: the lab's start-up lines, a progress line every 20 tasks, then the part that matters.
    assert len(lines) < 60, out
    assert "TASK [" not in out and "PLAY RECAP" not in out

    base = re.search(r"^  OpenAI base URL  (\S+)$", out, re.M).group(1)
    key = re.search(r"^  API key          (\S+)   \(user1's; shown because this is the local, throwaway lab", out,
                    re.M).group(1)
    assert base.endswith("/v1") and re.fullmatch(r"[0-9a-f]{32}", key), out
    with open(os.path.join(lab["dir"], "demo-report.json"), encoding="utf-8") as f:
        report = json.load(f)
    assert base == report["models"][0]["production_endpoint"].rstrip("/") + "/v1"

    # The OpenAI SDK, exactly the printed lines.
    start = lines.index("  Python, OpenAI SDK (pip install openai, or .venv/bin/python which has it):")
    snippet = [line[4:] for line in lines[start + 1:start + 4]]
    assert snippet[0] == "from openai import OpenAI" and key in snippet[1], snippet
    sdk = subprocess.run([sys.executable, "-c", "\n".join(snippet)], capture_output=True, text=True, check=False,
                         timeout=120, env={k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")})
    assert sdk.returncode == 0, sdk.stderr[-3000:]
    assert sdk.stdout.strip(), "the SDK printed no completion"

    # The curl, exactly the printed line, in a POSIX shell.
    curl_line = lines[lines.index("  curl:") + 1].strip()
    assert curl_line.startswith("curl -X POST " + base + "/completions")
    answer = subprocess.run(["/bin/sh", "-c", curl_line + " -sS --fail-with-body"], capture_output=True, text=True,
                            check=False, timeout=120)
    assert answer.returncode == 0, answer.stdout + answer.stderr
    body = json.loads(answer.stdout)
    assert body["choices"][0]["text"] and body["usage"]["total_tokens"] > 0

    # The full output is kept, and named on the last lines.
    log = re.search(r"^Full Ansible output: (\S+)$", out, re.M).group(1)
    assert "PLAY RECAP" in open(log, encoding="utf-8").read()
    assert lines[-1].startswith("demo finished in ")
    print("\nmake demo, last 20 lines:\n" + "\n".join(lines[-20:]))
