"""Sign images in a test registry, verify them in another, and attach SBOMs and attestations.

Promoter must carry signatures, attestations and SBOMs along with every image it promotes.
Testing that needs an independent signer and verifier, and Debian's skopeo 1.9.3 cannot be
either: Debian patched sigstore out of it ("Debian-local change: sigstore disabled"). So this
module holds:

- the cosign/sigstore key format (scrypt + nacl/secretbox inside an ``ENCRYPTED COSIGN PRIVATE
  KEY`` PEM), written with cryptography and PyNaCl;
- a signer that writes exactly what containers/image 5.23 (skopeo) writes: a ``sha256-<hex>.sig``
  tag holding an OCI manifest with one ``simplesigning`` layer per signature, appended to an
  existing one the way c/image appends. ``sign`` uses skopeo itself when skopeo can sign, so the
  tests switch to the real client the day a sigstore-enabled skopeo is installed;
- a verifier that ports c/image's ``VerifySigstorePayload`` (digest, signature, identity), and a
  wrapper around ``skopeo copy`` with a ``sigstoreSigned`` policy that tells "signature found"
  from "no signature" even where skopeo cannot check signatures;
- builders for OCI 1.1 referrers (``subject`` + ``artifactType``) pushed the way cosign v3 and
  oras push them to a registry without the referrers API (the ``sha256-<hex>`` fallback index),
  and for cosign's ``.att``/``.sbom`` tag attachments.

Like ``devtools.images``, nothing here uses promoter: a fixture made with the code under test
would let a bug agree with itself. Formats and their sources are in
/work/notes/referrers-research.md (sections 3 and 4). Registries are reached over plain HTTP or
HTTPS with urllib3; skopeo is only used without credentials (``--*-tls-verify=false``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import nacl.exceptions
import nacl.secret
import urllib3
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from devtools.images import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_CONFIG,
    OCI_EMPTY,
    OCI_INDEX,
    OCI_MANIFEST,
    Blob,
    Image,
    PushError,
    push_image,
    sha256_digest,
)

# Media types and annotation keys (cosign pkg/types, pkg/oci/static; c/image signature/internal).
SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
COSIGN_SIGNATURE_TYPE = "cosign container image signature"
DSSE_ENVELOPE = "application/vnd.dsse.envelope.v1+json"
IN_TOTO = "application/vnd.in-toto+json"
SIGSTORE_BUNDLE = "application/vnd.dev.sigstore.bundle.v0.3+json"
SPDX_JSON = "text/spdx+json"
COSIGN_SIGN_PREDICATE = "https://sigstore.dev/cosign/sign/v1"
SLSA_PROVENANCE = "https://slsa.dev/provenance/v1"
PREDICATE_TYPE_ANNOTATION = "predicateType"
CREATED_ANNOTATION = "org.opencontainers.image.created"
PRIVATE_KEY_PEM_TYPE = "ENCRYPTED COSIGN PRIVATE KEY"
# sigstore's own writer uses this label; cosign reads both, c/image 5.23 only the COSIGN one.
SIGSTORE_PRIVATE_KEY_PEM_TYPE = "ENCRYPTED SIGSTORE PRIVATE KEY"

# What skopeo prints (c/image 5.23 and Debian's disable-sigstore.patch).
DEBIAN_SIGSTORE_DISABLED = "Debian-local change: sigstore disabled"
NO_SIGNATURE_MESSAGE = "A signature was required, but no signature exists"

# The c/image version whose output the Python signer reproduces; its creator string differs.
DEFAULT_CREATOR = "promoter devtools.signing (containers/image 5.23 format)"

AttachmentKind = Literal["sig", "att", "sbom"]

_MANIFEST_ACCEPT = ", ".join([OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST])
_HTTP_TIMEOUT = urllib3.Timeout(connect=10.0, read=60.0)
_SKOPEO_TIMEOUT_SECONDS = 120
# go-tuf's encrypted package accepts exactly these scrypt parameters (and newer readers more).
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 32768, 8, 1
_PEM_PATTERN = re.compile(
    rb"-----BEGIN (?P<label>[A-Z ]+)-----\r?\n(?P<body>[A-Za-z0-9+/=\r\n]+?)-----END (?P=label)-----"
)


# Go's encoding/json, which wrote every byte a skopeo or cosign peer would compare -----------------


def go_json(value: object) -> bytes:
    """Serialise like Go's ``json.Marshal``: compact, and with its HTML-safe escapes.

    Go writes struct fields in declaration order and map keys sorted; callers build dicts in
    that order, since digests are over exact bytes.
    """
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    # encoding/json escapes these inside strings (they cannot occur outside strings in JSON).
    for char, escaped in (
        ("&", "\\u0026"),
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(char, escaped)
    return text.encode("utf-8")


def _b64(data: bytes) -> str:
    """Standard padded base64, as Go's encoding/json writes a ``[]byte``."""
    return base64.b64encode(data).decode("ascii")


def _pem(label: str, der: bytes) -> bytes:
    """A PEM block with 64-character lines, as Go's ``pem.Encode`` writes."""
    body = base64.b64encode(der).decode("ascii")
    lines = "".join(body[i : i + 64] + "\n" for i in range(0, len(body), 64))
    return f"-----BEGIN {label}-----\n{lines}-----END {label}-----\n".encode("ascii")


# keys ------------------------------------------------------------------------------------------


class SigstoreKeyError(ValueError):
    """A private key PEM could not be opened: wrong label, format or passphrase."""


@dataclass(frozen=True, slots=True)
class KeyFiles:
    """Paths of a key pair written for skopeo (``--sign-by-sigstore-private-key`` and friends)."""

    private_key: Path
    public_key: Path
    passphrase: Path


@dataclass(frozen=True, slots=True)
class KeyPair:
    """A cosign-format key pair and the passphrase that opens the private half.

    Attributes:
        private_pem: ``ENCRYPTED COSIGN PRIVATE KEY`` PEM (go-tuf encrypted PKCS#8).
        public_pem: ``PUBLIC KEY`` PEM (PKIX), what policy.json's ``keyPath`` names.
        passphrase: The passphrase the private key was sealed with.
    """

    private_pem: bytes
    public_pem: bytes
    passphrase: bytes

    def private_key(self) -> ec.EllipticCurvePrivateKey:
        """The decrypted private key (runs scrypt: ~0.1 s)."""
        return open_sigstore_key(self.private_pem, self.passphrase)

    def write(self, directory: Path, name: str = "cosign") -> KeyFiles:
        """Write ``NAME.key``, ``NAME.pub`` and ``NAME.pass`` into ``directory`` (created)."""
        directory.mkdir(parents=True, exist_ok=True)
        files = KeyFiles(
            directory / f"{name}.key", directory / f"{name}.pub", directory / f"{name}.pass"
        )
        files.private_key.write_bytes(self.private_pem)
        files.private_key.chmod(0o600)
        files.public_key.write_bytes(self.public_pem)
        files.passphrase.write_bytes(self.passphrase)
        files.passphrase.chmod(0o600)
        return files


def _scrypt_key(passphrase: bytes, salt: bytes) -> bytes:
    return Scrypt(salt=salt, length=32, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P).derive(passphrase)


def sigstore_key_pair(passphrase: bytes) -> KeyPair:
    """Make a fresh ECDSA P-256 key pair in the format cosign and skopeo read.

    The private key is PKCS#8 DER sealed the way go-tuf's ``encrypted.Encrypt`` seals it: key =
    scrypt(passphrase, 32 random bytes of salt, N=32768, r=8, p=1, 32 bytes), nonce 24 random
    bytes, ciphertext = nacl ``secretbox.Seal`` (Poly1305 tag then XSalsa20 output); the PEM body
    is the JSON document ``{"kdf":...,"cipher":...,"ciphertext":...}`` with byte fields in
    standard base64. N=32768 is the one value every reader accepts (go-tuf rejects others).

    Args:
        passphrase: Any bytes, possibly empty (cosign allows an empty passphrase).

    Returns:
        The pair; derivation costs ~0.1 s, so tests make one per session.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    pkcs8 = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    salt, nonce = os.urandom(32), os.urandom(24)
    sealed = nacl.secret.SecretBox(_scrypt_key(passphrase, salt)).encrypt(pkcs8, nonce)
    document = {
        "kdf": {
            "name": "scrypt",
            "params": {"N": _SCRYPT_N, "r": _SCRYPT_R, "p": _SCRYPT_P},
            "salt": _b64(salt),
        },
        "cipher": {"name": "nacl/secretbox", "nonce": _b64(nonce)},
        "ciphertext": _b64(sealed.ciphertext),
    }
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return KeyPair(_pem(PRIVATE_KEY_PEM_TYPE, go_json(document)), public_pem, passphrase)


def open_sigstore_key(pem: bytes, passphrase: bytes) -> ec.EllipticCurvePrivateKey:
    """Decrypt a cosign/sigstore encrypted private key (the inverse of ``sigstore_key_pair``).

    Accepts both PEM labels (``ENCRYPTED COSIGN PRIVATE KEY``, ``ENCRYPTED SIGSTORE PRIVATE
    KEY``) and any scrypt parameters the document names, as cosign does.

    Raises:
        SigstoreKeyError: Not such a PEM, an unknown KDF or cipher, a wrong passphrase (the
            secretbox does not open), or a key that is not ECDSA.
    """
    match = _PEM_PATTERN.search(pem)
    if match is None:
        raise SigstoreKeyError("no PEM block found in the private key")
    label = match["label"].decode("ascii")
    if label not in (PRIVATE_KEY_PEM_TYPE, SIGSTORE_PRIVATE_KEY_PEM_TYPE):
        raise SigstoreKeyError(f"PEM label {label!r} is not an encrypted cosign/sigstore key")
    try:
        document = json.loads(base64.b64decode(match["body"]))
        kdf, cipher = document["kdf"], document["cipher"]
        if kdf["name"] != "scrypt" or cipher["name"] != "nacl/secretbox":
            raise SigstoreKeyError(f"unsupported kdf {kdf['name']!r} or cipher {cipher['name']!r}")
        params = kdf["params"]
        box_key = Scrypt(
            salt=base64.b64decode(kdf["salt"]),
            length=32,
            n=params["N"],
            r=params["r"],
            p=params["p"],
        ).derive(passphrase)
        nonce = base64.b64decode(cipher["nonce"])
        ciphertext = base64.b64decode(document["ciphertext"])
    except (binascii.Error, json.JSONDecodeError, KeyError, TypeError) as error:
        raise SigstoreKeyError(f"malformed encrypted key document: {error}") from error
    try:
        der = nacl.secret.SecretBox(box_key).decrypt(ciphertext, nonce)
    except nacl.exceptions.CryptoError as error:
        raise SigstoreKeyError("wrong passphrase: the key's secretbox does not open") from error
    key = serialization.load_der_private_key(der, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise SigstoreKeyError(f"expected an ECDSA key, found {type(key).__name__}")
    return key


def _sign_bytes(private_key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    """ECDSA with SHA-256, ASN.1 DER: what sigstore's ECDSA signer produces."""
    return private_key.sign(data, ec.ECDSA(hashes.SHA256()))


def _verify_bytes(public_pem: bytes, signature: bytes, data: bytes) -> str | None:
    """Check ``signature`` over ``data`` like sigstore's ``LoadVerifier(key, SHA256)``.

    Returns:
        None when valid, else why not.
    """
    try:
        public_key = serialization.load_pem_public_key(public_pem)
    except ValueError as error:
        return f"parsing public key: {error}"
    try:
        if isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
        elif isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
        elif isinstance(public_key, ed25519.Ed25519PublicKey):
            public_key.verify(signature, data)
        else:
            return f"unsupported public key type {type(public_key).__name__}"
    except InvalidSignature:
        return "cryptographic signature verification failed"
    return None


# the sigstore signature c/image writes --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SigstoreSignature:
    """One signature as a ``.sig`` manifest layer: the payload blob and the layer annotations."""

    payload: bytes
    annotations: Mapping[str, str]
    media_type: str = SIMPLE_SIGNING

    def layer_descriptor(self) -> dict[str, Any]:
        """The layer descriptor c/image writes for it (image-spec field order, sorted map)."""
        descriptor: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": sha256_digest(self.payload),
            "size": len(self.payload),
        }
        if self.annotations:
            descriptor["annotations"] = dict(sorted(self.annotations.items()))
        return descriptor


def signature_payload(
    digest: str,
    identity: str,
    *,
    creator: str | None = DEFAULT_CREATOR,
    timestamp: int | None = None,
) -> bytes:
    """The simple-signing payload c/image's ``UntrustedSigstorePayload.MarshalJSON`` writes.

    Args:
        digest: ``sha256:<hex>`` of the signed manifest.
        identity: The signed ``docker-reference``, e.g. ``127.0.0.1:5000/team/app:v1``.
        creator: ``optional.creator`` (c/image writes ``containers/image <version>``), or None.
        timestamp: ``optional.timestamp`` in Unix seconds; None means now.
    """
    optional: dict[str, Any] = {}
    if creator is not None:
        optional["creator"] = creator
    optional["timestamp"] = int(time.time()) if timestamp is None else timestamp
    # Maps in Go: keys sorted at every level.
    document = {
        "critical": {
            "identity": {"docker-reference": identity},
            "image": {"docker-manifest-digest": digest},
            "type": COSIGN_SIGNATURE_TYPE,
        },
        "optional": optional,
    }
    return go_json(document)


def make_signature(payload: bytes, private_key: ec.EllipticCurvePrivateKey) -> SigstoreSignature:
    """Sign ``payload``; the base64 DER signature goes into the layer annotation."""
    signature = _sign_bytes(private_key, payload)
    return SigstoreSignature(payload, {SIGNATURE_ANNOTATION: _b64(signature)})


def cosign_tag(digest: str, kind: AttachmentKind) -> str:
    """cosign's attachment tag: ``sha256:<hex>`` -> ``sha256-<hex>.<kind>``."""
    return f"{digest.replace(':', '-', 1)}.{kind}"


def referrers_tag(digest: str) -> str:
    """The OCI 1.1 referrers tag schema for a sha256 subject: ``sha256-<hex>``.

    distribution-spec v1.1.0 "Referrers Tag Schema": ``<alg>-<ref>``, the ref truncated to 64
    characters (a no-op for sha256).
    """
    algorithm, _, encoded = digest.partition(":")
    return f"{algorithm[:32]}-{encoded[:64]}"


_IMAGE_CONFIG_ORDER = (
    "created",
    "author",
    "architecture",
    "variant",
    "os",
    "os.version",
    "os.features",
    "config",
    "rootfs",
    "history",
)
_HISTORY_ORDER = ("created", "created_by", "author", "comment", "empty_layer")
_DESCRIPTOR_ORDER = (
    "mediaType",
    "digest",
    "size",
    "urls",
    "annotations",
    "data",
    "platform",
    "artifactType",
)
_ALWAYS_WRITTEN = frozenset({"digest", "size", "architecture", "os", "config", "rootfs"})


def _go_struct(document: Mapping[str, Any], order: Sequence[str]) -> dict[str, Any]:
    """Re-serialise a parsed Go struct: known fields in declaration order, omitempty dropped.

    Annotations are a Go map, so their keys come out sorted.
    """
    kept = {
        key: document[key]
        for key in order
        if key in document and (key in _ALWAYS_WRITTEN or not _go_empty(document[key]))
    }
    if isinstance(kept.get("annotations"), dict):
        kept["annotations"] = dict(sorted(kept["annotations"].items()))
    return kept


def _go_empty(value: object) -> bool:
    """What ``omitempty`` leaves out: false, nil, and empty strings, slices and maps."""
    return value is None or value is False or (isinstance(value, str | list | dict) and not value)


def _sig_config(existing: Mapping[str, Any] | None, diff_ids: Sequence[str]) -> bytes:
    """The ``.sig`` config: an image-spec ``Image`` with the payload digests as ``diff_ids``."""
    config: dict[str, Any] = {"architecture": "", "os": "", "config": {}}
    if existing is not None:
        config.update(_go_struct(existing, _IMAGE_CONFIG_ORDER))
    rootfs = dict(config.get("rootfs") or {"type": "layers", "diff_ids": []})
    config["rootfs"] = {
        "type": rootfs.get("type", "layers"),
        "diff_ids": list(rootfs.get("diff_ids") or []) + list(diff_ids),
    }
    if config.get("history"):
        config["history"] = [_go_struct(entry, _HISTORY_ORDER) for entry in config["history"]]
    return go_json(_go_struct(config, _IMAGE_CONFIG_ORDER))


# the registry, read with urllib3 -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Fetched:
    body: bytes
    media_type: str


class _Reader:
    """GETs of manifests and blobs, sharing one pool; pushes go through ``push_image``."""

    def __init__(
        self, base_url: str, repository: str, headers: Mapping[str, str] | None, ssl_context: Any
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.repository = repository
        self.headers = dict(headers or {})
        self.ssl_context = ssl_context
        self._pool = urllib3.PoolManager(
            ssl_context=ssl_context, retries=False, timeout=_HTTP_TIMEOUT, num_pools=2
        )

    def close(self) -> None:
        self._pool.clear()

    def __enter__(self) -> _Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _get(self, path: str, accept: str | None) -> urllib3.BaseHTTPResponse:
        headers = {**self.headers, **({"Accept": accept} if accept else {})}
        return self._pool.request(
            "GET", f"{self.base_url}/v2/{self.repository}/{path}", headers=headers, redirect=True
        )

    def manifest(self, reference: str) -> _Fetched | None:
        """The manifest at a tag or digest, or None on 404.

        Always asks for every manifest type and lets callers check the one served: Distribution
        2.8 answers 404 for an OCI index or manifest that Accept does not name (research section
        1), and a writer taking that for "absent" would overwrite the tag.
        """
        response = self._get(f"manifests/{reference}", _MANIFEST_ACCEPT)
        if response.status == 404:
            return None
        if response.status != 200:
            raise PushError(f"GET manifest {self.repository}:{reference}: {response.status}")
        media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        return _Fetched(response.data, media_type)

    def blob(self, digest: str) -> bytes:
        """A blob's bytes, checked against its digest."""
        response = self._get(f"blobs/{digest}", None)
        if response.status != 200:
            raise PushError(f"GET blob {self.repository}@{digest}: {response.status}")
        if sha256_digest(response.data) != digest:
            raise PushError(f"blob {digest} in {self.repository} has other content")
        return response.data

    def push(self, image: Image, tag: str | None) -> str:
        return push_image(
            self.base_url,
            self.repository,
            image,
            tag,
            headers=self.headers,
            ssl_context=self.ssl_context,
        )


# signing --------------------------------------------------------------------------------------


def put_sigstore_signatures(
    base_url: str,
    repository: str,
    digest: str,
    signatures: Sequence[SigstoreSignature],
    *,
    headers: Mapping[str, str] | None = None,
    ssl_context: Any = None,
) -> str:
    """Write signatures to the ``.sig`` attachment of ``digest`` as c/image 5.23 does.

    Port of ``putSignaturesToSigstoreAttachments``: read the ``sha256-<hex>.sig`` manifest (404 =
    start a new one), skip each signature already present as an equal layer (same media type,
    size, digest and annotations), append the others as layers and their payload digests to the
    config's ``rootfs.diff_ids``, then PUT config, payloads and manifest (serialised like Go,
    image-spec 1.1.0-rc2 field order) under the tag.

    Returns:
        The digest of the ``.sig`` manifest now at the tag.

    Raises:
        PushError: The registry refused a request, or the tag holds no OCI image manifest.
    """
    tag = cosign_tag(digest, "sig")
    with _Reader(base_url, repository, headers, ssl_context) as reader:
        existing = reader.manifest(tag)
        manifest: dict[str, Any]
        config_document: dict[str, Any] | None = None
        if existing is None:
            manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {}, "layers": []}
        else:
            if existing.media_type != OCI_MANIFEST:
                raise PushError(
                    f"{repository}:{tag} is a {existing.media_type}, not an OCI manifest"
                )
            manifest = json.loads(existing.body)
            config_document = json.loads(reader.blob(manifest["config"]["digest"]))
        layers = [_go_struct(layer, _DESCRIPTOR_ORDER) for layer in manifest.get("layers") or []]
        new_blobs: list[Blob] = []
        for signature in signatures:
            descriptor = signature.layer_descriptor()
            if any(_same_layer(layer, descriptor) for layer in layers):
                continue
            layers.append(descriptor)
            new_blobs.append(Blob(signature.payload, signature.media_type))
        config = Blob(_sig_config(config_document, [b.digest for b in new_blobs]), OCI_CONFIG)
        document: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config.descriptor(),
            "layers": layers,
        }
        if manifest.get("subject"):
            document["subject"] = _go_struct(manifest["subject"], _DESCRIPTOR_ORDER)
        if manifest.get("annotations"):
            document["annotations"] = dict(sorted(manifest["annotations"].items()))
        return reader.push(Image(go_json(document), OCI_MANIFEST, (config, *new_blobs)), tag)


def _same_layer(layer: Mapping[str, Any], descriptor: Mapping[str, Any]) -> bool:
    """c/image's ``layerMatchesSigstoreSignature``."""
    return all(
        layer.get(key) == descriptor.get(key) for key in ("mediaType", "size", "digest")
    ) and (dict(layer.get("annotations") or {}) == dict(descriptor.get("annotations") or {}))


def sign_image(
    base_url: str,
    repository: str,
    digest: str,
    identity: str,
    key: KeyPair,
    *,
    creator: str | None = DEFAULT_CREATOR,
    timestamp: int | None = None,
    headers: Mapping[str, str] | None = None,
    ssl_context: Any = None,
) -> str:
    """Sign the manifest ``digest`` in ``repository``, writing what skopeo 1.9 would write.

    The stand-in for ``skopeo copy --sign-by-sigstore-private-key`` where skopeo cannot sign:
    a simple-signing payload naming ``digest`` and ``identity``, signed with ECDSA P-256/SHA-256,
    stored in (or appended to) the ``sha256-<hex>.sig`` attachment. It signs exactly that digest;
    for a multi-arch image sign the index and each child as needed (``sign_recursively``).

    Args:
        base_url: ``http://127.0.0.1:PORT``.
        repository: e.g. ``team/app``.
        digest: The manifest to sign; it is not fetched (cosign and c/image sign the digest).
        identity: The ``docker-reference`` to sign, e.g. ``127.0.0.1:PORT/team/app:v1``.
        key: The signing key pair.
        creator: ``optional.creator`` in the payload.
        timestamp: ``optional.timestamp``; None means now.
        headers: Extra headers on every request (Authorization).
        ssl_context: Client TLS context for HTTPS registries.

    Returns:
        The digest of the ``.sig`` manifest.

    Raises:
        PushError: The registry refused a request.
        SigstoreKeyError: The key does not open with its passphrase.
    """
    payload = signature_payload(digest, identity, creator=creator, timestamp=timestamp)
    signature = make_signature(payload, key.private_key())
    return put_sigstore_signatures(
        base_url, repository, digest, [signature], headers=headers, ssl_context=ssl_context
    )


def sign_recursively(
    base_url: str,
    repository: str,
    image: Image,
    identity: str,
    key: KeyPair,
    *,
    headers: Mapping[str, str] | None = None,
    ssl_context: Any = None,
) -> dict[str, str]:
    """Sign ``image`` and every manifest it contains (cosign ``sign --recursive``).

    skopeo checks a multi-arch image per platform instance, so only per-child signatures make a
    skopeo-verifiable index (research 4a).

    Returns:
        ``{signed manifest digest: .sig manifest digest}``, children first.
    """
    return {
        manifest.digest: sign_image(
            base_url,
            repository,
            manifest.digest,
            identity,
            key,
            headers=headers,
            ssl_context=ssl_context,
        )
        for manifest in image.all_manifests()
    }


class SkopeoError(RuntimeError):
    """skopeo failed for a reason these helpers do not classify; the message holds its stderr."""


def _run_skopeo(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["skopeo", *argv],
        capture_output=True,
        text=True,
        timeout=_SKOPEO_TIMEOUT_SECONDS,
        check=False,
    )


def _host_port(base_url: str) -> str:
    return urlsplit(base_url).netloc if "://" in base_url else base_url


def write_registries_d(directory: Path, *host_ports: str) -> Path:
    """A registries.d directory turning on sigstore attachments for each of ``host_ports``.

    containers-registries.d(5): scopes are host[:port]; with a port, only that exact scope
    matches, so the file names the host and port the image reference uses.
    """
    directory.mkdir(parents=True, exist_ok=True)
    scopes = "".join(
        f"  {host_port}:\n    use-sigstore-attachments: true\n" for host_port in host_ports
    )
    (directory / "sigstore-attachments.yaml").write_text(f"docker:\n{scopes}", encoding="utf-8")
    return directory


def _open_policy(path: Path) -> Path:
    path.write_text(json.dumps({"default": [{"type": "insecureAcceptAnything"}]}), encoding="utf-8")
    return path


def sign_with_skopeo(
    host_port: str, repository: str, digest: str, identity: str, key: KeyPair, *, workdir: Path
) -> bool:
    """Ask skopeo to sign ``digest`` in place: ``skopeo copy --sign-by-sigstore-private-key``.

    The image is copied onto itself by digest (``--all --preserve-digests``, so an index is
    signed as the index, not as one platform) with sigstore attachments enabled for
    ``host_port``; skopeo then writes the ``.sig`` attachment.

    Args:
        host_port: ``127.0.0.1:PORT`` of a plain-HTTP registry without auth.
        repository: e.g. ``team/app``.
        digest: The manifest to sign.
        identity: Passed as ``--sign-identity``.
        key: Written into ``workdir`` with its passphrase file.
        workdir: Scratch directory for key, passphrase, policy and registries.d.

    Returns:
        True when skopeo signed; False when it answered that sigstore is disabled (Debian's
        skopeo 1.9.3), in which case nothing was signed.

    Raises:
        SkopeoError: Any other failure.
    """
    files = key.write(workdir / "keys")
    reference = f"docker://{host_port}/{repository}@{digest}"
    done = _run_skopeo(
        [
            "--policy",
            str(_open_policy(workdir / "policy-open.json")),
            "--registries.d",
            str(write_registries_d(workdir / "registries.d", host_port)),
            "copy",
            "--all",
            "--preserve-digests",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            "--sign-by-sigstore-private-key",
            str(files.private_key),
            "--sign-passphrase-file",
            str(files.passphrase),
            "--sign-identity",
            identity,
            reference,
            reference,
        ]
    )
    if done.returncode == 0:
        return True
    if DEBIAN_SIGSTORE_DISABLED in done.stderr:
        return False
    raise SkopeoError(f"skopeo could not sign {reference}: {done.stderr.strip()}")


class Signer(StrEnum):
    """Who wrote a signature: skopeo itself, or the Python stand-in in this module."""

    SKOPEO = "skopeo"
    PYTHON = "python"


@dataclass(frozen=True, slots=True)
class Signed:
    """The outcome of ``sign``: the ``.sig`` manifest digest and who wrote it."""

    sig_digest: str
    signer: Signer


def sign(
    base_url: str, repository: str, digest: str, identity: str, key: KeyPair, *, workdir: Path
) -> Signed:
    """Sign with skopeo when this skopeo can sign, else with ``sign_image``.

    Tests written against this upgrade themselves to the real client on a machine whose skopeo
    has sigstore enabled. Plain HTTP, no auth (skopeo gets ``--*-tls-verify=false``).

    Raises:
        SkopeoError: skopeo failed for another reason than Debian's disabled sigstore.
        PushError: The registry refused a request (stand-in path), or the ``.sig`` tag is
            missing after skopeo reported success.
    """
    if sign_with_skopeo(_host_port(base_url), repository, digest, identity, key, workdir=workdir):
        with _Reader(base_url, repository, None, None) as reader:
            written = reader.manifest(cosign_tag(digest, "sig"))
        if written is None:
            raise PushError(f"skopeo signed {repository}@{digest} but wrote no .sig tag")
        return Signed(sha256_digest(written.body), Signer.SKOPEO)
    return Signed(sign_image(base_url, repository, digest, identity, key), Signer.PYTHON)


# verification ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Verdict:
    """What ``verify_signature`` decided.

    Attributes:
        accepted: True when one signature passed every check.
        digest: The image manifest's digest (None when the manifest was not found).
        reasons: Why each signature (or the lookup) was rejected; empty when accepted.
        signed_identity: The ``docker-reference`` of the accepted signature.
    """

    accepted: bool
    digest: str | None
    reasons: tuple[str, ...] = ()
    signed_identity: str | None = None

    @property
    def reason(self) -> str:
        """The reasons as one line."""
        return "; ".join(self.reasons)


class _PayloadError(ValueError):
    """A signature payload that c/image's strict parser would refuse."""


def _exact_fields(value: object, fields: Sequence[str], where: str) -> dict[str, Any]:
    """c/image's ``ParanoidUnmarshalJSONObjectExactFields``: exactly these keys, no others."""
    if not isinstance(value, dict):
        raise _PayloadError(f"{where} is not a JSON object")
    if set(value) != set(fields):
        raise _PayloadError(
            f"{where} has fields {sorted(value)}, expected exactly {sorted(fields)}"
        )
    return value


def _parse_payload(payload: bytes) -> tuple[str, str]:
    """Parse a simple-signing payload as strictly as c/image; return (digest, reference)."""
    document = json.loads(payload)
    top = _exact_fields(document, ("critical", "optional"), "payload")
    optional = top["optional"]
    # cosign writes "optional": null when there are no annotations.
    if optional is not None:
        if not isinstance(optional, dict):
            raise _PayloadError("optional is not a JSON object")
        timestamp = optional.get("timestamp")
        if timestamp is not None and (
            not isinstance(timestamp, int | float) or timestamp != int(timestamp)
        ):
            raise _PayloadError("Field optional.timestamp is not an integer")
    critical = _exact_fields(top["critical"], ("type", "image", "identity"), "critical")
    if critical["type"] != COSIGN_SIGNATURE_TYPE:
        raise _PayloadError(f"Unrecognized signature type {critical['type']}")
    image = _exact_fields(critical["image"], ("docker-manifest-digest",), "critical.image")
    identity = _exact_fields(critical["identity"], ("docker-reference",), "critical.identity")
    digest, reference = image["docker-manifest-digest"], identity["docker-reference"]
    if not isinstance(digest, str) or not isinstance(reference, str):
        raise _PayloadError("docker-manifest-digest and docker-reference must be strings")
    return digest, reference


def verify_payload(
    public_pem: bytes, payload: bytes, base64_signature: str, *, digest: str, identity: str
) -> str | None:
    """c/image's ``VerifySigstorePayload`` with the rules a ``sigstoreSigned`` policy applies.

    In c/image's order: decode and check the signature over the exact payload bytes, parse the
    payload strictly, require ``critical.image.docker-manifest-digest`` == ``digest``, then
    ``critical.identity.docker-reference`` == ``identity`` (the expected identity, already
    remapped by the caller if the signature names another registry).

    Returns:
        None when accepted, else the reason.
    """
    try:
        signature = base64.b64decode(base64_signature, validate=True)
    except binascii.Error as error:
        return f"base64 decoding: {error}"
    failure = _verify_bytes(public_pem, signature, payload)
    if failure is not None:
        return failure
    try:
        signed_digest, signed_reference = _parse_payload(payload)
    except ValueError as error:  # _PayloadError and json.JSONDecodeError
        return f"invalid signature payload: {error}"
    if signed_digest != digest:
        return f"Signature for digest {signed_digest} does not match"
    if signed_reference != identity:
        return f"Signature for identity {signed_reference} is not accepted"
    return None


def verify_signature(
    base_url: str,
    repository: str,
    reference: str,
    public_pem: bytes,
    identity: str,
    *,
    headers: Mapping[str, str] | None = None,
    ssl_context: Any = None,
) -> Verdict:
    """Check a registry's image against its ``.sig`` attachment, as skopeo's policy would.

    Steps (c/image ``prSigstoreSigned.isRunningImageAllowed``): GET the manifest at ``reference``
    (its digest is the sha256 of the bytes served), GET ``sha256-<hex>.sig``, and for each layer
    of media type ``simplesigning`` fetch the payload blob (digest-checked) and run
    ``verify_payload``. One accepted signature is enough.

    Args:
        base_url: ``http://127.0.0.1:PORT``.
        repository: e.g. ``team/app``.
        reference: A tag, or a digest ``sha256:<hex>``.
        public_pem: The ``PUBLIC KEY`` PEM.
        identity: The docker-reference the signature must name exactly (after a promotion that
            is still the source's reference, unless the caller remaps).
        headers: Extra headers (Authorization).
        ssl_context: Client TLS context for HTTPS.

    Returns:
        The verdict; rejections carry reasons rather than raising.

    Raises:
        PushError: An unexpected HTTP status.
    """
    with _Reader(base_url, repository, headers, ssl_context) as reader:
        fetched = reader.manifest(reference)
        if fetched is None:
            return Verdict(False, None, (f"no manifest {repository}:{reference}",))
        digest = sha256_digest(fetched.body)
        if reference.startswith("sha256:") and reference != digest:
            return Verdict(
                False, digest, (f"served manifest has digest {digest}, not {reference}",)
            )
        tag = cosign_tag(digest, "sig")
        attachment = reader.manifest(tag)
        if attachment is None:
            return Verdict(False, digest, (f"no .sig tag {tag} (404)",))
        if attachment.media_type != OCI_MANIFEST:
            return Verdict(False, digest, (f"{tag} is a {attachment.media_type}",))
        reasons: list[str] = []
        for layer in json.loads(attachment.body).get("layers") or []:
            if layer.get("mediaType") != SIMPLE_SIGNING:
                continue
            try:
                payload = reader.blob(layer["digest"])
            except PushError as error:
                reasons.append(str(error))
                continue
            encoded = (layer.get("annotations") or {}).get(SIGNATURE_ANNOTATION)
            if encoded is None:
                reasons.append(f"missing {SIGNATURE_ANNOTATION} annotation")
                continue
            failure = verify_payload(public_pem, payload, encoded, digest=digest, identity=identity)
            if failure is None:
                return Verdict(True, digest, (), identity)
            reasons.append(failure)
    return Verdict(
        False, digest, tuple(reasons) or ("A signature was required, but no signature exists",)
    )


class SkopeoVerdict(StrEnum):
    """What ``skopeo copy`` with a ``sigstoreSigned`` policy concluded about an image."""

    VERIFIED = "verified"
    # Debian's skopeo found a signature and refused to check it (sigstore patched out).
    SIGNATURE_FOUND_UNVERIFIABLE = "signature-found-unverifiable"
    NO_SIGNATURE = "no-signature"


def classify_skopeo_verification(returncode: int, stderr: str) -> SkopeoVerdict:
    """Map a ``skopeo copy`` outcome under a ``sigstoreSigned`` policy to a verdict.

    ``skopeo copy`` wraps the policy error ("Source image rejected: ...", prefixed per platform
    for lists), so the messages are matched as substrings.

    Raises:
        SkopeoError: Any failure other than the two known policy messages (a rejected
            signature on a sigstore-enabled skopeo, a registry error, a policy syntax error).
    """
    if returncode == 0:
        return SkopeoVerdict.VERIFIED
    if DEBIAN_SIGSTORE_DISABLED in stderr:
        return SkopeoVerdict.SIGNATURE_FOUND_UNVERIFIABLE
    if NO_SIGNATURE_MESSAGE in stderr:
        return SkopeoVerdict.NO_SIGNATURE
    raise SkopeoError(f"skopeo verification failed (rc={returncode}): {stderr.strip()}")


def skopeo_verify(
    host_port: str,
    repository: str,
    tag: str,
    public_key_path: Path,
    *,
    workdir: Path,
    signed_prefix: str | None = None,
    copy_all: bool = False,
) -> SkopeoVerdict:
    """Have skopeo check an image's sigstore signature: a copy to ``dir:`` under a strict policy.

    The policy rejects everything except ``docker`` images under ``host_port/repository``,
    which need a ``sigstoreSigned`` signature by ``public_key_path``; registries.d turns on
    sigstore attachments for ``host_port``. The signed identity must be this repository
    (``matchRepository``), or, with ``signed_prefix``, the remapped one: ``remapIdentity`` from
    ``signed_prefix`` (e.g. the source ``127.0.0.1:5000/team/app``) to
    ``host_port/repository``, after which the tag must match exactly.

    Args:
        host_port: ``127.0.0.1:PORT`` of a plain-HTTP registry without auth.
        repository: e.g. ``team/app``.
        tag: A tag, or a digest ``sha256:<hex>``.
        public_key_path: The ``PUBLIC KEY`` PEM file.
        workdir: Scratch directory (policy, registries.d, the copied image).
        signed_prefix: The registry/repository the signature names, when not this one.
        copy_all: Pass ``--all``: check every platform of a list, not only this system's one
            (c/image evaluates the policy per platform instance, research 4a).

    Raises:
        SkopeoError: See ``classify_skopeo_verification``.
    """
    scope = f"{host_port}/{repository}"
    identity: dict[str, str] = (
        {"type": "remapIdentity", "prefix": scope, "signedPrefix": signed_prefix}
        if signed_prefix is not None
        else {"type": "matchRepository"}
    )
    requirement = {
        "type": "sigstoreSigned",
        "keyPath": str(public_key_path),
        "signedIdentity": identity,
    }
    policy = {"default": [{"type": "reject"}], "transports": {"docker": {scope: [requirement]}}}
    workdir.mkdir(parents=True, exist_ok=True)
    policy_path = workdir / "policy-verify.json"
    policy_path.write_text(json.dumps(policy), encoding="utf-8")
    output = tempfile.mkdtemp(prefix="verified-", dir=workdir)
    reference = f"{scope}@{tag}" if tag.startswith("sha256:") else f"{scope}:{tag}"
    done = _run_skopeo(
        [
            "--policy",
            str(policy_path),
            "--registries.d",
            str(write_registries_d(workdir / "registries.d", host_port)),
            "copy",
            *(["--all"] if copy_all else []),
            "--src-tls-verify=false",
            f"docker://{reference}",
            f"dir:{output}",
        ]
    )
    return classify_skopeo_verification(done.returncode, done.stderr)


# OCI 1.1 referrers and cosign tag attachments ---------------------------------------------------


def referrer(
    subject: Mapping[str, Any],
    artifact_type: str,
    content: bytes,
    content_media_type: str,
    annotations: Mapping[str, str] | None = None,
) -> Image:
    """An OCI 1.1 artifact manifest that refers to ``subject`` (cosign v3, oras, notation style).

    An OCI image manifest with ``artifactType``, the empty config
    (``application/vnd.oci.empty.v1+json``, content ``{}``), one layer holding ``content``, and
    ``subject``; image-spec v1.1 "Guidelines for Artifact Usage".

    Args:
        subject: The subject's descriptor; ``mediaType``, ``digest`` and ``size`` are kept.
        artifact_type: e.g. ``application/spdx+json`` or ``SIGSTORE_BUNDLE``.
        content: The artifact's bytes.
        content_media_type: The layer's media type.
        annotations: Manifest annotations (copied into the fallback index by ``push_referrer``).
    """
    config = Blob(b"{}", OCI_EMPTY)
    layer_blob = Blob(content, content_media_type)
    document: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": config.descriptor(),
        "layers": [layer_blob.descriptor()],
        "subject": {key: subject[key] for key in ("mediaType", "digest", "size")},
    }
    if annotations:
        document["annotations"] = dict(annotations)
    return Image(json.dumps(document, indent=2).encode(), OCI_MANIFEST, (config, layer_blob))


def referrer_descriptor(image: Image) -> dict[str, Any]:
    """The descriptor a referrers list holds for ``image`` (distribution-spec v1.1).

    "Pushing Manifests with Subject": ``artifactType`` is the manifest's, else its config's
    ``mediaType`` (for an index: its own, else none); all manifest annotations are copied.
    """
    document = json.loads(image.manifest)
    descriptor: dict[str, Any] = image.descriptor()
    artifact_type = document.get("artifactType") or (document.get("config") or {}).get("mediaType")
    if artifact_type:
        descriptor["artifactType"] = artifact_type
    if document.get("annotations"):
        descriptor["annotations"] = dict(document["annotations"])
    return descriptor


def fallback_referrers(
    base_url: str,
    repository: str,
    subject_digest: str,
    *,
    headers: Mapping[str, str] | None = None,
    ssl_context: Any = None,
) -> list[dict[str, Any]] | None:
    """The descriptors in the ``sha256-<hex>`` fallback index, or None when the tag is absent.

    Raises:
        PushError: The tag holds something other than an OCI index.
    """
    with _Reader(base_url, repository, headers, ssl_context) as reader:
        return _read_fallback(reader, subject_digest)


def _read_fallback(reader: _Reader, subject_digest: str) -> list[dict[str, Any]] | None:
    tag = referrers_tag(subject_digest)
    fetched = reader.manifest(tag)
    if fetched is None:
        return None
    if fetched.media_type != OCI_INDEX:
        raise PushError(
            f"{reader.repository}:{tag} is a {fetched.media_type}, not a referrers index"
        )
    manifests: list[dict[str, Any]] = json.loads(fetched.body).get("manifests") or []
    return manifests


def push_referrer(
    base_url: str,
    repository: str,
    image: Image,
    subject_digest: str,
    *,
    headers: Mapping[str, str] | None = None,
    ssl_context: Any = None,
) -> str:
    """Push a referrer to a registry without the referrers API, the way a 1.1 client must.

    distribution-spec v1.1 "Pushing Manifests with Subject", for a registry that sends no
    ``OCI-Subject``: push the manifest by digest, pull the ``sha256-<hex>`` index (404 = empty;
    anything but an OCI index = failure), append this referrer's descriptor unless its digest is
    already listed, and push the index back. Not safe against concurrent writers (the spec's
    own warning; Distribution 2.8 ignores ``If-Match``).

    Returns:
        The referrer manifest's digest.

    Raises:
        PushError: A refused request, or a fallback tag that is not an OCI index.
    """
    with _Reader(base_url, repository, headers, ssl_context) as reader:
        digest = reader.push(image, None)
        manifests = _read_fallback(reader, subject_digest) or []
        if any(entry.get("digest") == digest for entry in manifests):
            return digest
        manifests.append(referrer_descriptor(image))
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}
        reader.push(
            Image(json.dumps(index, indent=2).encode(), OCI_INDEX, ()),
            referrers_tag(subject_digest),
        )
    return digest


_GGCR_ZERO_TIME = "0001-01-01T00:00:00Z"


def cosign_attachment(
    kind: Literal["att", "sbom"],
    content: bytes,
    *,
    media_type: str | None = None,
    annotations: Mapping[str, str] | None = None,
) -> Image:
    """A cosign tag attachment: the manifest cosign 2.x pushes under ``.att`` or ``.sbom``.

    Shape of cosign's ``static`` layers on go-containerregistry's empty image: OCI manifest,
    config ``application/vnd.oci.image.config.v1+json`` with go-containerregistry's zero-time
    ``created`` and one history entry per layer, one layer carrying ``content``:
    ``att`` -> ``application/vnd.dsse.envelope.v1+json`` (a DSSE envelope, see ``dsse_envelope``;
    cosign sets the ``predicateType`` layer annotation), ``sbom`` -> the SBOM's own media type
    (default ``text/spdx+json``). research 3a.

    Args:
        kind: ``att`` or ``sbom``.
        content: The layer bytes.
        media_type: Overrides the layer media type.
        annotations: Layer annotations (e.g. ``{"predicateType": SLSA_PROVENANCE}``).
    """
    default = DSSE_ENVELOPE if kind == "att" else SPDX_JSON
    layer_blob = Blob(content, media_type or default)
    config = Blob(
        go_json(
            {
                "architecture": "",
                "created": _GGCR_ZERO_TIME,
                "history": [{"created": _GGCR_ZERO_TIME}],
                "os": "",
                "rootfs": {"type": "layers", "diff_ids": [layer_blob.digest]},
                "config": {},
            }
        ),
        OCI_CONFIG,
    )
    layer_descriptor = layer_blob.descriptor()
    if annotations:
        layer_descriptor["annotations"] = dict(sorted(annotations.items()))
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.descriptor(),
        "layers": [layer_descriptor],
    }
    return Image(go_json(document), OCI_MANIFEST, (config, layer_blob))


def push_cosign_attachment(
    base_url: str,
    repository: str,
    subject_digest: str,
    kind: Literal["att", "sbom"],
    attachment: Image,
    *,
    headers: Mapping[str, str] | None = None,
    ssl_context: Any = None,
) -> str:
    """Push ``attachment`` under ``sha256-<hex>.<kind>`` of ``subject_digest``; return its digest.

    The tag is replaced, not merged (build one attachment with all its layers instead).
    """
    return push_image(
        base_url,
        repository,
        attachment,
        cosign_tag(subject_digest, kind),
        headers=headers,
        ssl_context=ssl_context,
    )


def in_toto_statement(
    subject_name: str, subject_digest: str, predicate_type: str, predicate: Mapping[str, Any]
) -> dict[str, Any]:
    """An in-toto v1 statement about one subject (what cosign attestations wrap)."""
    algorithm, _, encoded = subject_digest.partition(":")
    return {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": subject_name, "digest": {algorithm: encoded}}],
        "predicateType": predicate_type,
        "predicate": dict(predicate),
    }


def dsse_pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: what a DSSE signature is computed over."""
    kind = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def dsse_envelope(statement: Mapping[str, Any], key: KeyPair, payload_type: str = IN_TOTO) -> bytes:
    """A signed DSSE envelope around ``statement`` (the body of a cosign attestation)."""
    payload = json.dumps(statement, separators=(",", ":")).encode("utf-8")
    signature = _sign_bytes(key.private_key(), dsse_pae(payload_type, payload))
    envelope = {
        "payloadType": payload_type,
        "payload": _b64(payload),
        "signatures": [{"keyid": "", "sig": _b64(signature)}],
    }
    return json.dumps(envelope, separators=(",", ":")).encode("utf-8")


def verify_dsse_envelope(envelope: bytes, public_pem: bytes) -> dict[str, Any]:
    """Open a DSSE envelope whose first signature is by ``public_pem``; return the statement.

    Raises:
        ValueError: The signature does not verify.
    """
    document = json.loads(envelope)
    payload = base64.b64decode(document["payload"])
    signature = base64.b64decode(document["signatures"][0]["sig"])
    failure = _verify_bytes(public_pem, signature, dsse_pae(document["payloadType"], payload))
    if failure is not None:
        raise ValueError(failure)
    statement: dict[str, Any] = json.loads(payload)
    return statement


def sigstore_bundle(statement: Mapping[str, Any], key: KeyPair) -> bytes:
    """A sigstore bundle v0.3 carrying a DSSE envelope, as cosign v3 attaches by referrer.

    Key-based (``verificationMaterial.publicKey.hint`` = base64 sha256 of the public key DER),
    without transparency-log entries: enough for a copier, which must carry it byte for byte.
    """
    envelope = json.loads(dsse_envelope(statement, key))
    public_der = serialization.load_pem_public_key(key.public_pem).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    bundle = {
        "mediaType": SIGSTORE_BUNDLE,
        "verificationMaterial": {"publicKey": {"hint": _b64(hashlib.sha256(public_der).digest())}},
        "dsseEnvelope": envelope,
    }
    return json.dumps(bundle, separators=(",", ":")).encode("utf-8")


@dataclass(frozen=True, slots=True)
class SbomChain:
    """What ``push_signed_sbom_chain`` wrote: an image's SBOM and the SBOM's signatures.

    Attributes:
        image: Descriptor of the image the SBOM describes.
        sbom: Digest of the SBOM referrer (subject = the image; listed in ``sha256-<image>``).
        sbom_sig: Digest of the ``sha256-<sbom>.sig`` manifest signing the SBOM, or None.
        sbom_signature_referrer: Digest of the cosign v3 style bundle referrer whose subject is
            the SBOM (listed in ``sha256-<sbom>``), or None.
    """

    image: Mapping[str, Any]
    sbom: str
    sbom_sig: str | None
    sbom_signature_referrer: str | None

    @property
    def digests(self) -> tuple[str, ...]:
        """Every manifest digest the chain added, in push order."""
        written = (self.sbom, self.sbom_sig, self.sbom_signature_referrer)
        return tuple(d for d in written if d is not None)


def spdx_document(name: str, seed: str) -> bytes:
    """A small, valid-looking SPDX 2.3 JSON document (content differs per seed)."""
    document = {
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": name,
        "documentNamespace": f"https://example.invalid/spdx/{name}-{seed}",
        "creationInfo": {
            "created": "2026-01-01T00:00:00Z",
            "creators": ["Tool: promoter-devtools"],
        },
        "packages": [
            {
                "name": name,
                "SPDXID": "SPDXRef-Package",
                "versionInfo": seed,
                "downloadLocation": "NOASSERTION",
            }
        ],
    }
    return json.dumps(document, indent=2).encode("utf-8")


def push_signed_sbom_chain(
    base_url: str,
    repository: str,
    image_digest: str,
    key: KeyPair,
    identity: str,
    *,
    sbom: bytes | None = None,
    tag_signature: bool = True,
    referrer_signature: bool = True,
    headers: Mapping[str, str] | None = None,
    ssl_context: Any = None,
) -> SbomChain:
    """Attach a signed SBOM to an image: a chain of referrers two levels deep.

    1. An SBOM referrer (``artifactType`` ``text/spdx+json``) whose subject is the image,
       recorded in the image's ``sha256-<hex>`` fallback index.
    2. With ``tag_signature``, a ``.sig`` attachment on the SBOM manifest's digest
       (``sign_image``, identity ``identity``), as cosign 2 signs any digest.
    3. With ``referrer_signature``, a cosign v3 style bundle referrer (``artifactType``
       ``SIGSTORE_BUNDLE``) whose subject is the SBOM, recorded in the SBOM's fallback index.

    A copier has to recurse (referrers of referrers) to carry all of it.

    Raises:
        PushError: The image is missing, or the registry refused a request.
    """
    with _Reader(base_url, repository, headers, ssl_context) as reader:
        fetched = reader.manifest(image_digest)
    if fetched is None:
        raise PushError(f"no manifest {repository}@{image_digest} to attach an SBOM to")
    image = {"mediaType": fetched.media_type, "digest": image_digest, "size": len(fetched.body)}
    content = sbom if sbom is not None else spdx_document(repository, image_digest)
    sbom_image = referrer(
        image, SPDX_JSON, content, SPDX_JSON, {CREATED_ANNOTATION: "2026-01-01T00:00:00Z"}
    )
    sbom_digest = push_referrer(
        base_url, repository, sbom_image, image_digest, headers=headers, ssl_context=ssl_context
    )
    sbom_sig = None
    if tag_signature:
        sbom_sig = sign_image(
            base_url,
            repository,
            sbom_digest,
            identity,
            key,
            headers=headers,
            ssl_context=ssl_context,
        )
    bundle_digest = None
    if referrer_signature:
        statement = in_toto_statement(
            f"{_host_port(base_url)}/{repository}",
            sbom_digest,
            COSIGN_SIGN_PREDICATE,
            {},
        )
        bundle = referrer(
            sbom_image.descriptor(),
            SIGSTORE_BUNDLE,
            sigstore_bundle(statement, key),
            SIGSTORE_BUNDLE,
            {
                CREATED_ANNOTATION: "2026-01-01T00:00:00Z",
                "dev.sigstore.bundle.content": "dsse-envelope",
                "dev.sigstore.bundle.predicateType": COSIGN_SIGN_PREDICATE,
            },
        )
        bundle_digest = push_referrer(
            base_url, repository, bundle, sbom_digest, headers=headers, ssl_context=ssl_context
        )
    return SbomChain(image, sbom_digest, sbom_sig, bundle_digest)
