"""Shared plumbing of the lab process: directory, ports, TLS, credentials, fault switches.

Every component (kube, operator, porta, apicast, model) receives one LabContext. Nothing here
talks to another component: components talk to each other over HTTP only, like the real ones.
"""
from __future__ import annotations

import datetime
import ipaddress
import json
import logging
import os
import random
import re
import secrets
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LOG = logging.getLogger("maaslab")


def free_port(preferred: int | None = None) -> int:
    """Return a free loopback TCP port; `preferred` if it is still free (resume keeps URLs)."""
    if preferred:
        with socket.socket() as s:
            # same option as the listeners (allow_reuse_address): a port whose old connections are
            # in TIME_WAIT after a restart is still ours to take
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", preferred))
                return preferred
            except OSError:
                pass
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def now_iso() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class TLSFiles:
    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path


def ensure_tls(directory: Path) -> TLSFiles:
    """Create (once) a lab CA and a server certificate for 127.0.0.1 / localhost signed by it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    directory.mkdir(parents=True, exist_ok=True)
    files = TLSFiles(directory / "ca.crt", directory / "ca.key", directory / "server.crt", directory / "server.key")
    if all(p.exists() for p in (files.ca_cert, files.ca_key, files.server_cert, files.server_key)):
        return files
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "maaslab CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "maaslab")]))
        .issuer_name(ca_name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=825))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    nokey = serialization.NoEncryption()
    pkcs8 = serialization.PrivateFormat.PKCS8
    files.ca_key.write_bytes(ca_key.private_bytes(pem, pkcs8, nokey))
    files.ca_cert.write_bytes(ca.public_bytes(pem))
    files.server_key.write_bytes(key.private_bytes(pem, pkcs8, nokey))
    files.server_cert.write_bytes(cert.public_bytes(pem))
    for p in (files.ca_key, files.server_key):
        os.chmod(p, 0o600)
    return files


# The single table of fault switches: component -> switch -> (type, meaning). Used by
# `python -m maaslab fault` (an unknown component or switch is refused, exit 2) and by the docs.
FAULT_SWITCHES: dict[str, dict[str, tuple[str, str]]] = {
    "porta": {
        "error_rate": ("rate", "answer an error instead of processing the request (0..1)"),
        "error_status": ("int", "status of those errors (default 503, router-style HTML page)"),
        "delay": ("seconds", "sleep before processing every matching request"),
        "drop_rate": ("rate", "close the connection unanswered, nothing processed (0..1)"),
        "lost_response_rate": ("rate", "process and commit the request, then close the connection unanswered (0..1)"),
        "path_regex": ("regex", "only requests whose path matches"),
        "verbs": ("list", "only these HTTP methods, e.g. [\"POST\"]"),
        "max_count": ("int", "at most N injected errors/drops/lost responses until the switches change"),
        "exclude_operator": ("bool", "spare the operator's calls (User-Agent Go-http-client/; default false)"),
    },
    "kube": {
        "error_rate": ("rate", "answer an error Status instead of processing the request (0..1)"),
        "error_status": ("int", "429 TooManyRequests (+Retry-After), 503 ServiceUnavailable or 500 InternalError (default 503)"),
        "retry_after": ("int", "Retry-After seconds of 429/503 errors (default 1)"),
        "drop_rate": ("rate", "close the connection unanswered, nothing processed (0..1)"),
        "path_regex": ("regex", "only requests whose path matches"),
        "verbs": ("list", "only these HTTP methods, e.g. [\"POST\",\"PATCH\"]"),
        "watch_close_after": ("seconds", "the server ends every watch stream cleanly after that long"),
        "max_count": ("int", "at most N injected errors/drops until the switches change"),
        "exclude_operator": ("bool", "spare requests bearing the operator's service-account token (default true)"),
    },
    "model": {
        "delay": ("seconds", "sleep before answering"),
        "down": ("bool", "close every connection unanswered (APIcast answers 502)"),
        "error_rate": ("rate", "answer a vLLM-shaped error (0..1)"),
        "error_status": ("int", "status of those errors (default 500)"),
    },
    "kserve": {
        "down": ("list", 'InferenceServices ["namespace/name", ...] whose model server closes every connection unanswered'),
        "delay": ("object", '{"namespace/name": seconds}: that model server sleeps before answering'),
    },
}


def check_fault_switches(component: str, switches: dict[str, Any]) -> list[str]:
    """Problems with `switches` for `component` (empty when valid): unknown names, wrong types."""
    if component not in FAULT_SWITCHES:
        return [f"unknown component {component!r}; valid: {', '.join(FAULT_SWITCHES)}"]
    valid = FAULT_SWITCHES[component]
    errors = []
    for key, value in switches.items():
        if key not in valid:
            errors.append(f"unknown {component} switch {key!r}; valid: {', '.join(valid)}")
            continue
        kind = valid[key][0]
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        ok = {"rate": number and 0 <= value <= 1, "seconds": number and value >= 0,
              "int": isinstance(value, int) and not isinstance(value, bool) and value >= 0,
              "bool": isinstance(value, bool), "list": isinstance(value, list) and all(isinstance(v, str) for v in value),
              "object": isinstance(value, dict)}.get(kind, True)
        if kind == "regex":
            try:
                re.compile(str(value))
            except re.error as e:
                ok, kind = False, f"regex ({e})"
        if not ok:
            errors.append(f"{component} switch {key}={json.dumps(value)} is not a valid {kind}")
    return errors


class Faults:
    """Live fault-injection switches, read from <lab>/faults.json (re-read when it changes).

    Schema: {"<component>": {"<switch>": value, ...}, ...} with the components and switches of
    FAULT_SWITCHES (README "Fault injection"). "max_count": N limits a component to N faults
    (through `fire`) until faults.json changes again, so a test can make exactly the first matching
    call fail. Each component counts the faults it injected in its own lab stats endpoint.
    """

    def __init__(self, path: Path):
        self.path = path
        self._mtime = None
        self._data: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._rng = random.Random()
        self._fired: dict[str, int] = {}

    def get(self, component: str) -> dict[str, Any]:
        with self._lock:
            try:
                mtime = self.path.stat().st_mtime_ns
            except FileNotFoundError:
                self._data, self._mtime = {}, None
                return {}
            if mtime != self._mtime:
                self._fired = {}
                try:
                    self._data = json.loads(self.path.read_text() or "{}")
                except ValueError:
                    LOG.warning("faults.json is not valid JSON; ignoring it")
                    self._data = {}
                self._mtime = mtime
            return dict(self._data.get(component) or {})

    def chance(self, rate: float) -> bool:
        return rate > 0 and self._rng.random() < rate

    def fire(self, component: str, rate: float) -> bool:
        """`chance(rate)`, within the component's `max_count` budget (counted since the switches last changed)."""
        limit = self.get(component).get("max_count")
        with self._lock:
            if limit is not None and self._fired.get(component, 0) >= int(limit):
                return False
            if not (rate > 0 and self._rng.random() < rate):
                return False
            self._fired[component] = self._fired.get(component, 0) + 1
            return True


@dataclass
class LabContext:
    """What every component gets. `ports` and `settings` persist in <dir>/lab.json."""

    dir: Path
    settings: dict[str, Any] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    urls: dict[str, str] = field(default_factory=dict)
    tls: TLSFiles | None = None
    faults: Faults | None = None
    stopping: threading.Event = field(default_factory=threading.Event)

    @classmethod
    def create(cls, directory: Path, settings: dict[str, Any] | None = None,
               ports: dict[str, int] | None = None) -> "LabContext":
        """A context on `directory` with its TLS files (created once) and live fault switches."""
        ctx = cls(dir=directory, settings=dict(settings or {}), ports=dict(ports or {}))
        ctx.tls = ensure_tls(directory / "tls")
        ctx.faults = Faults(directory / "faults.json")
        return ctx

    def port(self, name: str) -> int:
        """A stable port for a named listener: the one used last time if still free."""
        p = free_port(self.ports.get(name))
        self.ports[name] = p
        return p

    def model_endpoints(self) -> set[tuple[str, int]]:
        """(host, port) of every lab model server: the lab's own (`urls["model"]`) and each port the
        KServe stand-in holds for an InferenceService (`ports["kserve/<ns>/<name>"]`, kept while the
        server is stopped). Porta accepts these loopback private endpoints, and no other."""
        out = set()
        model = self.urls.get("model")
        if model:
            host, _, port = model.split("://", 1)[1].partition(":")
            out.add((host, int(port)))
        out.update(("127.0.0.1", p) for k, p in list(self.ports.items()) if k.startswith("kserve/"))
        return out

    def secret(self, name: str, nbytes: int = 16) -> str:
        """A random credential created once per lab dir and kept in settings (lab.json is 0600)."""
        creds = self.settings.setdefault("credentials", {})
        if name not in creds:
            creds[name] = secrets.token_hex(nbytes)
        return creds[name]

    def server_ssl_context(self):
        import ssl
        assert self.tls is not None
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(self.tls.server_cert), str(self.tls.server_key))
        return ctx

    def client_ssl_context(self):
        import ssl
        assert self.tls is not None
        return ssl.create_default_context(cafile=str(self.tls.ca_cert))
