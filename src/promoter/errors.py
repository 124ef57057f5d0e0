"""The one exception tree of promoter.

Every error the package raises on purpose derives from :class:`PromoterError`. What an error means for an
operation's outcome (:mod:`promoter.outcome`: refused for a :class:`SafetyError`, failed otherwise) and the
exit code the CLI gives it (``promoter.cli.exit_codes``: 2 for input, 3 for refusals, 1 for the rest) are
decided in those two places, not here::

    PromoterError                      failed (exit 1) unless a branch below says otherwise
    ├── InputError                     exit 2: the user's input is wrong; fix it and run again
    │   ├── InvalidReferenceError      an image reference does not parse
    │   ├── InvalidDigestError         a digest does not parse
    │   ├── ConfigError                a setting or file the user gave is wrong (CA file, docker config)
    │   └── AdmissionReviewError       a request the admission webhook cannot read (HTTP 400)
    ├── SafetyError                    exit 3: refused on purpose to protect the destination
    │   ├── TagConflictError           the destination tag points at another digest
    │   ├── TagMovedError              another writer moved the tag right after promoter wrote it
    │   ├── ImmutableTagError          the registry refuses to move a tag (ECR immutable tags)
    │   └── AttachmentConflictError    an image was promoted, but a signature tag of it holds other
    │                                  content at the destination
    ├── AttachmentError                an image was promoted, but not all that is attached to it
    ├── RegistryError                  a registry answered with an error status
    │   ├── DeletionDisabledError      the registry refuses to delete manifests (Distribution without
    │   │                              storage.delete.enabled answers 405 UNSUPPORTED)
    │   └── AuthenticationError        401/403 after the auth flow ran
    │       └── RepositoryAccessError  a token was granted, but not for this repository
    │                                  (insufficient_scope: it may not exist, or may not be readable)
    ├── RegistryUnreachableError       connection refused/reset, DNS failure, TLS failure, timeout
    ├── DigestMismatchError            bytes did not hash to the digest that names them
    ├── UnsupportedManifestError       schema 1 or an unknown manifest media type
    ├── AnswerTooLargeError            a registry's answer is larger than the cap promoter reads
    ├── CredentialError                a credential helper failed or a stored credential is malformed,
    │                                  or AWS credentials for an ECR registry are missing or refused
    ├── AwsApiError                    an ECR API call (repositories, policies) failed
    ├── DeadlineExceededError          the operation's deadline passed before it was done
    └── RunInterruptedError            the run was interrupted (Ctrl-C, SIGTERM) before it was done

Messages say what happened in the library's own words. What the user can do about it is the error's
``hint`` (plain words) and, where a front end has its own way to say it (a CLI flag, an API argument), its
``remedy``: the CLI prints ``--force`` for :attr:`Remedy.FORCE`, a Python caller reads ``force=True``.

This module imports nothing from the package, so every layer can use it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

#: The most bytes of a registry's error body kept for a message; bodies can be large HTML pages.
ERROR_BODY_LIMIT = 4096
#: Characters of one piece of registry text (an error code or message) shown in a message.
REGISTRY_TEXT_SHOWN = 200
#: Characters of an error code shown (the spec's codes are short upper-case words).
REGISTRY_CODE_SHOWN = 64
#: Entries of a registry's ``errors`` array shown; the rest are counted.
REGISTRY_DETAILS_SHOWN = 3
#: Characters of a URL shown in a message.
URL_SHOWN = 300
#: Characters of a printed error line (before the front end's remedy or hint is added).
LINE_SHOWN = 1000
#: What replaces the end of a cut text; ``{}`` is how many characters were cut. The scrubber knows
#: this mark: a secret cut in two by it is still removed (``promoter.app.runtime.SecretScrubber``).
CUT_MARK = " [... {} more characters]"

_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def one_line(text: str, limit: int | None = None) -> str:
    """``text`` as one printable line, cut to ``limit`` characters.

    Every character that :meth:`str.isprintable` calls unprintable (control characters such as
    ESC, which starts ANSI escape sequences, line and paragraph separators, bidirectional
    overrides, lone surrogates) is written as its Python escape (``\\x1b``, ``\\n``,
    ``\\u202e``), so text from a registry can neither break the line nor drive the terminal. A
    longer result is cut to ``limit`` characters and ends with :data:`CUT_MARK`.
    """
    if not text.isprintable():
        text = "".join(c if c.isprintable() else _ESCAPES.get(c) or ascii(c)[1:-1] for c in text)
    if limit is not None and len(text) > limit:
        text = text[:limit] + CUT_MARK.format(len(text) - limit)
    return text


class Remedy(StrEnum):
    """What a front end can offer the user for an error, each in its own terms."""

    FORCE = "force"  #: moving the destination tag on purpose (CLI ``--force``, API ``force=True``)
    TRUST_CA = "trust-ca"  #: trusting a private certificate authority (CLI ``--ca-file``)
    LOG_IN = "log-in"  #: storing credentials for the registry (``promoter login``, docker login)
    NAME_CONFIG = "name-config"  #: naming a promoter.yaml explicitly (CLI ``--config``)
    NAME_REGISTRY = "name-registry"  #: naming the registry to act on (CLI ``--registry``)
    #: writing a version without asking its registry first (CLI ``--no-verify``, API ``verify=False``)
    SKIP_VERIFY = "skip-verify"


class PromoterError(Exception):
    """Base of every error promoter raises on purpose; its message is one line for the user.

    Args:
        message: what happened.
        hint: what the user can do about it, in plain words (no command-line flags).
        remedy: the same advice as a code that a front end turns into its own words.
    """

    def __init__(self, message: str = "", *, hint: str = "", remedy: Remedy | None = None) -> None:
        super().__init__(message)
        self.hint = hint
        self.remedy = remedy

    @property
    def message(self) -> str:
        """The message without the hint."""
        return str(self.args[0]) if self.args else ""

    def __str__(self) -> str:
        return f"{self.message}; {self.hint}" if self.hint else self.message


class InputError(PromoterError):
    """The user's input is wrong: a reference, a flag, a file. Exit code 2."""


class InvalidReferenceError(InputError):
    """An image reference does not parse."""


class InvalidDigestError(InputError):
    """A digest does not parse or uses an unsupported algorithm."""


class ConfigError(InputError):
    """A file or setting the user gave (CA file, docker config, batch file) is unusable."""


class AdmissionReviewError(InputError):
    """A request to the admission webhook is not an AdmissionReview it can read (HTTP 400)."""


class SafetyError(PromoterError):
    """promoter refused on purpose to protect the destination. Exit code 3."""


class TagConflictError(SafetyError):
    """The destination tag already points at a different digest and the copy was not forced.

    Attributes:
        destination, existing, wanted: the tag's reference, the digest it holds, the source's digest.
    """

    def __init__(
        self,
        destination: str,
        existing: str,
        wanted: str,
        *,
        hint: str = "forcing the copy moves it",
        remedy: Remedy | None = Remedy.FORCE,
    ) -> None:
        super().__init__(
            f"refusing to move tag {destination}: it points at {existing}, the source is {wanted}",
            hint=hint,
            remedy=remedy,
        )
        self.destination = destination
        self.existing = existing
        self.wanted = wanted


class TagMovedError(SafetyError):
    """The destination tag was written, but the check right after found it on other content (or gone):
    another writer moved it in between, so promoter does not claim the copy. Forcing cannot help.

    Attributes:
        destination, written, found: the tag's reference, the digest promoter wrote, the digest the
            tag holds now (None when the tag is gone).
    """

    def __init__(self, destination: str, written: str, found: str | None) -> None:
        now = f"it now points at {found}" if found is not None else "it no longer exists"
        super().__init__(
            f"tag {destination} was moved by another writer: promoter wrote {written}, {now}",
            hint="two promotions wrote this tag at once; decide which image it should hold",
        )
        self.destination = destination
        self.written = written
        self.found = found


class ImmutableTagError(SafetyError):
    """The destination registry refused to move a tag because its tags are immutable.

    ECR answers such a manifest PUT with 400 ``TAG_INVALID``; forcing cannot override it, so the hint
    says what to do instead.
    """

    def __init__(self, destination: str, registry_message: str) -> None:
        super().__init__(
            f"cannot move tag {destination}: the tag is immutable in the destination repository "
            f"and points at another digest ({registry_message})",
            hint="use a new tag, or delete the old image first",
        )
        self.destination = destination


class AttachmentConflictError(SafetyError):
    """The image was promoted (its tag is written), but a cosign tag attachment of it
    (``sha256-<hex>.sig``) holds other content at the destination and was not moved (refused, or
    immutable there): the image is unsigned there as far as that signature goes.

    Attributes:
        destination: the promoted image's reference.
        result: the image's copy result (a ``promoter.remote.copy.CopyResult``), for reports.
    """

    result: object = None

    def __init__(self, destination: str, conflict: str, *, forceable: bool = True) -> None:
        super().__init__(
            f"{destination} was promoted, but not its signature tag: {conflict}",
            hint=(
                "forcing the copy moves the tag, dropping what only the destination's tag holds"
                if forceable
                else ""
            ),
            remedy=Remedy.FORCE if forceable else None,
        )
        self.destination = destination


class AttachmentError(PromoterError):
    """The image was promoted (its tag is written), but copying something attached to it (a
    signature, an attestation, an SBOM) failed; promoting it again copies what is missing.

    Attributes:
        destination: the promoted image's reference.
        result: the image's copy result (a ``promoter.remote.copy.CopyResult``), for reports.
    """

    result: object = None

    def __init__(self, destination: str, failure: str) -> None:
        super().__init__(
            f"{destination} was promoted, but what is attached to it (signatures, attestations, "
            f"SBOMs) could not all be looked up or copied; verifiers there may reject it until "
            f"they are: {failure}",
            hint="once that is fixed, promoting it again copies what is missing",
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
        remedy: the same advice as a code for front ends (:class:`Remedy`).
    """

    method: str
    url: str
    status: int
    details: tuple[RegistryErrorDetail, ...] = ()
    retryable: bool = False
    what: str = ""
    retry_after: float | None = field(default=None, repr=False)
    hint: str = ""
    remedy: Remedy | None = None

    def __post_init__(self) -> None:
        Exception.__init__(self, self.message)

    @property
    def message(self) -> str:
        """What the registry answered, without the hint: one line, with the registry's own text
        escaped and cut (:func:`one_line`; at most :data:`REGISTRY_DETAILS_SHOWN` entries of
        :data:`REGISTRY_TEXT_SHOWN` characters)."""
        shown = [d for d in self.details if d.code][:REGISTRY_DETAILS_SHOWN]
        codes = ", ".join(
            one_line(d.code, REGISTRY_CODE_SHOWN)
            + (f": {one_line(d.message, REGISTRY_TEXT_SHOWN)}" if d.message else "")
            for d in shown
        )
        more = sum(1 for d in self.details if d.code) - len(shown)
        if more:
            codes += f" and {more} more"
        prefix = f"{one_line(self.what)}: " if self.what else ""
        suffix = f" ({codes})" if codes else ""
        url = one_line(self.url, URL_SHOWN)
        return f"{prefix}{self.method} {url} answered {self.status}{suffix}"

    def __str__(self) -> str:
        return f"{self.message}: {self.hint}" if self.hint else self.message

    @property
    def codes(self) -> tuple[str, ...]:
        """The registry's error codes, e.g. ``("MANIFEST_UNKNOWN",)``."""
        return tuple(d.code for d in self.details)


@dataclass(eq=False)
class DeletionDisabledError(RegistryError):
    """The registry refuses to delete manifests at all: deletion is switched off there.

    The distribution spec lets a registry disable deletion, answering ``400`` or ``405``
    ("Deleting Manifests"); Distribution does so by default, with 405 ``UNSUPPORTED``, until its
    configuration sets ``storage.delete.enabled: true``. The ``hint`` names the registry and that
    setting; nothing can be deleted there until its operators change it.
    """


class AuthenticationError(RegistryError):
    """The registry refused our credentials (401/403 after the auth flow ran)."""


@dataclass(eq=False)
class RepositoryAccessError(AuthenticationError):
    """The registry accepted the credentials and granted a token, but refused this repository with
    ``insufficient_scope`` (RFC 6750 section 3.1; distribution's token spec). Docker Hub and other
    registries answer so for a repository that does not exist, as well as for one the credentials
    may not read: a plan treats it as absent, never as a login problem.

    Attributes:
        repository: the repository the registry refused.
    """

    repository: str = ""


class RegistryUnreachableError(PromoterError):
    """No HTTP answer: connection refused or reset, DNS failure, TLS failure, timeout."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool = True,
        hint: str = "",
        remedy: Remedy | None = None,
    ) -> None:
        super().__init__(message, hint=hint, remedy=remedy)
        self.retryable = retryable


class DigestMismatchError(PromoterError):
    """Bytes did not hash to the digest that names them; nothing is tagged after this."""


class UnsupportedManifestError(PromoterError):
    """A manifest is Docker schema 1 or of a media type promoter does not know."""


class AnswerTooLargeError(PromoterError):
    """A registry's answer (a manifest, a token, a tag list, an error body) is larger than the cap
    promoter reads for it; reading stopped at the cap, so memory stays bounded."""


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


class DeadlineExceededError(PromoterError):
    """The operation's deadline (:class:`promoter.deadline.Deadline`) passed before it was done; what
    was written so far is complete in itself (a tag is never written on incomplete content)."""


class RunInterruptedError(PromoterError):
    """The run was interrupted (Ctrl-C, SIGTERM) before this operation was done; what was written so
    far is complete in itself (a tag is never written on incomplete content)."""
