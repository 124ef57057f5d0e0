"""The content measured: the images seeded into the source registry, and the curl upload ceiling.

``Sizes`` says how big each scenario's images are (``FULL``, or ``QUICK`` for ``--quick``); ``seed``
pushes them with the independent pusher of ``devtools.images`` and keeps the blobs of scenario (a)
as local files, which ``curl_ceiling`` uploads all at once, one pair of curl processes per blob.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin

from bench.measure import KIB, MIB, BenchError
from devtools import images
from devtools.registry import RegistryProcess

CURL_TIMEOUT_S = 600.0  # every subprocess of the benchmark is bounded


@dataclass(frozen=True)
class Sizes:
    """Everything that --quick shrinks."""

    platform_layers: tuple[int, ...]  # per platform, each platform its own bytes
    shared_layers: tuple[int, ...]  # in every platform of (a)
    batch_images: int
    batch_base: tuple[int, ...]  # shared by every image of (b)
    batch_unique: tuple[int, ...]  # per image of (b)
    big_layer: int  # (c)


FULL = Sizes(
    platform_layers=(64 * MIB, 36 * MIB, 20 * MIB, 8 * MIB),
    shared_layers=(2 * MIB,),
    batch_images=50,
    batch_base=(12 * MIB, 8 * MIB, 4 * MIB),
    batch_unique=(256 * KIB, 32 * KIB),
    big_layer=1024 * MIB,
)
QUICK = Sizes(
    platform_layers=(8 * MIB, 4 * MIB + 512 * KIB, 2 * MIB + 512 * KIB, 1 * MIB),
    shared_layers=(256 * KIB,),
    batch_images=10,
    batch_base=(3 * MIB, 2 * MIB, 1 * MIB),
    batch_unique=(64 * KIB, 16 * KIB),
    big_layer=64 * MIB,
)
PLATFORMS = (("amd64", None), ("arm64", "v8"))


@dataclass
class Seeded:
    """What the source registry holds for the scenarios."""

    multi_ref: str  # repository:tag on the source
    multi_digest: str
    multi_blobs: list[tuple[str, Path, int]]  # digest, local file, size: for the curl ceiling
    multi_bytes: int
    batch: list[tuple[str, str]]  # (repository:tag, digest)
    batch_bytes_unique: int  # distinct blob bytes over all images of (b)
    batch_bytes_total: int  # bytes if each image were copied on its own
    big_ref: str
    big_digest: str
    big_bytes: int


def multi_arch_image(sizes: Sizes, *, layers: str, seed: str) -> images.Image:
    """The multi-arch index of scenario (a): per platform of :data:`PLATFORMS`, its own raw layers
    (``sizes.platform_layers``) after the shared ones (``sizes.shared_layers``); ``layers`` and
    ``seed`` name the content, so that two scenarios build two distinct images."""
    shared = [
        images.layer(size, f"{layers}-shared-{i}", gzip=False)
        for i, size in enumerate(sizes.shared_layers)
    ]
    children = []
    for arch, variant in PLATFORMS:
        own = [
            images.layer(size, f"{layers}-{arch}-{i}", gzip=False)
            for i, size in enumerate(sizes.platform_layers)
        ]
        children.append(
            images.oci_image([*shared, *own], arch=arch, variant=variant, seed=f"{seed}-{arch}")
        )
    return images.oci_index(children)


def seed(source: RegistryProcess, sizes: Sizes, blob_dir: Path) -> Seeded:
    """Push the three scenarios' images to the source registry, with the independent pusher."""
    blob_dir.mkdir(parents=True, exist_ok=True)

    # (a): each platform has its own layers of different sizes plus the small shared ones.
    multi = multi_arch_image(sizes, layers="a", seed="bench-a")
    images.push_image(source.url, "bench/multi", multi, "v1")
    blobs = []
    for blob in multi.all_blobs():
        path = blob_dir / blob.digest.removeprefix("sha256:")
        path.write_bytes(blob.data)
        blobs.append((blob.digest, path, blob.size))
    multi_bytes = sum(size for _, _, size in blobs)
    multi_digest = multi.digest
    del multi

    # (b): every image = the same base layers + small layers of its own + its own config.
    base = [
        images.layer(size, f"b-base-{i}", gzip=False) for i, size in enumerate(sizes.batch_base)
    ]
    batch = []
    distinct: dict[str, int] = {}
    total = 0
    for n in range(sizes.batch_images):
        unique = [
            images.layer(size, f"b-{n}-{i}", gzip=False)
            for i, size in enumerate(sizes.batch_unique)
        ]
        image = images.oci_image([*base, *unique], seed=f"bench-b-{n}")
        repository = f"bench/svc-{n:02d}"
        images.push_image(source.url, repository, image, "1.0")
        batch.append((f"{repository}:1.0", image.digest))
        for blob in image.all_blobs():
            distinct[blob.digest] = blob.size
            total += blob.size
    del base

    # (c): one big layer.
    big = images.oci_image([images.layer(sizes.big_layer, "c-big", gzip=False)], seed="bench-c")
    images.push_image(source.url, "bench/big", big, "v1")
    big_bytes = sum(b.size for b in big.all_blobs())
    big_digest = big.digest
    del big

    return Seeded(
        multi_ref="bench/multi:v1",
        multi_digest=multi_digest,
        multi_blobs=blobs,
        multi_bytes=multi_bytes,
        batch=batch,
        batch_bytes_unique=sum(distinct.values()),
        batch_bytes_total=total,
        big_ref="bench/big:v1",
        big_digest=big_digest,
        big_bytes=big_bytes,
    )


def _curl_one(base_url: str, repository: str, digest: str, path: Path) -> None:
    posted = subprocess.run(
        [
            "curl",
            "-sS",
            "--noproxy",
            "*",
            "-X",
            "POST",
            "-o",
            "/dev/null",
            "-D",
            "-",
            "-H",
            "Content-Length: 0",
            f"{base_url}/v2/{repository}/blobs/uploads/",
        ],
        capture_output=True,
        text=True,
        timeout=CURL_TIMEOUT_S,
        check=True,
    )
    location = None
    for line in posted.stdout.splitlines():
        name, _, value = line.partition(":")
        if name.strip().lower() == "location":
            location = urljoin(base_url + "/", value.strip())
    if location is None:
        raise BenchError(f"curl POST gave no Location: {posted.stdout!r}")
    separator = "&" if "?" in location else "?"
    put = subprocess.run(
        [
            "curl",
            "-sS",
            "--noproxy",
            "*",
            "-X",
            "PUT",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-H",
            "Content-Type: application/octet-stream",
            "--data-binary",
            f"@{path}",
            f"{location}{separator}digest={digest}",
        ],
        capture_output=True,
        text=True,
        timeout=CURL_TIMEOUT_S,
        check=True,
    )
    if put.stdout.strip() != "201":
        raise BenchError(f"curl PUT of {digest}: HTTP {put.stdout.strip()} {put.stderr}")


def curl_ceiling(
    registry: RegistryProcess, repository: str, blobs: Sequence[tuple[str, Path, int]]
) -> float:
    """Upload every blob at once, one POST + PUT pair of curl processes per blob; wall seconds."""
    errors: list[BaseException] = []

    def worker(digest: str, path: Path) -> None:
        try:
            _curl_one(registry.url, repository, digest, path)
        except BaseException as exc:  # noqa: BLE001 - reported after the join
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(d, p)) for d, p, _ in blobs]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(CURL_TIMEOUT_S)
    seconds = time.perf_counter() - started
    if errors or any(t.is_alive() for t in threads):
        raise BenchError(f"curl ceiling failed: {errors[:3]}")
    return seconds
