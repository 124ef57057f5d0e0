"""Image references: ``[registry[:port]/]repository[:tag][@algorithm:hex]`` as immutable values.

The grammar follows the distribution project's reference grammar (the one docker, crane and skopeo
accept). Docker Hub's defaults live here and nowhere else: a reference without a registry names
``docker.io``, a one-component Docker Hub repository lives under ``library/``, and a reference with
neither tag nor digest means ``latest`` unless the caller asks for no default.

This module is pure: no I/O; it uses only the standard library and :mod:`promoter.oci.digest`.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, replace

from promoter.errors import InvalidDigestError, InvalidReferenceError, Remedy
from promoter.oci.digest import Digest, parse_digest

DOCKER_HUB = "docker.io"
#: Where Docker Hub's registry API really answers.
DOCKER_HUB_API_HOST = "registry-1.docker.io"
#: The key under which the docker CLI stores Docker Hub credentials in config.json.
DOCKER_HUB_CONFIG_KEY = "https://index.docker.io/v1/"
DOCKER_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
OFFICIAL_NAMESPACE = "library"
DEFAULT_TAG = "latest"

_MAX_NAME_LENGTH = 255
_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = re.compile(
    rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{{1,5}})?"
)
#: What follows the ``@`` of a digest, right or wrong: ``algorithm:encoded`` (OCI image spec,
#: descriptor.md "Digests").
_DIGEST_ATTEMPT = re.compile(
    r"(?i)(?P<algorithm>[a-z0-9]+(?:[+._-][a-z0-9]+)*):(?P<encoded>[a-z0-9=_-]+)"
)
_DIGEST_ALGORITHM = re.compile(r"(?i)sha\d*|blake\d*|md5")
_MAX_PORT = 65535


@dataclass(frozen=True, slots=True)
class Reference:
    """A parsed, normalised image reference.

    ``str()`` gives the normalised form and parses back to an equal value.

    Attributes:
        registry: registry host, with port if any (``docker.io``, ``127.0.0.1:5000``).
        repository: repository path (``library/nginx``).
        tag: the tag, or None for a digest-only reference.
        digest: the content digest (``sha256:<hex>``), or None.
    """

    registry: str
    repository: str
    tag: str | None = None
    digest: Digest | None = None

    def __str__(self) -> str:
        text = self.name
        if self.tag is not None:
            text += f":{self.tag}"
        if self.digest is not None:
            text += f"@{self.digest}"
        return text

    @property
    def name(self) -> str:
        """``registry/repository`` without tag or digest."""
        return f"{self.registry}/{self.repository}"

    @property
    def identifier(self) -> str:
        """What to ask the registry for: the digest when there is one (it wins over a tag), else the tag."""
        if self.digest is not None:
            return str(self.digest)
        if self.tag is None:  # unreachable through parse_reference; kept for hand-built values
            raise InvalidReferenceError(f"reference {self} has neither tag nor digest")
        return self.tag

    def with_tag(self, tag: str | None) -> Reference:
        """A copy with another tag (and no digest)."""
        return replace(self, tag=tag, digest=None)

    def with_digest(self, digest: Digest) -> Reference:
        """A copy pinned to ``digest``, keeping the tag for display."""
        return replace(self, digest=digest)

    def in_repository(self, registry: str, repository: str) -> Reference:
        """The same tag and digest in another registry and repository."""
        return replace(self, registry=registry, repository=repository)


def parse_reference(text: str, *, default_tag: str | None = DEFAULT_TAG) -> Reference:
    """Parse an image reference, applying Docker Hub defaults.

    Args:
        text: the reference as the user wrote it.
        default_tag: the tag to use when the reference names neither tag nor digest; None keeps both
            unset so that the caller can decide (``promoter copy`` then keeps the source's tag).

    Raises:
        InvalidReferenceError: naming the input and what is wrong with it; a reference with
            credentials typed into it (``user:pw@host/...``) is refused without repeating them, and a
            port must be from 1 to 65535.
    """
    original = text
    text = text.strip()
    if not text:
        raise InvalidReferenceError(
            "empty image reference: give one like registry.example.com/app:1.0"
        )
    _refuse_credentials(text, "image reference")
    if "://" in text:
        raise InvalidReferenceError(
            f"invalid image reference {original!r}: drop the URL scheme (write host/repository:tag)"
        )
    digest: Digest | None = None
    if "@" in text:
        text, digest_text = text.split("@", 1)
        try:
            digest = parse_digest(digest_text)
        except InvalidDigestError:
            raise InvalidReferenceError(
                f"invalid digest in image reference {original!r}: expected sha256:<64 hex> "
                "(or sha512:<128 hex>), lower case"
            ) from None
    tag: str | None = None
    colon = text.rfind(":")
    if colon > text.rfind("/"):
        text, tag = text[:colon], text[colon + 1 :]
        if not _TAG.fullmatch(tag):
            raise InvalidReferenceError(
                f"invalid tag {tag!r} in image reference {original!r}: up to 128 of A-Z a-z 0-9 _ . -"
                ", not starting with . or -"
            )
    registry, repository = _split_registry(text)
    if not _DOMAIN.fullmatch(registry):
        raise InvalidReferenceError(
            f"invalid registry host {registry!r} in image reference {original!r}: expected "
            "host[:port] with a port from 1 to 65535"
        )
    port = _port_out_of_range(registry)
    if port is not None:
        raise InvalidReferenceError(
            f"invalid port {port} in registry host {registry!r} of image reference {original!r}: "
            f"use a port from 1 to {_MAX_PORT}"
        )
    # Host names compare without case (RFC 4343): one registry, one spelling, so that a
    # foreign-environment check, an endpoint mapping or a loopback test never misses it.
    registry = registry.lower()
    if registry in DOCKER_HUB_ALIASES:
        registry = DOCKER_HUB
        if "/" not in repository:
            repository = f"{OFFICIAL_NAMESPACE}/{repository}"
    if not repository or not all(_COMPONENT.fullmatch(part) for part in repository.split("/")):
        raise InvalidReferenceError(
            f"invalid repository {repository!r} in image reference {original!r}: use lower-case "
            "letters, digits and separators (. _ __ -) between path components"
        )
    if len(f"{registry}/{repository}") > _MAX_NAME_LENGTH:
        raise InvalidReferenceError(
            f"image reference {original!r} is too long: the name may have at most 255 characters"
        )
    if tag is None and digest is None:
        tag = default_tag
    return Reference(registry=registry, repository=repository, tag=tag, digest=digest)


def hide_credentials(text: str) -> str | None:
    """``text`` with the ``user:password@`` typed into it replaced by ``***@``; None when it has none.

    A reference has no ``@`` but the one before its digest, so any other ``@`` ends credentials
    (``user:pw@host/repo:tag``, ``https://u:p@host/``, a password with ``/`` or ``@`` in it): what
    precedes the last such ``@`` is hidden, and callers show the result, never ``text``.
    """
    scheme, separator, rest = text.partition("://")
    prefix = f"{scheme}{separator}" if separator else ""
    if not separator:
        rest = text
    body, at, tail = rest.rpartition("@")
    suffix = ""
    if at and _is_digest_attempt(body, tail):
        rest, suffix = body, f"@{tail}"  # the digest's own @
    if "@" not in rest:
        return None
    return f"{prefix}***@{rest.rpartition('@')[2]}{suffix}"


def _is_digest_attempt(before: str, after: str) -> bool:
    """Whether the ``@`` between ``before`` and ``after`` separates a digest rather than credentials.

    ``repo@sha256:123``, ``user:pw@host:5000`` and ``user:pw@nginx:latest`` have the same shape; a
    known algorithm name or a repository path before the ``@`` tell a digest (maybe a wrong one) apart.
    """
    found = _DIGEST_ATTEMPT.fullmatch(after)
    if found is None:
        return False
    return "/" in before or _DIGEST_ALGORITHM.fullmatch(found["algorithm"]) is not None


def _refuse_credentials(text: str, what: str) -> None:
    """Refuse ``text`` if credentials were typed into it, without repeating them.

    Raises:
        InvalidReferenceError: naming the input with its credentials hidden.
    """
    hidden = hide_credentials(text)
    if hidden is not None:
        raise InvalidReferenceError(
            f"{what} {hidden!r} has a user name or password in it",
            hint="remove it, and store credentials with promoter login or docker login instead",
            remedy=Remedy.LOG_IN,
        )


def _port_out_of_range(registry: str) -> str | None:
    """The port of a ``host[:port]`` (already matched by the domain grammar) when it is not 1-65535."""
    if registry.endswith("]") or ":" not in registry:
        return None
    port = registry.rsplit(":", 1)[1]
    return None if 0 < int(port) <= _MAX_PORT else port


def _split_registry(text: str) -> tuple[str, str]:
    """Split off the registry host the way docker does: the first component is a host only if it
    contains a dot or a colon, is ``localhost``, or has upper-case letters."""
    first, sep, rest = text.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first.lower() != first):
        return first, rest
    return DOCKER_HUB, text


def is_tag(text: str) -> bool:
    """Whether ``text`` is a valid tag (up to 128 of ``A-Z a-z 0-9 _ . -``, not starting with ``.``
    or ``-``): never a digest, so an API path built from it cannot name a manifest by digest."""
    return _TAG.fullmatch(text) is not None


def api_host(registry: str) -> str:
    """The host to send registry API requests to for a registry name (Docker Hub answers elsewhere)."""
    return DOCKER_HUB_API_HOST if registry == DOCKER_HUB else registry


def is_loopback_host(registry: str) -> bool:
    """Whether a registry host is on this machine; docker allows plain HTTP only for these by default.

    Only ``localhost`` and loopback IP addresses count: a name like ``127.example.com`` does not.
    """
    if registry.startswith("["):
        host = registry[1:].split("]", 1)[0]
    else:
        host = registry.rsplit(":", 1)[0] if registry.count(":") == 1 else registry
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def registry_identity(host: str) -> str:
    """The registry a host names, for comparing: the port as a number (``:0443`` is ``:443``), and
    ``host:443`` is ``host`` (HTTPS's own port; a node pulls the same registry under every one of
    these spellings)."""
    name, colon, port = host.rpartition(":")
    bare_ipv6 = ":" in name and not name.endswith("]")  # an IPv6 address without a port
    if not colon or not port.isdigit() or bare_ipv6:
        return host
    number = int(port)
    return name if number == 443 else f"{name}:{number}"


def parse_registry_host(text: str) -> str:
    """A registry host as image references name it (``host[:port]``), normalised as references are
    (``index.docker.io`` is ``docker.io``).

    A bare word (``foo``) is refused rather than read as a Docker Hub namespace: an image written with it
    would never be in that registry. Docker Hub's own names are accepted.

    Raises:
        InvalidReferenceError: ``text`` is not a registry host; the message names it.
    """
    host = text.strip()
    _refuse_credentials(host, "registry host")
    problem = f"{text!r} is not a registry host (expected host[:port], without scheme or path)"
    port = _port_out_of_range(host) if _DOMAIN.fullmatch(host) else None
    if port is not None:
        raise InvalidReferenceError(
            f"invalid port {port} in registry host {text!r}: use a port from 1 to {_MAX_PORT}"
        )
    if not host or "/" in host or "@" in host:
        raise InvalidReferenceError(problem)
    try:
        reference = parse_reference(f"{host}/x")
    except InvalidReferenceError:
        raise InvalidReferenceError(problem) from None
    if reference.registry == DOCKER_HUB and host.lower() not in DOCKER_HUB_ALIASES:
        raise InvalidReferenceError(problem)
    return reference.registry
