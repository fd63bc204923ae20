"""A real HTTP server on 127.0.0.1 for the outbound seam and the transports, and a fake DNS.

`receiver` records every request it gets and answers what the test told it to. `dns` is the
one patch of the network stack these tests make: socket.getaddrinfo answers from a table for
made-up names and refuses any other name that is not a numeric address, so nothing here can
reach the outside network (numeric notations are still parsed by the real resolver).
"""
from __future__ import annotations

import datetime as dt
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False  # wait (until the test ends) instead of answering
    unsized: bool = False  # no Content-Length: the body ends when the connection closes


class Receiver:
    def __init__(self, server: ThreadingHTTPServer, scheme: str = "http") -> None:
        self._server = server
        self.port: int = server.server_address[1]
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        self.requests: list[Recorded] = []
        self._replies: list[Reply] = []
        self._default = Reply()
        self._lock = threading.Lock()
        self.release = threading.Event()

    def reply(
        self,
        status: int = 200,
        body: bytes | str = b"",
        headers: dict[str, str] | None = None,
        *,
        hang: bool = False,
        unsized: bool = False,
    ) -> None:
        """Answer every request from now on like this."""
        self._default = Reply(status, body.encode() if isinstance(body, str) else body, dict(headers or {}), hang, unsized)

    def then(self, status: int = 200, body: bytes | str = b"", headers: dict[str, str] | None = None) -> None:
        """Answer the next request like this (queued before the default)."""
        self._replies.append(Reply(status, body.encode() if isinstance(body, str) else body, dict(headers or {})))

    def _record(self, recorded: Recorded) -> Reply:
        with self._lock:
            self.requests.append(recorded)
            return self._replies.pop(0) if self._replies else self._default

    @property
    def last(self) -> Recorded:
        assert self.requests, "the receiver got no request"
        return self.requests[-1]


def _handler(receiver_ref: list[Receiver]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            receiver = receiver_ref[0]
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            reply = receiver._record(
                Recorded(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            )
            if reply.hang:
                receiver.release.wait(timeout=30)
                return
            try:
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                if not reply.unsized and "content-length" not in {k.lower() for k in reply.headers}:
                    self.send_header("Content-Length", str(len(reply.body)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(reply.body)
            except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
                pass  # the client stopped reading on purpose (size cap)
            self.close_connection = True

        do_GET = do_POST = do_PUT = do_DELETE = _serve

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
            pass

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # resets from clients that give up early are expected here


def _start(ssl_context: ssl.SSLContext | None = None) -> Iterator[Receiver]:
    ref: list[Receiver] = []
    server = _Server(("127.0.0.1", 0), _handler(ref))
    if ssl_context is not None:
        server.socket = ssl_context.wrap_socket(server.socket, server_side=True)
    receiver = Receiver(server, "https" if ssl_context else "http")
    ref.append(receiver)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.release.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A plain-http receiver on 127.0.0.1 (not allow-listed: tests opt in with `allow_local`)."""
    yield from _start()


@pytest.fixture
def allow_local(settings) -> None:
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.1/32"]


class FakeDNS:
    def __init__(self, real: object) -> None:
        self._real = real
        self.table: dict[str, list[list[str]]] = {}
        self.queries: list[str] = []

    def add(self, name: str, *answers: str | list[str]) -> None:
        """Each call of getaddrinfo(name) takes the next answer; the last one repeats."""
        self.table[name.lower()] = [[a] if isinstance(a, str) else list(a) for a in answers]

    def getaddrinfo(self, host, port, family=0, type=0, proto=0, flags=0):  # noqa: A002 - socket's signature
        name = host.decode() if isinstance(host, bytes) else str(host)
        self.queries.append(name)
        answers = self.table.get(name.lower())
        if answers is None and name.lower() == "localhost":
            return self._real(host, port, family, type, proto, flags)  # /etc/hosts, no network
        if answers is None:
            # Numeric notations only: anything else would be a real DNS lookup.
            return self._real(host, port, family, type, proto, flags | socket.AI_NUMERICHOST)
        current = answers.pop(0) if len(answers) > 1 else answers[0]
        results = []
        for address in current:
            fam = socket.AF_INET6 if ":" in address else socket.AF_INET
            sockaddr = (address, int(port or 0), 0, 0) if fam == socket.AF_INET6 else (address, int(port or 0))
            results.append((fam, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", sockaddr))
        return results


@pytest.fixture(autouse=True)
def dns(monkeypatch) -> FakeDNS:
    fake = FakeDNS(socket.getaddrinfo)
    monkeypatch.setattr(socket, "getaddrinfo", fake.getaddrinfo)
    return fake


# --- TLS ------------------------------------------------------------------------------------


@dataclass
class TlsReceiver:
    receiver: Receiver
    ca_file: Path
    hostname: str


def _self_signed(hostname: str, directory: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file = directory / "cert.pem"
    key_file = directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_file, key_file


@pytest.fixture
def tls_receiver(tmp_path, settings) -> Iterator[TlsReceiver]:
    """An https receiver whose certificate names receiver.test, trusted through OUTBOUND_CA_BUNDLE."""
    hostname = "receiver.test"
    cert_file, key_file = _self_signed(hostname, tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    settings.OUTBOUND_CA_BUNDLE = str(cert_file)
    for receiver in _start(context):
        yield TlsReceiver(receiver, cert_file, hostname)
