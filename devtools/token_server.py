"""A minimal Docker-registry token server, so token auth is tested against the real registry.

Distribution only verifies bearer tokens; something else must issue them. This module is that
something: just enough of the token protocol (GET with Basic auth, POST with password or refresh
grants) for promoter's authn code to be exercised end to end, with every request recorded so a
test can assert what the client actually asked for.

Key identification: tokens carry the signing certificate in the JWT header ``x5c`` by default.
Distribution 2.8 verifies that chain against ``auth.token.rootcertbundle`` (the self-signed cert
itself is the root). The alternative ``kid`` mode puts libtrust's key id of the signing key in
the header instead; Distribution 2.8 looks that up among the public keys of the root bundle.
Both are verified by the harness tests.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from devtools.loopback_http import IDLE_TIMEOUT_S, LoopbackServer, LoopbackService

DEFAULT_SERVICE = "promoter-test-registry"
DEFAULT_ISSUER = "promoter-test-token-issuer"

KeyIdMode = Literal["x5c", "kid"]


def b64url(data: bytes) -> str:
    """Encode as unpadded base64url, the JWS encoding of every token part."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Decode unpadded base64url, so tests can look inside tokens."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def libtrust_key_id(public_key: rsa.RSAPublicKey) -> str:
    """Compute docker/libtrust's key id, which Distribution matches against a JWT ``kid``.

    libtrust hashes the PKIX DER of the public key, keeps 240 bits, base32-encodes them and
    groups the 48 characters in fours separated by colons.
    """
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    encoded = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode("ascii").rstrip("=")
    return ":".join(encoded[i : i + 4] for i in range(0, len(encoded), 4))


def parse_scope(scope: str) -> dict[str, Any] | None:
    """Parse ``type:name:action,action`` into an access entry, or None if malformed.

    The name is everything between the first and the last colon, so a name that itself holds a
    colon (never valid for repositories, but seen in the wild for other types) is kept whole.
    """
    kind, sep, rest = scope.partition(":")
    name, sep2, actions = rest.rpartition(":")
    if not (sep and sep2 and kind and name):
        return None
    return {"type": kind, "name": name, "actions": [a for a in actions.split(",") if a]}


@dataclass(frozen=True)
class TokenRequest:
    """One request the token server answered, kept for test assertions.

    Attributes:
        method: HTTP method (GET or POST).
        path: Request path without the query string.
        query: Parsed query string.
        form: Parsed form body for POST (empty for GET).
        basic_auth: None when no Basic credentials were sent, else whether they were valid.
        status: HTTP status answered.
        granted: The access list put in the token (empty when nothing was granted).
    """

    method: str
    path: str
    query: dict[str, list[str]]
    form: dict[str, list[str]]
    basic_auth: bool | None
    status: int
    granted: list[dict[str, Any]] = field(default_factory=list)

    @property
    def basic_auth_valid(self) -> bool:
        """True only when valid Basic credentials were presented."""
        return self.basic_auth is True


class TokenServer(LoopbackService):
    """Issues RS256 JWTs that a Distribution registry configured with ``cert_pem`` accepts.

    Valid credentials get every action they ask for; anonymous callers get a token with no
    access at all, which makes the registry answer 401 for anything but ``/v2/``. That mirrors
    a private registry and lets tests prove that promoter sends credentials where needed.

    Args:
        username: The one user that exists.
        password: Its password; random when not given.
        service: Expected ``service`` (becomes the JWT ``aud``).
        issuer: JWT ``iss``; the registry must be configured with the same value.
        identity_token: The refresh token accepted by ``grant_type=refresh_token`` and handed
            out for ``access_type=offline`` / ``offline_token=true`` requests.
        key_id: How the signing key is identified in the JWT header (see module docstring).
        expires_in: Token lifetime in seconds, shortened by tests that exercise expiry.
    """

    def __init__(
        self,
        *,
        username: str = "tester",
        password: str | None = None,
        service: str = DEFAULT_SERVICE,
        issuer: str = DEFAULT_ISSUER,
        identity_token: str | None = None,
        key_id: KeyIdMode = "x5c",
        expires_in: int = 300,
    ) -> None:
        self.username = username
        self.password = password if password is not None else secrets.token_urlsafe(12)
        self.service = service
        self.issuer = issuer
        self.identity_token = identity_token
        self.key_id: KeyIdMode = key_id
        self.expires_in = expires_in
        self.requests: list[TokenRequest] = []
        #: Repositories no token grants access to, as Docker Hub answers for one that does not
        #: exist: the token comes back empty and the registry says insufficient_scope.
        self.hidden: set[str] = set()
        self._lock = threading.Lock()
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._cert = _self_signed_cert(self._key)
        self._server = LoopbackServer(_TokenHandler, self)

    # lifecycle -------------------------------------------------------------------------------

    # addresses and key material ---------------------------------------------------------------

    @property
    def realm(self) -> str:
        """The token endpoint, as the registry's ``auth.token.realm``."""
        return f"{self.url}/token"

    @property
    def cert_pem(self) -> bytes:
        """PEM of the self-signed signing certificate (the registry's root bundle)."""
        return self._cert.public_bytes(serialization.Encoding.PEM)

    def write_cert_bundle(self, path: Path) -> Path:
        """Write ``cert_pem`` to ``path`` for ``auth.token.rootcertbundle`` and return it."""
        path.write_bytes(self.cert_pem)
        return path

    # tokens ------------------------------------------------------------------------------------

    def mint(
        self,
        access: list[dict[str, Any]],
        *,
        subject: str | None = None,
        expires_in: int | None = None,
        audience: str | None = None,
    ) -> str:
        """Sign a token granting ``access``, bypassing the HTTP flow.

        Args:
            access: Entries like ``{"type": "repository", "name": "a/b", "actions": ["pull"]}``.
            subject: JWT ``sub``; defaults to the configured user.
            expires_in: Lifetime in seconds (negative values mint already-expired tokens).
            audience: JWT ``aud``; defaults to the configured service.

        Returns:
            The compact JWS string.
        """
        now = int(time.time())
        ttl = self.expires_in if expires_in is None else expires_in
        claims = {
            "iss": self.issuer,
            "sub": self.username if subject is None else subject,
            "aud": self.service if audience is None else audience,
            "exp": now + ttl,
            # A little slack before "now" so a registry whose clock is a hair behind accepts it.
            "nbf": now - 5,
            "iat": now,
            "jti": secrets.token_hex(16),
            "access": access,
        }
        header: dict[str, Any] = {"typ": "JWT", "alg": "RS256"}
        if self.key_id == "x5c":
            der = self._cert.public_bytes(serialization.Encoding.DER)
            header["x5c"] = [base64.b64encode(der).decode("ascii")]
        else:
            header["kid"] = libtrust_key_id(self._key.public_key())
        signing_input = (
            b64url(_compact_json(header)) + "." + b64url(_compact_json(claims))
        ).encode("ascii")
        signature = self._key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        return signing_input.decode("ascii") + "." + b64url(signature)

    def check_basic(self, header: str | None) -> bool | None:
        """Classify an Authorization header: None if not Basic, else whether it matches."""
        if not header or not header.lower().startswith("basic "):
            return None
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return False
        user, _, pw = decoded.partition(":")
        return _same(user, self.username) and _same(pw, self.password)

    def record(self, entry: TokenRequest) -> None:
        """Append a request record; handlers run on many threads."""
        with self._lock:
            self.requests.append(entry)


def _same(presented: str, expected: str) -> bool:
    """Constant-time string comparison that, unlike compare_digest on str, accepts non-ASCII."""
    return secrets.compare_digest(presented.encode("utf-8"), expected.encode("utf-8"))


def _compact_json(value: object) -> bytes:
    """Serialise JSON without whitespace, as JWS producers conventionally do."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode("utf-8")


def _self_signed_cert(key: rsa.RSAPrivateKey) -> x509.Certificate:
    """Make the signing certificate; being self-signed it is its own root for x5c checks."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "promoter test token signer")])
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )


class _TokenHandler(BaseHTTPRequestHandler):
    """Serves ``/token`` for GET and POST on behalf of ``server.owner`` (a TokenServer)."""

    protocol_version = "HTTP/1.1"
    timeout = IDLE_TIMEOUT_S
    server_version = "devtools-token-server"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Keep test output quiet; the request list is the log."""

    @property
    def _owner(self) -> TokenServer:
        owner: TokenServer = self.server.owner  # type: ignore[attr-defined]
        return owner

    def do_GET(self) -> None:
        """Docker's classic flow: scopes in the query, optional Basic credentials."""
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        basic = self._owner.check_basic(self.headers.get("Authorization"))
        if parts.path != "/token":
            self._finish(404, {"error": "not_found"}, form={}, basic=basic)
            return
        if basic is False:
            self._finish(401, {"error": "invalid_grant"}, form={}, basic=basic)
            return
        granted = _grant(
            query.get("scope", []), authenticated=basic is True, hidden=self._owner.hidden
        )
        offline = query.get("offline_token", [""])[0] == "true"
        body = self._token_body(granted, refresh=offline and basic is True)
        self._finish(200, body, form={}, basic=basic, granted=granted)

    def do_POST(self) -> None:
        """OAuth2-style flow: form body with a password or refresh_token grant."""
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        form = parse_qs(raw.decode("utf-8", "replace"))
        basic = self._owner.check_basic(self.headers.get("Authorization"))
        if parts.path != "/token":
            self._finish(404, {"error": "not_found"}, form=form, basic=basic)
            return
        owner = self._owner
        grant_type = form.get("grant_type", [""])[0]
        if grant_type == "password":
            ok = _same(form.get("username", [""])[0], owner.username) and _same(
                form.get("password", [""])[0], owner.password
            )
        elif grant_type == "refresh_token":
            presented = form.get("refresh_token", [""])[0]
            ok = owner.identity_token is not None and _same(presented, owner.identity_token)
        else:
            body = {"error": "unsupported_grant_type"}
            self._finish(400, body, form=form, basic=basic)
            return
        if not ok:
            self._finish(401, {"error": "invalid_grant"}, form=form, basic=basic)
            return
        granted = _grant(form.get("scope", []), authenticated=True, hidden=owner.hidden)
        offline = form.get("access_type", [""])[0] == "offline"
        body = self._token_body(granted, refresh=offline or grant_type == "refresh_token")
        self._finish(200, body, form=form, basic=basic, granted=granted)

    def _token_body(self, granted: list[dict[str, Any]], *, refresh: bool) -> dict[str, Any]:
        owner = self._owner
        token = owner.mint(granted)
        body: dict[str, Any] = {
            "token": token,
            "access_token": token,
            "expires_in": owner.expires_in,
            "issued_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        if refresh and owner.identity_token is not None:
            body["refresh_token"] = owner.identity_token
        return body

    def _finish(
        self,
        status: int,
        body: dict[str, Any],
        *,
        form: dict[str, list[str]],
        basic: bool | None,
        granted: list[dict[str, Any]] | None = None,
    ) -> None:
        """Record the exchange, then send ``body`` as JSON with ``status``."""
        parts = urlsplit(self.path)
        self._owner.record(
            TokenRequest(
                method=self.command,
                path=parts.path,
                query=parse_qs(parts.query),
                form=form,
                basic_auth=basic,
                status=status,
                granted=list(granted or []),
            )
        )
        payload = json.dumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        if status == 401:
            self.send_header("WWW-Authenticate", 'Basic realm="devtools-token-server"')
        self.end_headers()
        self.wfile.write(payload)


def _grant(
    scopes: list[str], *, authenticated: bool, hidden: set[str] | frozenset[str] = frozenset()
) -> list[dict[str, Any]]:
    """Turn requested scopes into the access list: everything if authenticated (but the hidden
    repositories), else nothing.

    Scopes may repeat as parameters or be space-separated within one (POST form style).
    """
    if not authenticated:
        return []
    granted: list[dict[str, Any]] = []
    for value in scopes:
        for scope in value.split():
            entry = parse_scope(scope)
            if entry is not None and entry.get("name") not in hidden:
                granted.append(entry)
    return granted
