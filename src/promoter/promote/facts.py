"""Registry facts a plan needs: what each wanted reference resolves to in each registry.

HEAD requests only, concurrently, each registry session shared across the run so that a plan of
hundreds of images costs two HEADs per image and one token per repository.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from promoter.oci.digest import Digest
from promoter.promote.plan import PlanItem, WantedImage, decide
from promoter.reference import Reference
from promoter.remote.repository import Repository
from promoter.transport.session import Transport

#: Concurrent HEAD requests while planning; small requests, so more than blob transfers.
DEFAULT_LOOKUPS = 16


def lookup_digest(transport: Transport, reference: Reference) -> Digest | None:
    """What ``reference`` resolves to, or None when the registry does not have it."""
    repository = Repository(transport.session(reference.registry), reference.repository)
    info = repository.head_manifest(reference.identifier)
    return info.digest if info is not None else None


def plan_images(
    transport: Transport, wanted: Sequence[WantedImage], *, lookups: int = DEFAULT_LOOKUPS
) -> list[PlanItem]:
    """Look every managed image up in its destination and source registry and decide its status.

    Raises:
        RegistryError, RegistryUnreachableError: a registry failed (other than "not found").
    """
    references = {
        ref for item in wanted for ref in (item.destination, item.source) if ref is not None
    }
    with ThreadPoolExecutor(max_workers=max(1, lookups), thread_name_prefix="lookup") as pool:
        futures = {ref: pool.submit(lookup_digest, transport, ref) for ref in references}
        digests = {ref: future.result() for ref, future in futures.items()}
    return [
        decide(
            item,
            digests.get(item.destination) if item.destination is not None else None,
            digests.get(item.source) if item.source is not None else None,
        )
        for item in wanted
    ]
