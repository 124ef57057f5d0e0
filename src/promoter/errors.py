"""The one exception tree of promoter.

Every error the package raises on purpose derives from :class:`PromoterError`. The CLI maps the three
branches below it to exit codes in one place (``promoter.cli.main``): input errors exit 2, safety refusals
exit 3, everything else exits 1::

    PromoterError                      exit 1 unless a subclass says otherwise
    ├── InputError                     exit 2: the user's input is wrong; fix it and run again
    │   ├── InvalidReferenceError      an image reference does not parse
    │   ├── InvalidDigestError         a digest does not parse
    │   └── ConfigError                a setting or file the user gave is wrong (CA file, docker config)
    ├── SafetyError                    exit 3: refused on purpose to protect the destination
    │   ├── TagConflictError           the destination tag points at another digest
    │   └── ImmutableTagError          the registry refuses to move a tag (ECR immutable tags)
    ├── RegistryError                  a registry answered with an error status
    │   └── AuthenticationError        401/403 after the auth flow ran
    ├── RegistryUnreachableError       connection refused/reset, DNS failure, TLS failure, timeout
    ├── DigestMismatchError            bytes did not hash to the digest that names them
    ├── UnsupportedManifestError       schema 1 or an unknown manifest media type
    ├── CredentialError                a credential helper failed or a stored credential is malformed,
    │                                  or AWS credentials for an ECR registry are missing or refused
    └── AwsApiError                    an ECR API call (repositories, policies) failed

This module imports nothing from the package, so every layer can use it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: The most bytes of a registry's error body kept for a message; bodies can be large HTML pages.
ERROR_BODY_LIMIT = 4096


class PromoterError(Exception):
    """Base of every error promoter raises on purpose; its message is one line for the user."""

    exit_code = 1


class InputError(PromoterError):
    """The user's input is wrong: a reference, a flag, a file. Exit code 2."""

    exit_code = 2


class InvalidReferenceError(InputError):
    """An image reference does not parse."""


class InvalidDigestError(InputError):
    """A digest does not parse or uses an unsupported algorithm."""


class ConfigError(InputError):
    """A file or setting the user gave (CA file, docker config, batch file) is unusable."""


class SafetyError(PromoterError):
    """promoter refused on purpose to protect the destination. Exit code 3."""

    exit_code = 3


class TagConflictError(SafetyError):
    """The destination tag already points at a different digest and ``--force`` was not given."""

    def __init__(self, destination: str, existing: str, wanted: str) -> None:
        super().__init__(
            f"refusing to move tag {destination}: it points at {existing}, the source is {wanted} "
            "(use --force to move it)"
        )
        self.destination = destination
        self.existing = existing
        self.wanted = wanted


class ImmutableTagError(SafetyError):
    """The destination registry refused to move a tag because its tags are immutable.

    ECR answers such a manifest PUT with 400 ``TAG_INVALID``; ``--force`` cannot override it, so the
    message says what to do instead.
    """

    def __init__(self, destination: str, registry_message: str) -> None:
        super().__init__(
            f"cannot move tag {destination}: the tag is immutable in the destination repository "
            f"and points at another digest ({registry_message}); use a new tag, or delete the "
            "old image first"
        )
        self.destination = destination


@dataclass(frozen=True, slots=True)
class RegistryErrorDetail:
    """One entry of the ``errors`` array a registry returns (distribution spec, "Error Codes")."""

    code: str
    message: str = ""


@dataclass(eq=False)
class RegistryError(PromoterError):
    """A registry answered a request with an error status.

    Attributes:
        method: the HTTP method of the failed request.
        url: the request URL with any query string removed (upload URLs carry state tokens).
        status: the HTTP status code.
        details: the registry's own error codes and messages, if its body had them.
        retryable: whether trying again later may succeed (408, 429, 5xx).
        what: a short phrase naming the operation, e.g. "pull manifest library/nginx:1.27".
        retry_after: seconds the registry asked us to wait (``Retry-After``), if it did.
        hint: what the user can do about it, when we know.
    """

    method: str
    url: str
    status: int
    details: tuple[RegistryErrorDetail, ...] = ()
    retryable: bool = False
    what: str = ""
    retry_after: float | None = field(default=None, repr=False)
    hint: str = ""

    def __post_init__(self) -> None:
        super().__init__(str(self))

    def __str__(self) -> str:
        codes = ", ".join(
            f"{d.code}: {d.message}" if d.message else d.code for d in self.details if d.code
        )
        prefix = f"{self.what}: " if self.what else ""
        suffix = f" ({codes})" if codes else ""
        hint = f": {self.hint}" if self.hint else ""
        return f"{prefix}{self.method} {self.url} answered {self.status}{suffix}{hint}"

    @property
    def codes(self) -> tuple[str, ...]:
        """The registry's error codes, e.g. ``("MANIFEST_UNKNOWN",)``."""
        return tuple(d.code for d in self.details)


class AuthenticationError(RegistryError):
    """The registry refused our credentials (401/403 after the auth flow ran)."""


class RegistryUnreachableError(PromoterError):
    """No HTTP answer: connection refused or reset, DNS failure, TLS failure, timeout."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class DigestMismatchError(PromoterError):
    """Bytes did not hash to the digest that names them; nothing is tagged after this."""


class UnsupportedManifestError(PromoterError):
    """A manifest is Docker schema 1 or of a media type promoter does not know."""


class CredentialError(PromoterError):
    """A credential helper failed, or stored credentials are malformed."""


class AwsApiError(PromoterError):
    """An AWS API call on the ECR path (repositories, policies) failed for a reason other than
    credentials; the message names the call and AWS's error code, never a secret.

    Attributes:
        code: AWS's error code (``RepositoryNotFoundException``), or empty when there was no answer.
    """

    def __init__(self, message: str, *, code: str = "") -> None:
        super().__init__(message)
        self.code = code
