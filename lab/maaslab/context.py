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


class Faults:
    """Live fault-injection switches, read from <lab>/faults.json (re-read when it changes).

    Schema (every key optional; see README "Fault injection"):
      {"porta":    {"error_rate": 0.2, "error_status": 503, "delay": 0.5, "drop_rate": 0.1,
                    "path_regex": "^/admin/api/accounts"},
       "model":    {"delay": 2.0, "down": false, "error_rate": 0.0, "error_status": 500},
       "operator": {"delay": 0.5, "fail": {"Product/3scale/tinyllama": "injected failure"}}}
    Any component may add "max_count": N: at most N faults of that component fire (through `fire`)
    until faults.json changes again, so a test can make exactly the first matching call fail.
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
