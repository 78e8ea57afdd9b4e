"""A Docker token service on 127.0.0.1 and the real registry delegating auth to it (``Bearer`` challenges).

The token protocol: https://distribution.github.io/distribution/spec/auth/token/ and ``jwt.md``
beside it: ``GET realm?service=S&scope=repository:NAME:pull,push`` with HTTP Basic credentials,
answered with a JWT the registry verifies through the ``x5c`` certificate chain against its
``rootcertbundle``. The registry is the Debian ``docker-registry`` (``support/registry_process.py``).
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import http.server
import json
import os
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from support.registry_process import Registry, start_registry, stop_registry

SERVICE = "faas-test-registry"
ISSUER = "faas-test-token-issuer"
TOKEN_SECONDS = 300


@dataclass(frozen=True)
class TokenRequest:
    """One request the token service received, as it arrived."""

    target: str  # request target: path and query string
    username: str | None  # from HTTP Basic credentials, None when absent
    scopes: tuple[str, ...]
    status: int


@dataclass
class TokenService:
    """A Docker token service on 127.0.0.1: ``username`` gets every action asked, ``readers`` only ``pull``."""

    realm: str
    username: str
    password: str
    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate
    readers: dict[str, str] = field(default_factory=dict)  # username -> password
    requests: list[TokenRequest] = field(default_factory=list)

    def issue(self, username: str, scopes: list[str]) -> str:
        """A JWT (ES256, ``x5c`` header) granting ``scopes`` (``type:name:action,action``) to ``username``.

        As the spec allows, a token service grants the part of a scope the user may have:
        readers get ``pull`` only.
        """
        access = []
        for scope in scopes:
            kind, rest = scope.split(":", 1)
            name, actions = rest.rsplit(":", 1)
            allowed = [a for a in actions.split(",") if a and (username == self.username or a == "pull")]
            access.append({"type": kind, "name": name, "actions": allowed})
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "sub": username,
            "aud": SERVICE,
            "exp": now + TOKEN_SECONDS,
            "nbf": now - 5,
            "iat": now,
            "jti": uuid.uuid4().hex,
            "access": access,
        }
        der = self.certificate.public_bytes(serialization.Encoding.DER)
        return jwt.encode(claims, self.key, algorithm="ES256", headers={"x5c": [base64.b64encode(der).decode()]})

    def token(self, scope: str) -> str:
        """Fetch a token over HTTP as any client would (independent of the code under test)."""
        answer = httpx.get(
            self.realm, params={"service": SERVICE, "scope": scope}, auth=(self.username, self.password), timeout=5
        )
        answer.raise_for_status()
        return answer.json()["token"]


def _self_signed(key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ISSUER)])
    now = datetime.datetime.now(datetime.timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )


def _handler(service: TokenService) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # quiet: the test keeps its own log
            pass

        def _credentials(self) -> tuple[str | None, str | None]:
            header = self.headers.get("Authorization", "")
            if not header.lower().startswith("basic "):
                return None, None
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            return user, password

        def _answer(self, status: int, body: dict, user: str | None, scopes: list[str]) -> None:
            service.requests.append(TokenRequest(self.path, user, tuple(scopes), status))
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if status == 401:
                self.send_header("WWW-Authenticate", 'Basic realm="faas-test-token"')
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # http.server's naming
            url = urllib.parse.urlsplit(self.path)
            query = urllib.parse.parse_qs(url.query)
            scopes = query.get("scope", [])
            user, password = self._credentials()
            if url.path != "/token" or query.get("service") != [SERVICE]:
                self._answer(
                    400, {"errors": [{"code": "UNSUPPORTED", "message": "unknown path or service"}]}, user, scopes
                )
            elif (user, password) != (service.username, service.password) and (
                user not in service.readers or service.readers[user] != password
            ):
                self._answer(401, {"errors": [{"code": "UNAUTHORIZED", "message": "bad credentials"}]}, user, scopes)
            else:
                token = service.issue(user, scopes)
                self._answer(200, {"token": token, "access_token": token, "expires_in": TOKEN_SECONDS}, user, scopes)

        def do_POST(self) -> None:
            # OAuth2 password grant (Helm tries it first): not offered. 404 is the spec's
            # signal to fall back to GET; a 5xx would make Go clients retry for seconds.
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self._answer(404, {"errors": [{"code": "UNSUPPORTED", "message": "use GET"}]}, None, [])

    return Handler


@contextlib.contextmanager
def token_registry(root: Path) -> Iterator[tuple[Registry, TokenService]]:
    """A token service and a registry trusting it, both on 127.0.0.1, stopped on exit; user ``ci``, random password.

    ``root`` (an empty directory) holds the registry's storage and the issuer certificate.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = _self_signed(key)
    bundle = root / "token-issuer.pem"
    bundle.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))

    password = "pw-" + os.urandom(9).hex()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    service = TokenService(f"http://127.0.0.1:{server.server_address[1]}/token", "ci", password, key, certificate)
    server.RequestHandlerClass = _handler(service)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        auth = {"token": {"realm": service.realm, "service": SERVICE, "issuer": ISSUER, "rootcertbundle": str(bundle)}}
        proc, registry = start_registry(root, "ci", password, auth=auth)
        try:
            yield registry, service
        finally:
            stop_registry(proc)
    finally:
        server.shutdown()
        server.server_close()
