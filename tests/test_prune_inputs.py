"""What a prune reads: the images running Pods use, and a repository's inventory from the real registry."""

from __future__ import annotations

import json

from devtools import images, signing
from devtools.registry import RegistryProcess
from tests.registry_checks import push

from promoter.gitops.discover import iter_manifests, running_images
from promoter.oci.digest import parse_digest
from promoter.planning.inventory import repository_inventory
from promoter.reference import parse_reference
from promoter.transport.session import Transport

DIGEST = "sha256:" + "b" * 64


def test_running_images_reads_specs_and_the_digests_the_runtime_pulled() -> None:
    """kubectl get pods -A -o json: spec images and status imageIDs (runtime prefixes removed)."""
    pods = {
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "p", "namespace": "shop"},
                "spec": {
                    "containers": [{"name": "app", "image": "prod.example.com/shop/cart:1.0"}],
                    "initContainers": [{"name": "init", "image": "busybox:1.36"}],
                },
                "status": {
                    "containerStatuses": [
                        {"imageID": f"docker-pullable://prod.example.com/shop/cart@{DIGEST}"}
                    ],
                    "initContainerStatuses": [{"imageID": "sha256:" + "c" * 64}],
                },
            }
        ],
    }
    found = running_images(iter_manifests(json.dumps(pods)))
    assert found == [
        "prod.example.com/shop/cart:1.0",
        "busybox:1.36",
        f"prod.example.com/shop/cart@{DIGEST}",
    ]


def test_an_inventory_lists_tags_children_and_referrers(
    source_registry: RegistryProcess, repo: str
) -> None:
    """Every tag with its digest, an index's children, and the referrers its sha256-<hex> index lists."""
    index = images.multi_arch_index("inv")
    push(source_registry, repo, index, tag="1.0")
    sbom = signing.referrer(index.descriptor(), signing.SPDX_JSON, b"{}", signing.SPDX_JSON)
    signing.push_referrer(source_registry.url, repo, sbom, index.digest)
    transport = Transport()
    try:
        found = repository_inventory(
            transport, parse_reference(f"{source_registry.host}/{repo}:1.0")
        )
    finally:
        transport.close()
    top = parse_digest(index.digest)
    assert found.tags["1.0"] == top
    assert set(found.manifests[top].children) == {parse_digest(c.digest) for c in index.children}
    assert found.manifests[parse_digest(sbom.digest)].subject == top
    assert f"sha256-{top.hex}" in found.tags
