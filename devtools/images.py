"""Deterministic image builders and an independent pusher for seeding test registries.

Tests need images whose every byte and digest they know in advance, so the builders are pure
functions of their arguments (a seed picks the content). The pusher deliberately does not use
promoter: fixtures built with the code under test would let a bug agree with itself. It speaks
just enough of the distribution API (HEAD, POST + monolithic PUT, manifest PUT) with urllib3.
"""

from __future__ import annotations

import gzip as gzip_module
import hashlib
import json
import tarfile
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import urllib3
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER_TAR = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
OCI_FOREIGN_LAYER_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
HELM_CONFIG = "application/vnd.cncf.helm.config.v1+json"
HELM_CHART = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"
REF_NAME_ANNOTATION = "org.opencontainers.image.ref.name"

MANIFEST_MEDIA_TYPES = frozenset({DOCKER_MANIFEST, OCI_MANIFEST})
INDEX_MEDIA_TYPES = frozenset({DOCKER_MANIFEST_LIST, OCI_INDEX})

EMPTY_LAYER_DIGEST = "sha256:a3ed95caeb02ffe68cdd9fd84406680ae93d633cb16422d00e8a7c22955b46d4"
# The gzip stream Docker's Go code emits for an empty (1024 zero bytes) tar. Reproducing it
# with Python's gzip would give different bytes and so a different digest.
_GZIPPED_EMPTY_TAR = bytes.fromhex(
    "1f8b080000096e8800ff621805a360148c5800080000ffff2eafb5ef00040000"
)

_CHUNK = 4 * 1024 * 1024
_GZIP_MAGIC = b"\x1f\x8b"
_HTTP_TIMEOUT = urllib3.Timeout(connect=10.0, read=120.0)


def sha256_digest(data: bytes) -> str:
    """The ``sha256:<hex>`` digest of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def sha512_digest(data: bytes) -> str:
    """``sha512:<hex>`` of ``data``."""
    return "sha512:" + hashlib.sha512(data).hexdigest()


@dataclass(frozen=True)
class Blob:
    """Content-addressed bytes with the media type a descriptor should announce."""

    data: bytes
    media_type: str

    @cached_property
    def digest(self) -> str:
        """``sha256:<hex>`` of the data (cached: layers can be large)."""
        return sha256_digest(self.data)

    @property
    def size(self) -> int:
        """Length in bytes."""
        return len(self.data)

    def descriptor(self, **extra: Any) -> dict[str, Any]:
        """An OCI/Docker descriptor for this blob; ``extra`` adds fields such as annotations."""
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size, **extra}


@dataclass(frozen=True)
class Image:
    """A manifest (image, index or artifact) with the blobs and child manifests it needs.

    Attributes:
        manifest: The exact manifest bytes; the digest is over these bytes.
        media_type: Content type to PUT the manifest with.
        blobs: Config and layer blobs referenced directly (empty for an index).
        children: Manifests an index references, pushed before it.
    """

    manifest: bytes
    media_type: str
    blobs: tuple[Blob, ...]
    children: tuple[Image, ...] = ()

    @cached_property
    def digest(self) -> str:
        """``sha256:<hex>`` of the manifest bytes."""
        return sha256_digest(self.manifest)

    @property
    def size(self) -> int:
        """Length of the manifest in bytes."""
        return len(self.manifest)

    def descriptor(self, **extra: Any) -> dict[str, Any]:
        """A descriptor pointing at this manifest (as used in an index)."""
        return {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size,
            **extra,
        }

    def all_blobs(self) -> tuple[Blob, ...]:
        """Every blob of this image and its descendants, each digest once, in push order."""
        seen: dict[str, Blob] = {}
        for manifest in self.all_manifests():
            for blob in manifest.blobs:
                seen.setdefault(blob.digest, blob)
        return tuple(seen.values())

    def all_manifests(self) -> tuple[Image, ...]:
        """This manifest and all descendants, children before parents, each digest once.

        That is the order a registry needs them in: an index may only be PUT once every
        manifest it references exists.
        """
        seen: dict[str, Image] = {}

        def visit(image: Image) -> None:
            for child in image.children:
                visit(child)
            seen.setdefault(image.digest, image)

        visit(self)
        return tuple(seen.values())

    def platform(self) -> dict[str, str] | None:
        """The platform recorded in this image's config, or None if it has no image config."""
        if self.media_type not in MANIFEST_MEDIA_TYPES or not self.blobs:
            return None
        config_blob = self.blobs[0]
        if config_blob.media_type not in (DOCKER_CONFIG, OCI_CONFIG):
            return None
        config = json.loads(config_blob.data)
        platform = {"architecture": config["architecture"], "os": config["os"]}
        if config.get("variant"):
            platform["variant"] = config["variant"]
        return platform


# content ---------------------------------------------------------------------------------------


def random_bytes(size: int, seed: int | str) -> bytes:
    """Deterministic incompressible bytes, fast enough for GiB-sized layers.

    AES-CTR over zeros is a seeded keystream: several hundred MB/s and gzip cannot shrink it,
    which keeps transfer sizes honest in benchmarks.
    """
    key = hashlib.sha256(f"{type(seed).__name__}:{seed}".encode()).digest()
    encryptor = Cipher(algorithms.AES(key), modes.CTR(b"\0" * 16)).encryptor()
    # update_into a preallocated buffer is several times faster than update() for big sizes;
    # cryptography wants block_size - 1 bytes of headroom past each chunk.
    out = bytearray(size + 15)
    view = memoryview(out)
    zeros = bytes(min(_CHUNK, size))
    for offset in range(0, size, _CHUNK):
        n = min(_CHUNK, size - offset)
        encryptor.update_into(zeros[:n], view[offset : offset + n + 15])
    data = bytes(view[:size])
    view.release()
    return data


def _tar_one_file(name: str, payload: bytes) -> bytes:
    """A ustar archive holding one regular file, with fixed metadata for determinism."""
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    info.mode = 0o644
    info.mtime = 0
    info.uname = info.gname = "root"
    header = info.tobuf(format=tarfile.USTAR_FORMAT)
    padding = b"\0" * (-len(payload) % tarfile.BLOCKSIZE)
    body = header + payload + padding + b"\0" * (2 * tarfile.BLOCKSIZE)
    # Pad to a whole tar record, as GNU tar and Go's archive/tar readers expect.
    return body + b"\0" * (-len(body) % tarfile.RECORDSIZE)


def layer(size: int, seed: int | str, *, gzip: bool = True) -> bytes:
    """Deterministic layer content.

    Args:
        size: Bytes of file content (gzip=True) or of the whole blob (gzip=False).
        seed: Picks the content; equal seeds and sizes give equal bytes.
        gzip: True gives a gzipped tar holding one file of ``size`` random bytes. False gives
            exactly ``size`` raw random bytes (not a tar): cheap for large benchmark layers,
            and registries never look inside layers.

    Returns:
        The blob bytes.
    """
    payload = random_bytes(size, seed)
    if not gzip:
        return payload
    tar = _tar_one_file(f"layer-{seed}.bin", payload)
    # Level 1: random data does not compress anyway, and level 9 is far slower on it.
    return gzip_module.compress(tar, compresslevel=1, mtime=0)


def empty_layer() -> bytes:
    """The 32-byte gzipped empty tar Docker uses for layers that change nothing."""
    return _GZIPPED_EMPTY_TAR


def _is_gzip(data: bytes) -> bool:
    return data[:2] == _GZIP_MAGIC


def diff_id(data: bytes) -> str:
    """Digest of the uncompressed layer, as config ``rootfs.diff_ids`` requires."""
    if not _is_gzip(data):
        return sha256_digest(data)
    hasher = hashlib.sha256()
    inflater = zlib.decompressobj(wbits=31)
    for offset in range(0, len(data), _CHUNK):
        hasher.update(inflater.decompress(data[offset : offset + _CHUNK]))
    hasher.update(inflater.flush())
    return "sha256:" + hasher.hexdigest()


def _dump(document: Mapping[str, Any]) -> bytes:
    """Serialise a manifest or config: stable key order so equal inputs give equal digests."""
    return json.dumps(document, indent=2).encode("utf-8")


# builders --------------------------------------------------------------------------------------


def _config(
    layers: Sequence[bytes],
    extra_diff_ids: Iterable[str],
    *,
    arch: str,
    os: str,
    variant: str | None,
    seed: str,
) -> bytes:
    diff_ids = [diff_id(data) for data in layers] + list(extra_diff_ids)
    document: dict[str, Any] = {
        "architecture": arch,
        "os": os,
        "config": {"Labels": {"devtools.seed": seed}, "Cmd": ["/bin/true"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created_by": f"devtools layer {i}"} for i in range(len(diff_ids))],
    }
    if variant:
        document["variant"] = variant
    return _dump(document)


def docker_image(
    layers: Sequence[bytes],
    *,
    arch: str = "amd64",
    os: str = "linux",
    seed: str,
    variant: str | None = None,
) -> Image:
    """A Docker v2 schema 2 image.

    Args:
        layers: Layer blobs (gzip detected by magic bytes, which picks the media type).
        arch: Config ``architecture``.
        os: Config ``os``.
        seed: Written into the config so images with equal layers still differ in digest.
        variant: Config ``variant`` (e.g. ``v8`` for arm64).
    """
    layer_blobs = [
        Blob(data, DOCKER_LAYER_GZIP if _is_gzip(data) else DOCKER_LAYER_TAR) for data in layers
    ]
    config = Blob(_config(layers, (), arch=arch, os=os, variant=variant, seed=seed), DOCKER_CONFIG)
    manifest = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": config.descriptor(),
        "layers": [b.descriptor() for b in layer_blobs],
    }
    return Image(_dump(manifest), DOCKER_MANIFEST, (config, *layer_blobs))


def oci_image(
    layers: Sequence[bytes],
    *,
    arch: str = "amd64",
    os: str = "linux",
    seed: str,
    extra_layers: Sequence[Mapping[str, Any]] = (),
    variant: str | None = None,
    annotations: Mapping[str, str] | None = None,
) -> Image:
    """An OCI image manifest.

    Args:
        layers: Layer blobs (gzip detected by magic bytes, which picks the media type).
        arch: Config ``architecture``.
        os: Config ``os``.
        seed: Written into the config so images with equal layers still differ in digest.
        extra_layers: Raw descriptors appended after ``layers`` whose blobs are NOT part of the
            image, e.g. a foreign layer with ``urls`` that a registry must accept without the
            blob. Their digest stands in for the diff_id, since the content is unknown.
        variant: Config ``variant``.
        annotations: Manifest annotations.
    """
    layer_blobs = [
        Blob(data, OCI_LAYER_GZIP if _is_gzip(data) else OCI_LAYER_TAR) for data in layers
    ]
    extra = [dict(d) for d in extra_layers]
    config = Blob(
        _config(layers, (d["digest"] for d in extra), arch=arch, os=os, variant=variant, seed=seed),
        OCI_CONFIG,
    )
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.descriptor(),
        "layers": [b.descriptor() for b in layer_blobs] + extra,
    }
    if annotations:
        manifest["annotations"] = dict(annotations)
    return Image(_dump(manifest), OCI_MANIFEST, (config, *layer_blobs))


def _index_entries(
    children: Sequence[Image], platforms: Sequence[Mapping[str, Any] | None] | None
) -> list[dict[str, Any]]:
    if platforms is not None and len(platforms) != len(children):
        raise ValueError("platforms must have one entry per child")
    entries = []
    for i, child in enumerate(children):
        platform = platforms[i] if platforms is not None else child.platform()
        entries.append(
            child.descriptor(platform=dict(platform)) if platform else child.descriptor()
        )
    return entries


def oci_index(
    children: Sequence[Image],
    *,
    platforms: Sequence[Mapping[str, Any] | None] | None = None,
    annotations: Mapping[str, str] | None = None,
) -> Image:
    """An OCI image index over ``children``.

    Args:
        children: Manifests to reference (pushed before the index by ``push_image``).
        platforms: One platform per child (None for no platform); by default read from each
            child's config, and omitted for children without an image config (artifacts).
        annotations: Index annotations.
    """
    document: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": _index_entries(children, platforms),
    }
    if annotations:
        document["annotations"] = dict(annotations)
    return Image(_dump(document), OCI_INDEX, (), tuple(children))


def docker_manifest_list(
    children: Sequence[Image], *, platforms: Sequence[Mapping[str, Any]] | None = None
) -> Image:
    """A Docker manifest list; platforms default to each child's config (Docker requires one)."""
    entries = _index_entries(children, platforms)
    if any("platform" not in e for e in entries):
        raise ValueError("every manifest list entry needs a platform")
    document = {"schemaVersion": 2, "mediaType": DOCKER_MANIFEST_LIST, "manifests": entries}
    return Image(_dump(document), DOCKER_MANIFEST_LIST, (), tuple(children))


def multi_arch_index(
    seed: str,
    *,
    platforms: Sequence[tuple[str, str | None]] = (("amd64", None), ("arm64", "v8")),
    layer_sizes: Sequence[int] = (2048, 1024),
    docker: bool = False,
) -> Image:
    """A multi-platform index whose platforms share the same layer bytes.

    Sharing layers is what real multi-arch images of interpreted software look like, and it is
    what exercises a copier's blob de-duplication; only the configs differ per platform.

    Args:
        seed: Picks layer content and config labels.
        platforms: ``(architecture, variant)`` pairs, all with os ``linux``.
        layer_sizes: Sizes of the shared gzipped layers.
        docker: Build a Docker manifest list of schema 2 images instead of OCI.
    """
    layers = [layer(size, f"{seed}-{i}") for i, size in enumerate(layer_sizes)]
    build = docker_image if docker else oci_image
    children = [
        build(layers, arch=arch, variant=variant, seed=f"{seed}-{arch}{variant or ''}")
        for arch, variant in platforms
    ]
    return docker_manifest_list(children) if docker else oci_index(children)


def oci_artifact(
    *,
    config_media_type: str = HELM_CONFIG,
    layer_media_type: str = HELM_CHART,
    content: bytes,
    artifact_type: str | None = None,
) -> Image:
    """A non-image OCI artifact (a Helm chart by default) with one content layer.

    The config is ``{}`` for the OCI empty media type and a small JSON document otherwise,
    so artifacts differ from images exactly where registries and copiers might trip.
    """
    if config_media_type == OCI_EMPTY:
        config_data = b"{}"
    else:
        config_data = _dump({"name": "devtools-artifact", "version": "0.1.0"})
    config = Blob(config_data, config_media_type)
    content_blob = Blob(content, layer_media_type)
    document: dict[str, Any] = {"schemaVersion": 2, "mediaType": OCI_MANIFEST}
    if artifact_type is not None:
        document["artifactType"] = artifact_type
    document["config"] = config.descriptor()
    document["layers"] = [content_blob.descriptor()]
    return Image(_dump(document), OCI_MANIFEST, (config, content_blob))


# pushing ---------------------------------------------------------------------------------------


class PushError(RuntimeError):
    """The registry refused part of a push; the message holds method, URL, status and body."""


def push_image(
    base_url: str,
    repository: str,
    image: Image,
    tag: str | None,
    *,
    headers: Mapping[str, str] | None = None,
    ssl_context: Any = None,
) -> str:
    """Upload ``image`` with its blobs and child manifests; return the manifest digest.

    Blobs that HEAD reports present are skipped, each other blob is one POST plus a
    monolithic ``PUT ?digest=``. Children are PUT by digest, then the top manifest by tag (or
    by digest when ``tag`` is None).

    Args:
        base_url: ``http://127.0.0.1:PORT`` or ``https://...``.
        repository: Repository name, e.g. ``team/app``.
        image: What to push.
        tag: Tag for the top manifest, or None to push it by digest only.
        headers: Extra headers on every request, typically Authorization.
        ssl_context: Client context for HTTPS (e.g. ``RegistryProcess.ssl_context()``).

    Raises:
        PushError: Any unexpected status.
    """
    pool = urllib3.PoolManager(
        ssl_context=ssl_context, retries=False, timeout=_HTTP_TIMEOUT, num_pools=2
    )
    pusher = _Pusher(pool, base_url.rstrip("/"), repository, dict(headers or {}))
    try:
        for blob in image.all_blobs():
            pusher.blob(blob)
        for manifest in image.all_manifests():
            if manifest is not image and manifest.digest != image.digest:
                pusher.manifest(manifest, manifest.digest)
        pusher.manifest(image, tag if tag is not None else image.digest)
    finally:
        pool.clear()
    return image.digest


class _Pusher:
    """The few distribution API calls ``push_image`` needs, sharing one connection pool."""

    def __init__(
        self, pool: urllib3.PoolManager, base: str, repository: str, headers: dict[str, str]
    ) -> None:
        self._pool = pool
        self._base = base
        self._repo = repository
        self._headers = headers

    def _call(
        self,
        method: str,
        url: str,
        expected: tuple[int, ...],
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> urllib3.BaseHTTPResponse:
        merged = {**self._headers, **(headers or {})}
        response = self._pool.request(
            method, url, body=body, headers=merged, redirect=False, preload_content=True
        )
        if response.status not in expected:
            text = response.data[:500].decode("utf-8", "replace")
            raise PushError(f"{method} {url}: {response.status} {text}")
        return response

    def blob(self, blob: Blob) -> None:
        blob_url = f"{self._base}/v2/{self._repo}/blobs/{blob.digest}"
        if self._call("HEAD", blob_url, (200, 404)).status == 200:
            return
        started = self._call("POST", f"{self._base}/v2/{self._repo}/blobs/uploads/", (202,))
        location = started.headers.get("Location")
        if not location:
            raise PushError(f"POST upload for {blob.digest}: no Location header")
        upload_url = urljoin(self._base + "/", location)
        separator = "&" if "?" in upload_url else "?"
        self._call(
            "PUT",
            f"{upload_url}{separator}digest={blob.digest}",
            (201,),
            body=blob.data,
            headers={
                "Content-Type": "application/octet-stream",
                "Content-Length": str(blob.size),
            },
        )

    def manifest(self, image: Image, reference: str) -> None:
        response = self._call(
            "PUT",
            f"{self._base}/v2/{self._repo}/manifests/{reference}",
            (201,),
            body=image.manifest,
            headers={"Content-Type": image.media_type},
        )
        answered = response.headers.get("Docker-Content-Digest")
        if answered and answered != image.digest:
            raise PushError(f"registry computed {answered} for manifest {image.digest}")


# OCI layout ------------------------------------------------------------------------------------


def write_oci_layout(path: Path, image: Image, *, ref_name: str) -> None:
    """Write ``image`` into an OCI image layout that skopeo reads as ``oci:PATH:REF_NAME``.

    An existing layout is extended: blobs are added and the index entry for ``ref_name`` is
    replaced, so one directory can hold several tagged images.

    skopeo 1.9 only resolves ref names of index.json entries with OCI media types, so a Docker
    manifest or manifest list written here is stored but invisible to ``oci:PATH:REF``.
    """
    blobs_dir = path / "blobs" / "sha256"
    blobs_dir.mkdir(parents=True, exist_ok=True)
    (path / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    contents = [(b.digest, b.data) for b in image.all_blobs()]
    contents += [(m.digest, m.manifest) for m in image.all_manifests()]
    for digest, data in contents:
        target = blobs_dir / digest.removeprefix("sha256:")
        if not target.exists():
            target.write_bytes(data)
    index_path = path / "index.json"
    if index_path.exists():
        index = json.loads(index_path.read_text())
    else:
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
    kept = [
        entry
        for entry in index.get("manifests", [])
        if entry.get("annotations", {}).get(REF_NAME_ANNOTATION) != ref_name
    ]
    kept.append(image.descriptor(annotations={REF_NAME_ANNOTATION: ref_name}))
    index["manifests"] = kept
    index_path.write_text(json.dumps(index, indent=2))


def read_oci_layout_digest(path: Path, ref_name: str) -> str:
    """Digest of the manifest that the layout's index.json names ``ref_name``.

    Raises:
        KeyError: No entry carries that ref name.
    """
    index = json.loads((path / "index.json").read_text())
    for entry in index.get("manifests", []):
        if entry.get("annotations", {}).get(REF_NAME_ANNOTATION) == ref_name:
            digest: str = entry["digest"]
            return digest
    raise KeyError(f"{path}: no manifest with ref name {ref_name!r}")
