"""A fake of the AWS side of ECR, and an ECR-like registry proxy, for testing token renewal.

Renewal can only be tested with tokens that change and expire within a test's time. moto cannot
give those: its ``get_authorization_token`` (``moto/ecr/responses.py``, moto 5.2.5) answers the same
password ``<registryId>-auth-token`` on every call, with a fixed ``expiresAt`` of 2015-01-01, so a
token neither changes nor has a lifetime a test could shorten. Hence two small servers here, both on
127.0.0.1 only:

* :class:`FakeAwsApi` speaks what boto3 sends for ECR ``GetAuthorizationToken`` (JSON 1.1, header
  ``X-Amz-Target: AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken``) and STS
  ``GetCallerIdentity`` (query protocol, XML answer). Every token call hands out a NEW random
  password with a configurable lifetime (``expiresAt`` in epoch seconds, as ECR's JSON has it) and is
  counted. Signatures are not checked; a request without one is refused, as AWS would.
* :class:`EcrRegistryProxy` stands in front of a real Distribution registry started without auth and
  makes it answer like ECR's registry API: every request needs ``Authorization: Basic
  base64(AWS:<password>)`` for a password the fake issued. No credential: 401 with ECR's
  ``WWW-Authenticate: Basic realm="https://<host>/",service="ecr.amazonaws.com"``; an unknown one:
  403 ``DENIED: Not Authorized``; a token past its life: 403 ``DENIED: Your authorization token has
  expired. Reauthenticate and try again.`` (ECR's wording). It can also refuse tokens a set number of
  seconds after issue whatever their declared ``expiresAt`` (the registry disagreeing with the
  client's idea of the lifetime), refuse every token (an identity without permission), and drip blob
  downloads in small delayed pieces so that a copy outlives a token. Everything else is forwarded by
  :class:`devtools.fault_proxy.FaultProxy` (bodies streamed both ways, ``Location`` rewritten to the
  proxy), whose fault rules keep working too.

Every socket has a timeout, request bodies are read by their declared length, and the proxy works on
at most ``max_requests`` requests at once.
"""

from __future__ import annotations

import base64
import binascii
import http.client
import json
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

from devtools.fault_proxy import FaultProxy, _ProxyHandler
from devtools.loopback_http import IDLE_TIMEOUT_S, LoopbackServer, LoopbackService

#: The user name ECR's registry API takes with a token.
ECR_USERNAME = "AWS"
#: What real ECR tokens live: 12 hours.
TWELVE_HOURS_S = 12 * 3600.0
ECR_TARGET = "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken"
STS_NAMESPACE = "https://sts.amazonaws.com/doc/2011-06-15/"
DEFAULT_ARN = "arn:aws:iam::111111111111:user/promoter-test"
#: ECR's answers to refused registry requests.
NOT_AUTHORIZED = b'{"errors":[{"code":"DENIED","message":"Not Authorized"}]}'
EXPIRED = (
    b'{"errors":[{"code":"DENIED","message":"Your authorization token has expired. '
    b'Reauthenticate and try again."}]}'
)

_MAX_API_BODY = 64 * 1024
_SIGV4_SCOPE = re.compile(r"Credential=[^/,\s]+/\d{8}/([a-z0-9-]+)/([a-z0-9-]+)/aws4_request")
_BLOB_DOWNLOAD = re.compile(r"^/v2/.+/blobs/[a-z0-9]+:[a-f0-9]+(?:\?|$)")
_SLOT_WAIT_S = 30.0


# -- the AWS API -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class IssuedToken:
    """One password the fake handed out.

    Attributes:
        password: the password (the part after ``AWS:``).
        account: the registry id (account) it was asked for.
        issued_at: ``time.monotonic()`` when it was issued.
        lifetime: the seconds its ``expiresAt`` declared.
    """

    password: str
    account: str
    issued_at: float
    lifetime: float


class FakeAwsApi(LoopbackService):
    """ECR ``GetAuthorizationToken`` and STS ``GetCallerIdentity`` on 127.0.0.1, counting calls.

    Args:
        token_lifetime: seconds until each new token's ``expiresAt``; may be changed between calls.
        arn: what GetCallerIdentity answers.
        clock: monotonic seconds, shared with the proxy's expiry checks.
    """

    def __init__(
        self,
        *,
        token_lifetime: float = TWELVE_HOURS_S,
        arn: str = DEFAULT_ARN,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.token_lifetime = token_lifetime
        self.arn = arn
        self.clock = clock
        self.identity_calls = 0
        self._issued: dict[str, IssuedToken] = {}
        self._order: list[IssuedToken] = []
        self._lock = threading.Lock()
        self._server = LoopbackServer(_ApiHandler, self)

    def issue(self, account: str) -> tuple[str, float]:
        """A new password for ``account``; returns it with its ``expiresAt`` (epoch seconds)."""
        password = secrets.token_urlsafe(48)
        with self._lock:
            lifetime = self.token_lifetime
            token = IssuedToken(password, account, self.clock(), lifetime)
            self._issued[password] = token
            self._order.append(token)
        return password, time.time() + lifetime

    def issued(self, password: str) -> IssuedToken | None:
        """The token with this password, if the fake issued it."""
        with self._lock:
            return self._issued.get(password)

    def tokens(self, account: str | None = None) -> list[IssuedToken]:
        """The tokens issued so far (for ``account`` only, when given), oldest first."""
        with self._lock:
            return [t for t in self._order if account is None or t.account == account]

    def secrets(self) -> list[str]:
        """Every form of every token issued (password, base64 ``AWS:password``), for leak checks."""
        found: list[str] = []
        for token in self.tokens():
            basic = base64.b64encode(f"{ECR_USERNAME}:{token.password}".encode()).decode()
            found += [token.password, basic]
        return found

    def count_identity_call(self) -> None:
        """Record one GetCallerIdentity call."""
        with self._lock:
            self.identity_calls += 1


class _ApiHandler(BaseHTTPRequestHandler):
    """POST / with either an ECR JSON 1.1 target or an STS query body."""

    protocol_version = "HTTP/1.1"
    timeout = IDLE_TIMEOUT_S
    server_version = "devtools-fake-aws"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Quiet: the fake's counters are the log."""

    @property
    def _owner(self) -> FakeAwsApi:
        owner: FakeAwsApi = self.server.owner  # type: ignore[attr-defined]
        return owner

    def do_POST(self) -> None:
        """Dispatch on X-Amz-Target (JSON protocols) or Action (query protocol)."""
        body = self._body()
        if body is None:
            return
        region, service = self._scope()
        if service is None:
            self._json(403, {"__type": "MissingAuthenticationTokenException"})
            return
        target = self.headers.get("X-Amz-Target")
        if target is not None:
            if target != ECR_TARGET:
                self._json(400, {"__type": "UnknownOperationException", "message": target})
                return
            self._authorization_token(body, region)
            return
        action = parse_qs(body.decode("utf-8", "replace")).get("Action", [""])[0]
        if action != "GetCallerIdentity":
            self._xml_error(400, "InvalidAction", f"Could not find operation {action[:40]}")
            return
        self._owner.count_identity_call()
        arn = self._owner.arn
        account = arn.split(":")[4] if arn.count(":") >= 5 else ""
        self._xml(
            200,
            f'<GetCallerIdentityResponse xmlns="{STS_NAMESPACE}"><GetCallerIdentityResult>'
            f"<Arn>{escape(arn)}</Arn><UserId>AIDAFAKEFAKEFAKEFAKE</UserId>"
            f"<Account>{escape(account)}</Account></GetCallerIdentityResult>"
            f"<ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata>"
            "</GetCallerIdentityResponse>",
        )

    def _authorization_token(self, body: bytes, region: str) -> None:
        try:
            request = json.loads(body or b"{}")
        except ValueError:
            self._json(400, {"__type": "SerializationException"})
            return
        accounts = request.get("registryIds") or [DEFAULT_ARN.split(":")[4]]
        data = []
        for account in accounts[:10]:  # the API takes at most 10 registry ids
            password, expires_at = self._owner.issue(str(account))
            token = base64.b64encode(f"{ECR_USERNAME}:{password}".encode()).decode()
            data.append(
                {
                    "authorizationToken": token,
                    "expiresAt": round(expires_at, 3),
                    "proxyEndpoint": f"https://{account}.dkr.ecr.{region}.amazonaws.com",
                }
            )
        self._json(200, {"authorizationData": data})

    def _body(self) -> bytes | None:
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit() or int(length) > _MAX_API_BODY:
            self.close_connection = True
            self._json(400, {"__type": "SerializationException", "message": "bad length"})
            return None
        return self.rfile.read(int(length))

    def _scope(self) -> tuple[str, str | None]:
        """Region and service from the SigV4 credential scope; service None when unsigned."""
        match = _SIGV4_SCOPE.search(self.headers.get("Authorization", ""))
        return (match[1], match[2]) if match else ("us-east-1", None)

    def _json(self, status: int, document: object) -> None:
        self._send(status, "application/x-amz-json-1.1", json.dumps(document).encode())

    def _xml(self, status: int, text: str) -> None:
        self._send(status, "text/xml", text.encode())

    def _xml_error(self, status: int, code: str, message: str) -> None:
        self._xml(
            status,
            f'<ErrorResponse xmlns="{STS_NAMESPACE}"><Error><Type>Sender</Type>'
            f"<Code>{escape(code)}</Code><Message>{escape(message)}</Message></Error>"
            f"<RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>",
        )

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        self.end_headers()
        self.wfile.write(body)


# -- the registry ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Refusal:
    kind: str
    status: int
    headers: dict[str, str]
    body: bytes


class EcrRegistryProxy(FaultProxy):
    """An ECR-like registry API in front of a Distribution registry without auth.

    Args:
        upstream: ``http://127.0.0.1:PORT`` of the registry.
        api: the fake whose tokens are accepted.
        host: the ECR host name the registry answers for (the challenge's realm).
        refuse_after: refuse tokens this many seconds after issue as expired, whatever their
            declared lifetime (None: only past their declared lifetime).
        blob_chunk_size, blob_chunk_delay: blob downloads are relayed in pieces of this many bytes,
            each after this many seconds (0: no delay).
        max_requests: requests worked on at once; more wait up to 30 s, then get 503.

    Attributes:
        deny: refuse every token as not authorized (an identity without permission).
        refusals: count per kind: ``missing`` (401), ``unknown``, ``expired``, ``denied`` (403).
        accepted: requests let in, per token password.
    """

    def __init__(
        self,
        upstream: str,
        api: FakeAwsApi,
        *,
        host: str,
        refuse_after: float | None = None,
        blob_chunk_size: int = 64 * 1024,
        blob_chunk_delay: float = 0.0,
        max_requests: int = 32,
    ) -> None:
        super().__init__(upstream)
        self._server = LoopbackServer(_EcrProxyHandler, self)
        self.api = api
        self.ecr_host = host
        self.refuse_after = refuse_after
        self.blob_chunk_size = blob_chunk_size
        self.blob_chunk_delay = blob_chunk_delay
        self.deny = False
        self.refusals = {"missing": 0, "unknown": 0, "expired": 0, "denied": 0}
        self.accepted: dict[str, int] = {}
        self.slots = threading.BoundedSemaphore(max_requests)

    def __enter__(self) -> EcrRegistryProxy:
        self.start()
        return self

    def check(self, authorization: str | None) -> _Refusal | None:
        """What ECR would answer to a request with this Authorization header; None: let it in."""
        refusal = self._judge(authorization)
        if refusal is not None:
            with self._lock:
                self.refusals[refusal.kind] += 1
        return refusal

    def _judge(self, authorization: str | None) -> _Refusal | None:
        scheme, _, value = (authorization or "").partition(" ")
        if scheme.lower() != "basic" or not value.strip():
            challenge = f'Basic realm="https://{self.ecr_host}/",service="ecr.amazonaws.com"'
            return _Refusal("missing", 401, {"WWW-Authenticate": challenge}, NOT_AUTHORIZED)
        try:
            user, _, password = (
                base64.b64decode(value.strip(), validate=True).decode().partition(":")
            )
        except (binascii.Error, UnicodeDecodeError):
            user, password = "", ""
        token = self.api.issued(password) if user == ECR_USERNAME else None
        if token is None:
            return _Refusal("unknown", 403, {}, NOT_AUTHORIZED)
        if self.deny:
            return _Refusal("denied", 403, {}, NOT_AUTHORIZED)
        age = self.api.clock() - token.issued_at
        limit = self.refuse_after
        if age >= token.lifetime or (limit is not None and age >= limit):
            return _Refusal("expired", 403, {}, EXPIRED)
        with self._lock:
            self.accepted[password] = self.accepted.get(password, 0) + 1
        return None


class _EcrProxyHandler(_ProxyHandler):
    """Checks the ECR credential, then lets :class:`FaultProxy` apply its rules and forward."""

    server_version = "devtools-ecr-proxy"

    @property
    def _ecr(self) -> EcrRegistryProxy:
        owner: EcrRegistryProxy = self.server.owner  # type: ignore[attr-defined]
        return owner

    def _handle(self) -> None:
        proxy = self._ecr
        if not proxy.slots.acquire(timeout=_SLOT_WAIT_S):
            self._discard_body()
            self.close_connection = True
            self._answer(503, {}, b'{"errors":[{"code":"UNAVAILABLE","message":"busy"}]}')
            return
        try:
            refusal = proxy.check(self.headers.get("Authorization"))
            if refusal is not None:
                # Read what the client sends first, so it sees the answer rather than a reset.
                self._discard_body()
                self._answer(refusal.status, refusal.headers, refusal.body)
                return
            del self.headers["Authorization"]  # the registry behind runs without auth
            super()._handle()
        finally:
            proxy.slots.release()

    def _relay(
        self, response: http.client.HTTPResponse, *, drip: tuple[int, float] | None = None
    ) -> None:
        proxy = self._ecr
        if (
            drip is None
            and proxy.blob_chunk_delay > 0
            and self.command == "GET"
            and _BLOB_DOWNLOAD.search(self.path)
        ):
            drip = (proxy.blob_chunk_size, proxy.blob_chunk_delay)
        super()._relay(response, drip=drip)
