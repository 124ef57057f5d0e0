"""The admission webhook under load, over a far link: ``promoter webhook serve`` with both registries
behind a latency proxy, 200 AdmissionReviews in flight, side by side in one run (issue 10, item 2).

Loads, each with 200 reviews in flight on kept-alive connections (as the API server sends them):

* **cached**: Pods of images the webhook found present a moment ago (the positive cache answers;
  no registry request);
* **uncached**: Pods of images present in production's registry that this webhook has not looked up
  (``cacheSeconds: 0``: every review is one ``HEAD`` through the proxy);
* **mixed**: half cached, half images that production lacks (denied; never cached, so each asks
  production's registry and then dev's, for the denial's advice);
* **uncached, 20 in flight**: the same with 20 reviews in flight, below what the local registry can
  answer (Distribution spends about a millisecond of CPU per ``HEAD``; 200 lookups in flight
  saturate it on this 2-core machine, which a registry service such as ECR would not be);
* the floor, in the same run: ``skopeo inspect --raw`` of one image through the proxy (one process
  per lookup, the way a script would ask), and one ``HEAD`` from Python on a kept-alive connection.

Targets (issue 10): no error; p99 <= 50 ms cached and <= 3 round trips + 20 ms uncached.

    .venv/bin/python bench/webhook.py [--rtt-ms 20] [--requests 2000]
"""

from __future__ import annotations

import argparse
import http.client
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.admission_load import Review, pod_admission_review, review  # noqa: E402
from devtools import images  # noqa: E402
from devtools.latency_proxy import LatencyProxy  # noqa: E402
from devtools.registry import RegistryProcess  # noqa: E402
from devtools.webhook import Certificates, WebhookProcess  # noqa: E402

CONNECTIONS = 200
DEV = "dev.registry.example"
PRODUCTION = "prod.registry.example"


def seed(registry: RegistryProcess, repository: str, tags: Sequence[str]) -> None:
    """Push one small image under every tag (blobs once)."""
    image = images.oci_image([images.layer(4096, "bench")], seed="bench")
    for tag in tags:
        images.push_image(registry.url, repository, image, tag)


def config(folder: Path, dev: LatencyProxy, production: LatencyProxy, cache: float) -> Path:
    """promoter.yaml: dev -> production, both reached through their proxies."""
    path = folder / f"promoter-{cache:g}.yaml"
    for name in ("dev", "production"):
        (folder / name).mkdir(exist_ok=True)
    path.write_text(
        "environments:\n"
        f"  dev: {{overlay: dev, registry: {DEV}}}\n"
        "  production:\n"
        f"    overlay: production\n    registry: {PRODUCTION}\n    promotesFrom: dev\n"
        f"    admission: {{cacheSeconds: {cache:g}}}\n"
        "registries:\n"
        f"  {DEV}: {{endpoint: 'http://127.0.0.1:{dev.port}'}}\n"
        f"  {PRODUCTION}: {{endpoint: 'http://127.0.0.1:{production.port}'}}\n"
    )
    return path


def reviews(tags: Sequence[str], *, allowed: bool, label: str) -> list[Review]:
    """One Pod review per tag of ``shop/api`` in production's registry."""
    return [
        review(
            pod_admission_review(str(uuid.uuid4()), [f"{PRODUCTION}/shop/api:{tag}"]),
            allowed=allowed,
            label=label,
        )
        for tag in tags
    ]


def load(
    webhook: WebhookProcess,
    ca_file: Path,
    sent: Sequence[Review],
    total: int,
    work: Path,
    *,
    connections: int = CONNECTIONS,
) -> dict[str, Any]:
    """``bench/admission_load.py`` in its own process (so that this one, which reads the webhook's
    log, does not share its interpreter lock), ``total`` reviews over 200 kept-alive connections;
    its figures."""
    lines = work / "reviews.jsonl"
    lines.write_text(
        "".join(
            json.dumps({"review": json.loads(r.body), "allowed": r.allowed, "label": r.label})
            + "\n"
            for r in sent
        )
    )
    out = work / "load.json"
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "admission_load.py"),
            "--url",
            f"https://{webhook.address}/validate?timeout=10s",
            "--ca-file",
            str(ca_file),
            "--reviews",
            str(lines),
            "--requests",
            str(total),
            "--connections",
            str(connections),
            "--json",
            str(out),
        ],
        check=False,
        capture_output=True,
        timeout=900,
    )
    figures: dict[str, Any] = json.loads(out.read_text())
    return figures


def floor(production: RegistryProcess, proxy: LatencyProxy, rounds: int = 20) -> dict[str, float]:
    """One lookup through the proxy: skopeo (a process per lookup) and one kept-alive HEAD."""
    skopeo, head = [], []
    for _ in range(rounds):
        started = time.perf_counter()
        subprocess.run(
            [
                "skopeo",
                "inspect",
                "--raw",
                "--tls-verify=false",
                f"docker://127.0.0.1:{proxy.port}/shop/api:t0",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        skopeo.append(time.perf_counter() - started)
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=30)
    try:
        for _ in range(rounds + 1):
            started = time.perf_counter()
            conn.request(
                "HEAD",
                "/v2/shop/api/manifests/t0",
                headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
            )
            conn.getresponse().read()
            head.append(time.perf_counter() - started)
    finally:
        conn.close()
    del production
    return {
        "skopeo_ms": statistics.median(skopeo) * 1000,
        "head_ms": statistics.median(head[1:]) * 1000,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rtt-ms", type=float, default=20.0)
    parser.add_argument("--requests", type=int, default=2000, help="reviews per load")
    args = parser.parse_args(argv)
    if shutil.which("skopeo") is None:
        print("bench/webhook.py needs skopeo (make deps installs it)", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="bench-webhook-"))
    tags = [f"t{i}" for i in range(args.requests + CONNECTIONS * 2)]
    results: dict[str, object] = {"rtt_ms": args.rtt_ms, "connections": CONNECTIONS}
    try:
        with (
            RegistryProcess(work / "dev", name="dev") as dev,
            RegistryProcess(work / "production", name="production") as production,
            LatencyProxy(("127.0.0.1", dev.port), rtt_ms=args.rtt_ms) as dev_proxy,
            LatencyProxy(("127.0.0.1", production.port), rtt_ms=args.rtt_ms) as production_proxy,
        ):
            present = tags[: CONNECTIONS * 2]
            seed(production, "shop/api", present + tags[CONNECTIONS * 2 :])
            certificates = Certificates(work / "tls")
            results["floor"] = floor(production, production_proxy)

            cached_config = config(work, dev_proxy, production_proxy, cache=600)
            with WebhookProcess(cached_config, "production", certificates) as webhook:
                warm = reviews(present[:CONNECTIONS], allowed=True, label="cached")
                load(webhook, certificates.ca_file, warm, len(warm), work)  # fills the cache
                cached = load(webhook, certificates.ca_file, warm, args.requests, work)
                missing = reviews(
                    [f"missing{i}" for i in range(args.requests)],
                    allowed=False,
                    label="missing",
                )
                mixed_reviews = [r for pair in zip(warm, missing, strict=False) for r in pair]
                mixed = load(webhook, certificates.ca_file, mixed_reviews, args.requests, work)
            uncached_config = config(work, dev_proxy, production_proxy, cache=0)
            with WebhookProcess(uncached_config, "production", certificates) as webhook:
                fresh = reviews(tags[CONNECTIONS * 2 :], allowed=True, label="uncached")
                uncached = load(webhook, certificates.ca_file, fresh, args.requests, work)
                few = load(
                    webhook, certificates.ca_file, fresh, args.requests // 4, work, connections=20
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rows = [
        ("cached", cached["labels"]["cached"], cached["errors"]),
        ("uncached", uncached["labels"]["uncached"], uncached["errors"]),
        ("uncached, 20 in flight", few["labels"]["uncached"], few["errors"]),
        ("mixed: cached", mixed["labels"]["cached"], mixed["errors"]),
        ("mixed: missing (denied)", mixed["labels"]["missing"], {}),
    ]
    target_uncached = 3 * args.rtt_ms + 20
    measured = results["floor"]
    assert isinstance(measured, dict)
    print(
        f"\nwebhook, {CONNECTIONS} reviews in flight, registries behind a {args.rtt_ms:g} ms round trip"
    )
    print(
        f"floor: skopeo inspect --raw {measured['skopeo_ms']:.1f} ms, "
        f"one kept-alive HEAD {measured['head_ms']:.1f} ms"
    )
    print("| load | p50 | p95 | p99 | max | reviews/s | errors |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, summary, errors in rows:
        print(
            f"| {name} | {summary['p50_ms']:.1f} ms | {summary['p95_ms']:.1f} ms | "
            f"{summary['p99_ms']:.1f} ms | {summary['max_ms']:.1f} ms | {summary['per_s']:,.0f} | "
            f"{summary['errors']} {errors or ''} |"
        )
    print(
        f"targets: cached p99 <= 50 ms; uncached p99 <= {target_uncached:g} ms (3 round trips + 20 ms)"
    )
    results["loads"] = {name: summary for name, summary, _ in rows}
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
