"""Usage report end to end (issue 12 item 4): onboard a model for user1 and user2, send a known number of
requests per user and operation through the production gateway, run playbooks/usage_report.yml and check
that usage.csv and usage.html count exactly those requests; then render usage.html in Debian's headless
chromium (DOM dump + screenshot in pytest's tmp_path, never in the repository).

Upstream: porta app/controllers/stats/data/base_controller.rb (usage: metric_name required, period or
granularity+since), app/lib/stats/views/usage.rb (total, values, period, application.account), and
app/controllers/stats/data/applications_controller.rb / services_controller.rb (one source per request)."""
from __future__ import annotations

import csv
import datetime
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests

from conftest import REPO
from test_modules import Porta

sys.path.insert(0, str(REPO / "tests" / "lab"))
from kube_fixtures import wait_for  # noqa: E402  (the shared polling helper)

# requests per (account, operation): method, path, body. Different mixes per user, zero for the rest.
OPS = {
    "models": ("GET", "/v1/models", None),
    "completions": ("POST", "/v1/completions", {"prompt": "San Francisco is a", "max_tokens": 3}),
    "chat/completions": ("POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}],
                                                          "max_tokens": 3}),
    "embeddings": ("POST", "/v1/embeddings", {"input": "hello"}),
    "tokenize": ("POST", "/tokenize", {"prompt": "hello"}),
}
TRAFFIC = {"user1": {"models": 3, "completions": 2, "chat/completions": 1},
           "user2": {"models": 1, "embeddings": 5, "tokenize": 2}}
MODEL_ID = "tinyllama/tinyllama-1.1b-chat-v1.0"


def playbook(lab_env, book, *args):
    t0 = time.monotonic()
    proc = subprocess.run(["ansible-playbook", "-i", "inventories/lab", book, *args], cwd=REPO,
                          env=dict(lab_env, ANSIBLE_NOCOLOR="1"), capture_output=True, text=True, check=False,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]
    return proc, time.monotonic() - t0


@pytest.fixture(scope="module")
def traffic(lab_env):
    """A freshly onboarded model (no smoke test: no calls but ours) and the requests sent per user and operation."""
    t0 = time.monotonic()
    porta = Porta(lab_env)
    name = "use" + uuid.uuid4().hex[:6]
    model = {"name": name, "endpoint": lab_env["LAB_MODEL_URL"], "model_id": MODEL_ID, "accounts": ["user1", "user2"]}
    playbook(lab_env, "playbooks/onboard_model.yml", "-e", json.dumps({"maas_models": [model]}),
             "-e", "maas_smoke_test=false")
    service = porta.product(name)
    endpoint = porta.req("GET", "/services/%s/proxy.json" % service["id"])[1]["proxy"]["endpoint"].rstrip("/")
    keys = {}
    for user in TRAFFIC:
        apps = [a for a in porta.apps(porta.find(user)["id"]) if a["service_id"] == service["id"]]
        assert len(apps) == 1, apps
        keys[user] = apps[0]["user_key"]
    gw = requests.Session()
    gw.trust_env = False

    def refused_bad_key():  # the production gateway serves the product; a refused key is never counted
        try:
            r = gw.get(endpoint + "/v1/models", headers={"Authorization": "Bearer not-a-key"}, timeout=5)
        except requests.ConnectionError:
            return False
        return r.status_code == 403

    wait_for(refused_bad_key, timeout=30, interval=0.2, what="the production gateway to serve " + name)
    for user, ops in TRAFFIC.items():
        for op, count in ops.items():
            method, path, body = OPS[op]
            body = dict(body, model=MODEL_ID) if body is not None else None
            for _sent in range(count):
                r = gw.request(method, endpoint + path, json=body, timeout=30,
                               headers={"Authorization": "Bearer " + keys[user]})
                assert r.status_code == 200, (user, op, r.status_code, r.text[:300])
    return {"name": name, "keys": keys, "service": service, "setup_s": time.monotonic() - t0}


def csv_counts(path: Path, model: str) -> dict:
    with path.open(newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["model"] == model]
    return {(r["account"], r["operation"]): int(r["calls"]) for r in rows}


def test_usage_report_counts_what_the_gateway_served(lab_env, traffic, tmp_path):
    """usage.csv has one row per (model, account, operation) and its calls equal the requests sent;
    usage.html shows the same numbers as table cells and SVG bars; files are 0644 and hold no key."""
    name, out = traffic["name"], tmp_path / "report"
    proc, elapsed = playbook(lab_env, "playbooks/usage_report.yml", "-e", "maas_usage_report_dir=%s" % out)
    counts = csv_counts(out / "usage.csv", name)
    operations = {op for _acc, op in counts}
    assert operations == {"health", "tokenize", "detokenize", "models", "version", "chat/completions",
                          "completions", "embeddings"}, operations  # discovered by the managed-by label
    expected = {(user, op): TRAFFIC[user].get(op, 0) for user in TRAFFIC for op in operations}
    assert counts == expected
    for f in ("usage.csv", "usage.html"):
        assert stat.S_IMODE((out / f).stat().st_mode) == 0o644
        text = (out / f).read_text()
        assert not [k for k in traffic["keys"].values() if k in text]
    assert not [k for k in traffic["keys"].values() if k in proc.stdout + proc.stderr]
    html = (out / "usage.html").read_text()
    section = html.split('id="model-%s"' % name)[1].split("</section>")[0]
    for op in operations:  # the per-model bars: all accounts together
        total = sum(TRAFFIC[u].get(op, 0) for u in TRAFFIC)
        assert 'data-label="%s" data-calls="%d"' % (op, total) in section, op
    for user in TRAFFIC:  # the per-model table: one row per account, its total last
        row = re.search(r"<tr><td>%s</td>(.*?)</tr>" % user, section).group(1)
        assert re.findall(r'<td class="n">(\d+)</td>', row)[-1] == str(sum(TRAFFIC[user].values()))
    assert "<script" not in html and not re.search(r'(?:src|href)="(?:https?:)?//', html)  # self-contained
    print(f"\nusage report: onboarding + {sum(sum(o.values()) for o in TRAFFIC.values())} requests "
          f"{traffic['setup_s']:.1f}s, report {elapsed:.1f}s, usage.html {len(html.encode())} bytes, "
          f"usage.csv {(out / 'usage.csv').stat().st_size} bytes")


def test_usage_report_check_mode_writes_nothing(lab_env, traffic, tmp_path):
    """--check reads the analytics and says what it would write, but creates neither the directory nor files."""
    out = tmp_path / "never"
    proc, _elapsed = playbook(lab_env, "playbooks/usage_report.yml", "--check", "-e", "maas_usage_report_dir=%s" % out,
                              "-e", json.dumps({"maas_usage_products": [traffic["name"]]}))
    assert not out.exists()
    calls = sum(sum(o.values()) for o in TRAFFIC.values())
    assert re.search(r"Would write %s/usage.csv and %s/usage.html: 16 rows,\s+%d calls to 1 products"
                     % (re.escape(str(out)), re.escape(str(out)), calls), proc.stdout), proc.stdout[-2000:]


def test_usage_report_honours_a_since_until_range(lab_env, traffic, tmp_path):
    """A since/until range counts what the gateway served in it: today by hour holds every request sent, the
    days before today hold none of them (the lab's analytics cut ranges from hourly counters as porta does).
    Upstream: porta app/lib/stats/views/usage.rb (since/until widened to whole granularity steps),
    app/lib/stats/storage.rb (values_in_range)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    calls = sum(sum(o.values()) for o in TRAFFIC.values())
    ranges = {"today": (now.strftime("%Y-%m-%d"), now.strftime("%Y-%m-%d %H:%M:%S"), "hour", calls),
              "before": ((now - datetime.timedelta(days=3)).strftime("%Y-%m-%d"),
                         (now - datetime.timedelta(days=1)).strftime("%Y-%m-%d 23:59:59"), "day", 0)}
    for label, (since, until, granularity, expected) in ranges.items():
        out = tmp_path / label
        proc, _elapsed = playbook(lab_env, "playbooks/usage_report.yml", "--check", "-e", json.dumps(
            {"maas_usage_report_dir": str(out), "maas_usage_products": [traffic["name"]], "maas_usage_since": since,
             "maas_usage_until": until, "maas_usage_granularity": granularity}))
        assert re.search(r"16 rows,\s+%d calls to 1 products" % expected, proc.stdout), (label, proc.stdout[-2000:])


def test_token_without_the_analytics_scope_fails_naming_it(lab_env, traffic, tmp_path):
    """A personal access token with only the account_management scope reads products but porta's Analytics
    API refuses it (403, porta app/lib/api_authentication/by_access_token.rb): the run fails naming the
    missing stats scope, writes nothing and never prints the token."""
    porta = Porta(lab_env)
    status, body = porta.req("POST", "/personal/access_tokens.json",
                             data={"name": "usage-ro-" + uuid.uuid4().hex[:6], "scopes[]": ["account_management"],
                                   "permission": "ro"})
    assert status == 201, body
    token, out = body["access_token"]["value"], tmp_path / "report"
    proc = subprocess.run(["ansible-playbook", "-i", "inventories/lab", "playbooks/usage_report.yml",
                           "-e", "maas_usage_report_dir=%s" % out, "-e", json.dumps({"maas_usage_products": [traffic["name"]]})],
                          cwd=REPO, env=dict(lab_env, ANSIBLE_NOCOLOR="1", THREESCALE_ACCESS_TOKEN=token),
                          capture_output=True, text=True, check=False, timeout=300)
    assert proc.returncode == 2, proc.stdout[-3000:]
    assert "Analytics API (stats) scope" in proc.stdout and not out.exists()
    assert token not in proc.stdout + proc.stderr


def chromium_binary():
    return shutil.which("chromium") or shutil.which("chromium-browser")


def test_usage_html_renders_in_headless_chromium(lab_env, traffic, tmp_path):
    """Debian's chromium renders usage.html without network: the DOM has the numbers and the SVG bars, and a
    screenshot (in tmp_path, outside the repository) is a non-empty PNG."""
    browser = chromium_binary()
    if not browser:
        pytest.skip("chromium is not installed (hack/setup.sh installs Debian's chromium only when run as root "
                    "with apt-get; install it with: apt-get install chromium)")
    out = tmp_path / "report"
    playbook(lab_env, "playbooks/usage_report.yml", "-e", "maas_usage_report_dir=%s" % out,
             "-e", json.dumps({"maas_usage_products": [traffic["name"]]}))
    page = (out / "usage.html").as_uri()
    home = tmp_path / "chromium-home"  # chromium writes its profile and crash dumps here, not in $HOME
    flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
             "--user-data-dir=%s" % home]
    env = dict(os.environ, HOME=str(home))
    dom = subprocess.run(flags + ["--dump-dom", page], capture_output=True, text=True, timeout=60, env=env,
                         check=False)
    assert dom.returncode == 0, dom.stderr[-2000:]
    bars = re.findall(r'<rect class="bar" data-label="([^"]+)" data-calls="(\d+)"[^>]*width="([\d.]+)"', dom.stdout)
    per_model = {label: int(calls) for label, calls, _w in bars[:8]}
    assert per_model == {op: sum(TRAFFIC[u].get(op, 0) for u in TRAFFIC)
                         for op in ["chat/completions", "completions", "detokenize", "embeddings", "health",
                                    "models", "tokenize", "version"]}
    widths = {label: float(w) for label, _c, w in bars[:8]}
    assert widths["embeddings"] == max(widths.values()) > widths["models"] > widths["health"] == 0
    assert re.search(r'<strong id="total">%d</strong>' % sum(sum(o.values()) for o in TRAFFIC.values()), dom.stdout)
    shot = tmp_path / "usage.png"
    run = subprocess.run(flags + ["--screenshot=%s" % shot, "--window-size=1000,1400", page], capture_output=True,
                         text=True, timeout=60, env=env, check=False)
    assert run.returncode == 0 and shot.exists(), run.stderr[-2000:]
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and int.from_bytes(png[16:20], "big") == 1000
    print(f"\nchromium: usage.html {(out / 'usage.html').stat().st_size} bytes rendered, screenshot {len(png)} bytes")
