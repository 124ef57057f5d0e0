"""Digests: parse, compute and verify while streaming (OCI image spec, "Digests")."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from promoter.errors import DigestMismatchError, InvalidDigestError

if TYPE_CHECKING:
    from hashlib import _Hash

_HEX_LENGTH = {"sha256": 64, "sha512": 128}
_DIGEST = re.compile(r"(sha256|sha512):([a-f0-9]+)")


@dataclass(frozen=True, slots=True)
class Digest:
    """A content digest such as ``sha256:<64 hex>``; ``str()`` round-trips."""

    algorithm: str
    hex: str

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"

    @property
    def short(self) -> str:
        """The first 12 hex characters, for tables and progress lines."""
        return self.hex[:12]


def parse_digest(text: str) -> Digest:
    """Parse ``algorithm:hex``; only sha256 and sha512 are registered algorithms we can verify.

    Raises:
        InvalidDigestError: naming the text.
    """
    match = _DIGEST.fullmatch(text)
    if not match or len(match.group(2)) != _HEX_LENGTH[match.group(1)]:
        raise InvalidDigestError(
            f"invalid digest {text!r}: expected sha256:<64 lower-case hex> or sha512:<128 hex>"
        )
    return Digest(match.group(1), match.group(2))


def compute_digest(data: bytes, algorithm: str = "sha256") -> Digest:
    """The digest of ``data``."""
    return Digest(algorithm, hashlib.new(algorithm, data).hexdigest())


def same_digest(first: Digest, second: Digest) -> bool | None:
    """Whether two digests name the same content, as far as the digests alone can tell.

    Digests of one algorithm are equal exactly when the content is (OCI image spec, "Digests": the
    digest is a content identifier). Digests of two algorithms (``sha512:`` from one registry,
    ``sha256:`` from another, for the same bytes) say nothing about each other: only the bytes can
    tell, by :func:`hashes_to`. Never compare the spellings.

    Returns:
        True or False when both use one algorithm; None when they do not.
    """
    if first.algorithm != second.algorithm:
        return None
    return first == second


def hashes_to(data: bytes, digest: Digest) -> bool:
    """Whether ``data`` is the content ``digest`` names, hashed with ``digest``'s own algorithm."""
    return compute_digest(data, digest.algorithm) == digest


class DigestVerifier:
    """Hashes bytes as they stream past and checks them against the expected digest and size."""

    def __init__(self, expected: Digest, size: int | None = None) -> None:
        self.expected = expected
        self.size = size
        self.seen = 0
        self._hash: _Hash = hashlib.new(expected.algorithm)

    def update(self, chunk: bytes) -> None:
        """Feed the next chunk. hashlib releases the GIL for large chunks, so threads hash in parallel."""
        self._hash.update(chunk)
        self.seen += len(chunk)

    def verify(self, what: str) -> None:
        """Raise unless the bytes seen hash to the expected digest (and have the expected size).

        Raises:
            DigestMismatchError: naming ``what`` and both digests.
        """
        actual = Digest(self.expected.algorithm, self._hash.hexdigest())
        if self.size is not None and self.seen != self.size:
            raise DigestMismatchError(
                f"{what}: expected {self.size} bytes for {self.expected}, got {self.seen}"
            )
        if actual != self.expected:
            raise DigestMismatchError(f"{what}: content hashes to {actual}, not {self.expected}")


def verify_bytes(data: bytes, expected: Digest, what: str) -> None:
    """Check that ``data`` hashes to ``expected``.

    Raises:
        DigestMismatchError: naming ``what``.
    """
    verifier = DigestVerifier(expected, len(data))
    verifier.update(data)
    verifier.verify(what)
