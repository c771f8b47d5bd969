"""Unit-test plumbing: import the collection as ``ansible_collections.maas.threescale`` and run
modules in-process against a small scripted or stateful admin API on 127.0.0.1 (no network)."""
from __future__ import annotations

import atexit
import io
import json
import shutil
import sys
import tempfile
import threading
from contextlib import redirect_stdout
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

REPO = Path(__file__).resolve().parents[2]


def _make_importable(tmp_root: Path) -> None:
    """The repo root IS the collection: expose it under an ansible_collections/ tree."""
    target = tmp_root / "ansible_collections" / "maas" / "threescale"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(REPO, target_is_directory=True)
    # kubernetes.core, whose authentication and client the collection's Kubernetes connection reuses
    core = REPO / ".venv" / "collections" / "ansible_collections" / "kubernetes" / "core"
    link = tmp_root / "ansible_collections" / "kubernetes" / "core"
    if core.is_dir() and not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(core, target_is_directory=True)
    if str(tmp_root) not in sys.path:
        sys.path.insert(0, str(tmp_root))


_ROOT = Path(tempfile.mkdtemp(prefix="maas-unit-"))
_make_importable(_ROOT)
atexit.register(shutil.rmtree, _ROOT, True)  # removes the symlink only, never what it points to


class Recorder(BaseHTTPRequestHandler):
    """Hands each request to ``server.app(method, path, query, form, headers)`` and records it."""

    disable_nagle_algorithm = True  # headers and body go out in two writes: avoid 40 ms delayed-ACK stalls

    def log_message(self, *args):  # keep test output clean
        pass

    def _handle(self):
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode() if length else ""
        form = {k: v[-1] for k, v in parse_qs(raw, keep_blank_values=True).items()}
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        self.server.log.append(dict(method=self.command, path=parts.path, url=self.path, query=query, form=form,
                                    headers=dict(self.headers)))
        status, body, headers = self.server.app(self.command, parts.path, query, form, self.headers)
        if status is None:  # drop the connection without answering
            self.close_connection = True
            self.connection.shutdown(2)
            return
        data = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # clients that time out or hang up on purpose are part of the tests


class FakeServer:
    def __init__(self, app):
        self.httpd = _QuietServer(("127.0.0.1", 0), Recorder)
        self.httpd.app = app
        self.httpd.log = []
        self.url = "http://127.0.0.1:%d" % self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    @property
    def log(self):
        return self.httpd.log

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve():
    """``serve(app)`` starts a server on a free port; every server is stopped after the test."""
    servers = []

    def start(app):
        servers.append(FakeServer(app))
        return servers[-1]

    yield start
    for s in servers:
        s.stop()


def _patch_module_args():
    """ansible-core's own helper (2.19+), else the same done by hand for older releases (the compat stage
    runs these tests on the oldest ansible-core the collection claims, hack/compat.sh)."""
    try:
        from ansible.module_utils.testing import patch_module_args
        return patch_module_args
    except ImportError:
        import contextlib
        from ansible.module_utils import basic

        @contextlib.contextmanager
        def patch(args):
            old = basic._ANSIBLE_ARGS
            basic._ANSIBLE_ARGS = json.dumps({"ANSIBLE_MODULE_ARGS": args}).encode()
            try:
                yield
            finally:
                basic._ANSIBLE_ARGS = old
        return patch


def _run_module(module, args):
    patch_module_args = _patch_module_args()

    out = io.StringIO()
    with patch_module_args(args), redirect_stdout(out), pytest.raises(SystemExit):
        module.main()
    return json.loads(out.getvalue())


@pytest.fixture
def run_module():
    """``run_module(module, args)`` runs ``module.main()`` as Ansible would; returns the JSON result."""
    return _run_module
