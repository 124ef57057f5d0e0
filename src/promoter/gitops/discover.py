"""Finding every container image in rendered manifests.

Pure: takes text or parsed documents, does no I/O. Workload kinds are not listed one by one: a pod
template is found where Kubernetes puts one (``spec.template.spec``, or under ``spec.jobTemplate``
for CronJobs), so custom workloads such as Argo Rollouts or OpenKruise CloneSets are covered without
knowing them. Anything that does not have the expected shape is skipped, not fatal: rendered
manifests routinely carry CRDs, ConfigMaps and the odd empty document.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

from promoter.config.yaml_input import load_yaml_documents

#: Where pod specs live inside a document, for any kind (a Pod's own spec is handled apart).
_POD_SPEC_PATHS: Final = (
    ("spec", "template", "spec"),
    ("spec", "jobTemplate", "spec", "template", "spec"),
)
#: The container lists of a pod spec, in the order their images are reported.
CONTAINER_FIELDS: Final = ("containers", "initContainers", "ephemeralContainers")


@dataclass(frozen=True, slots=True)
class FoundImage:
    """One container image and where it was found, so that reports can point at the workload.

    Attributes:
        image: the reference exactly as written in the manifest (not normalised).
        kind: the workload's ``kind`` (Deployment, CronJob, Rollout...).
        name: the workload's ``metadata.name``.
        container: the container's name.
        field: ``containers``, ``initContainers`` or ``ephemeralContainers``.
    """

    image: str
    kind: str
    name: str
    container: str
    field: str


def parse_manifests(text: str, *, source: str = "manifests") -> list[dict[str, Any]]:
    """Parse multi-document YAML into its mapping documents.

    Empty documents and documents that are not mappings are dropped; the items of ``kind: List``
    (what ``kubectl get -o yaml`` prints) are returned in its place.

    Args:
        text: the rendered manifests.
        source: what to call the text in an error (a file name, ``standard input``).

    Raises:
        ConfigError: the text is not valid YAML; the message has the line number.
    """
    return list(iter_manifests(text, source=source))


def iter_manifests(text: str, *, source: str = "manifests") -> Iterator[dict[str, Any]]:
    """:func:`parse_manifests` one document at a time, so that a plan can start looking images up
    in registries while the rest of the YAML is still being parsed.

    YAML aliases may add at most :data:`~promoter.config.yaml_input.ALIAS_EXPANSION_LIMIT` to the
    whole text (Helm charts share lists through them; a bomb does not get through).

    Raises:
        ConfigError: when the parse reaches invalid YAML or aliases beyond the limit (documents before
            it were yielded).
    """
    yield from _flatten(load_yaml_documents(text, source=source))


def discover_images(documents: Iterable[Mapping[str, Any]]) -> list[FoundImage]:
    """Every container image of every pod spec in the documents, in document order.

    Within a pod spec the order is containers, initContainers, ephemeralContainers, each in list
    order. An image used twice is reported twice, once per place.
    """
    return list(iter_images(documents))


def iter_images(documents: Iterable[Mapping[str, Any]]) -> Iterator[FoundImage]:
    """:func:`discover_images` as the documents arrive."""
    for document in documents:
        kind = _text(document.get("kind"))
        metadata = document.get("metadata")
        name = _text(metadata.get("name")) if isinstance(metadata, Mapping) else ""
        for pod_spec in _pod_specs(document, kind):
            for field in CONTAINER_FIELDS:
                containers = pod_spec.get(field)
                if not isinstance(containers, list):
                    continue
                for container in containers:
                    if not isinstance(container, Mapping):
                        continue
                    image = container.get("image")
                    if isinstance(image, str) and image.strip():
                        yield FoundImage(
                            image=image,
                            kind=kind,
                            name=name,
                            container=_text(container.get("name")),
                            field=field,
                        )


def _flatten(documents: Iterable[object]) -> Iterator[dict[str, Any]]:
    """Mapping documents, with List kinds replaced by their items (recursively)."""
    for document in documents:
        if not isinstance(document, dict):
            continue
        items = document.get("items")
        kind = document.get("kind")
        if isinstance(kind, str) and kind.endswith("List") and isinstance(items, list):
            yield from _flatten(items)
        else:
            yield document


def _pod_specs(document: Mapping[str, Any], kind: str) -> Iterator[Mapping[str, Any]]:
    """The pod specs of one document: a Pod's spec, and any pod template at the usual paths."""
    if kind == "Pod":
        spec = document.get("spec")
        if isinstance(spec, Mapping):
            yield spec
    for path in _POD_SPEC_PATHS:
        node: object = document
        for key in path:
            node = node.get(key) if isinstance(node, Mapping) else None
        if isinstance(node, Mapping):
            yield node


def _text(value: object) -> str:
    """A name-like field as text; YAML may have made a number of it (``name: 2024``)."""
    if value is None:
        return ""
    return value if isinstance(value, str) else str(value)
