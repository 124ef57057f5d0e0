"""Finding every container image in rendered manifests.

Pure: takes text or parsed documents, does no I/O. Workload kinds are not listed one by one: a pod
template is found where Kubernetes puts one (``spec.template.spec``, or under ``spec.jobTemplate``
for CronJobs), so custom workloads such as Argo Rollouts or OpenKruise CloneSets are covered without
knowing them. Images in other fields of custom resources (a SparkApplication's ``spec.image``, an
actions-runner RunnerDeployment's ``spec.template.spec.image``) are found where the overlay tells
kustomize they are: the ``images:`` fieldSpecs of its ``configurations:`` files, given here as
:class:`ImageFieldSpec` values (reading them is :mod:`promoter.gitops.kustomization`'s job). Anything
that does not have the expected shape is skipped, not fatal: rendered manifests routinely carry CRDs,
ConfigMaps and the odd empty document.

What is left, a string elsewhere that names the environment's registry, is an
:class:`UnmanagedReference`: possibly an image nobody will copy, so the front ends report it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

from promoter.config.yaml_input import load_yaml_documents
from promoter.errors import InvalidReferenceError
from promoter.reference import Reference, parse_reference

#: Where pod specs live inside a document, for any kind (a Pod's own spec is handled apart).
_POD_SPEC_PATHS: Final = (
    ("spec", "template", "spec"),
    ("spec", "jobTemplate", "spec", "template", "spec"),
)
#: The container lists of a pod spec, in the order their images are reported.
CONTAINER_FIELDS: Final = ("containers", "initContainers", "ephemeralContainers")

#: How a message names an entry of each container list.
_CONTAINER_WORDS: Final = {
    "containers": "container",
    "initContainers": "init container",
    "ephemeralContainers": "ephemeral container",
}

#: A place in a document: mapping keys and list positions from the top.
_Location: TypeAlias = tuple[str | int, ...]

#: Characters that can follow the registry host in an image reference (repository, tag, digest);
#: bounded so that a pathological string cannot make one entry of a report huge.
_REFERENCE_TAIL: Final = r"[A-Za-z0-9._/:@-]{0,400}"


@dataclass(frozen=True, slots=True)
class FoundImage:
    """One container image and where it was found, so that reports can point at the workload.

    Attributes:
        image: the reference exactly as written in the manifest (not normalised).
        kind: the workload's ``kind`` (Deployment, CronJob, Rollout, SparkApplication...).
        name: the workload's ``metadata.name``.
        container: the container's name (the volume's, for an image volume); empty for an image
            found through a fieldSpec.
        field: ``containers``, ``initContainers``, ``ephemeralContainers`` or ``volumes`` (an image
            volume's ``image.reference``); for an image found through a fieldSpec, its path in the
            document (``spec.image``, ``spec.tasks[1].image``).
    """

    image: str
    kind: str
    name: str
    container: str
    field: str

    @property
    def place(self) -> str:
        """Where in the workload, for a message: ``container api``, ``volume models`` or
        ``spec.image``."""
        if self.field == "volumes":
            return f"volume {self.container}" if self.container else "an unnamed volume"
        if self.field not in CONTAINER_FIELDS:
            return self.field
        what = _CONTAINER_WORDS[self.field]
        return f"{what} {self.container}" if self.container else f"an unnamed {what}"


@dataclass(frozen=True, slots=True)
class ImageFieldSpec:
    """A field that holds an image reference: one ``images:`` entry of a kustomize configurations file.

    Kustomize's transformer configuration (``configurations:`` in a kustomization) tells its ``images:``
    transformer where else images are, e.g. ``{path: spec/image, kind: SparkApplication}``; promoter
    reads the same entries, so an image kustomize rewrites is an image promoter plans.

    Attributes:
        path: the field, one mapping key per step (see :func:`parse_field_spec_path`). Lists met on
            the way are stepped through whole, every item in turn, as kustomize does: a path never
            names list positions.
        kind: the documents' ``kind``; empty for every kind.
        group: the API group of their ``apiVersion`` (``sparkoperator.k8s.io``); empty for any group.
        version: the API version (``v1beta2``); empty for any version.
    """

    path: tuple[str, ...]
    kind: str = ""
    group: str = ""
    version: str = ""

    def applies_to(self, document: Mapping[str, Any]) -> bool:
        """Whether the document is of this fieldSpec's kind, group and version (empty ones match all)."""
        if self.kind and self.kind != document.get("kind"):
            return False
        group, version = api_group_version(document.get("apiVersion"))
        return (not self.group or self.group == group) and (
            not self.version or self.version == version
        )


@dataclass(frozen=True, slots=True)
class UnmanagedReference:
    """A string in the manifests that names the environment's registry outside every place promoter
    reads images from: possibly an image the cluster will pull that no plan or sync copies.

    Attributes:
        value: the part of the string from the registry host on, up to the first character that
            cannot be part of an image reference (``222.dkr.ecr.../shop/spark:4.0``, or the bare host
            of a ``registry:`` field).
        kind: the document's ``kind``.
        name: the document's ``metadata.name``.
        path: where in the document, e.g. ``spec.executor.image`` or ``spec.args[2]``.
    """

    value: str
    kind: str
    name: str
    path: str


@dataclass(frozen=True, slots=True)
class ManifestScan:
    """What :func:`scan_manifests` found.

    Attributes:
        images: every image at a place images are found, in document order, one per place.
        unmanaged: every other mention of the registry that is not the reference of one of
            ``images``, in document order.
        hook_images: the images of promoter's own hook containers, left out of ``images`` (the
            caller fills them in: see ``gitops.hookfile.without_hook_containers``).
    """

    images: tuple[FoundImage, ...]
    unmanaged: tuple[UnmanagedReference, ...]
    hook_images: tuple[str, ...] = ()
    #: the ``sourceRegistry`` values of the Kustomize component's ConfigMap, left out of the scan
    hook_sources: tuple[str, ...] = ()


def parse_field_spec_path(text: str) -> tuple[str, ...]:
    """A fieldSpec ``path`` as kustomize reads it: steps between ``/``, where ``\\/`` is a slash
    inside a key (``metadata/annotations/example.com\\/image``), and a step's ``[]`` suffix
    (``containers[]``) only says the field is a list, which kustomize steps through anyway.

    Kustomize's own rule (``api/filters/fieldspec``: ``splitPath``, ``isSequenceField``). Empty
    steps (a leading ``/spec/image``, a doubled slash) are skipped, as kustomize's field lookup
    skips them: it rewrites ``/spec/image`` as ``spec/image``.
    """
    steps: list[str] = []
    for part in text.split("/"):
        if steps and steps[-1].endswith("\\"):
            steps[-1] = steps[-1][:-1] + "/" + part
        else:
            steps.append(part)
    return tuple(step.removesuffix("[]") for step in steps if step)


def api_group_version(api_version: object) -> tuple[str, str]:
    """The group and version of an ``apiVersion``, as kustomize matches fieldSpecs against it: ``apps/v1``
    is ``("apps", "v1")``; ``v1`` (a core version: ``v`` then 1 or 2) is ``("", "v1")``."""
    if not isinstance(api_version, str):
        return "", ""
    group, _, version = api_version.partition("/")
    if not version and group[:1] == "v" and group[1:2] in ("1", "2"):
        return "", group
    return group, version


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


def discover_images(
    documents: Iterable[Mapping[str, Any]], field_specs: Sequence[ImageFieldSpec] = ()
) -> list[FoundImage]:
    """Every image of every pod spec in the documents, and every image at a field of
    ``field_specs``, in document order.

    Within a document the order is the pod spec's containers, initContainers, ephemeralContainers,
    each in list order, and its image volumes, then the fieldSpecs' fields in the order of
    ``field_specs``. An image used twice is reported twice, once per place; a place two fieldSpecs
    name (or a fieldSpec and a pod spec) once.
    """
    return list(iter_images(documents, field_specs))


def iter_images(
    documents: Iterable[Mapping[str, Any]], field_specs: Sequence[ImageFieldSpec] = ()
) -> Iterator[FoundImage]:
    """:func:`discover_images` as the documents arrive."""
    for document in documents:
        for _, found in _document_images(document, field_specs):
            yield found


#: Prefixes container runtimes put before a running image's ``imageID`` (docker, containerd, CRI-O).
_IMAGE_ID_SCHEMES = ("docker-pullable://", "docker://")
_STATUS_LISTS = ("containerStatuses", "initContainerStatuses", "ephemeralContainerStatuses")


def running_images(documents: Iterable[Mapping[str, Any]]) -> list[str]:
    """Every image the Pods of ``documents`` (``kubectl get pods -A -o json``: a ``List``) run: the
    images their specs name and, from their status, the ``imageID`` of each container, which names
    the digest actually pulled (``registry/repo@sha256:...``; a runtime's ``docker-pullable://``
    prefix removed, bare ``sha256:...`` IDs without a name skipped). Distinct, in document order.
    """
    seen: dict[str, None] = {}
    for document in documents:
        for found in iter_images([document]):
            seen.setdefault(found.image, None)
        status = document.get("status")
        if not isinstance(status, Mapping):
            continue
        for key in _STATUS_LISTS:
            entries = status.get(key)
            for entry in entries if isinstance(entries, list) else ():
                image_id = entry.get("imageID") if isinstance(entry, Mapping) else None
                if not isinstance(image_id, str) or "@" not in image_id:
                    continue
                for scheme in _IMAGE_ID_SCHEMES:
                    image_id = image_id.removeprefix(scheme)
                seen.setdefault(image_id, None)
    return list(seen)


def scan_manifests(
    documents: Iterable[Mapping[str, Any]],
    registry: str,
    field_specs: Sequence[ImageFieldSpec] = (),
) -> ManifestScan:
    """The images of the documents (:func:`discover_images`) and the other strings that name
    ``registry``, in one pass that keeps no document once it is read.

    A mention of the registry is a place in a string value where the registry host starts (not
    preceded by a host-name character; compared ignoring case, as host names are) and ends (followed by
    ``/`` or anything that cannot continue a host name or port). Strings at the places images were
    found are not mentions, nor is a mention whose reference is one of the images found (a
    Deployment passing its own image in an environment variable): that image is planned anyway.

    Args:
        documents: the parsed manifests (promoter's own hook left out by the caller).
        registry: the environment's registry host (``host[:port]``).
        field_specs: where else images are (the overlay's kustomize ``images:`` fieldSpecs).
    """
    mention = re.compile(
        rf"(?<![A-Za-z0-9.-]){re.escape(registry)}(?![A-Za-z0-9.:-])(?:/{_REFERENCE_TAIL})?",
        # ASCII: host names ignore case in ASCII only; Unicode folding would take a KELVIN SIGN
        # for a 'k' and a long s for an 's', reporting lookalikes as the registry.
        re.IGNORECASE | re.ASCII,
    )
    images: list[FoundImage] = []
    mentions: list[UnmanagedReference] = []
    for document in documents:
        found = dict(_document_images(document, field_specs))
        images.extend(found.values())
        kind, name = _identity(document)
        for location, text in _strings(document):
            if location in found:
                continue
            mentions.extend(
                UnmanagedReference(match.group(), kind, name, _path_text(location))
                for match in mention.finditer(text)
            )
    running = {reference for image in images if (reference := _reference(image.image))}
    unmanaged = tuple(m for m in mentions if _reference(m.value) not in running)
    return ManifestScan(tuple(images), unmanaged)


def _document_images(
    document: Mapping[str, Any], field_specs: Sequence[ImageFieldSpec]
) -> Iterator[tuple[_Location, FoundImage]]:
    """Each image of one document with its place, pod specs first, each place once."""
    kind, name = _identity(document)
    seen: set[_Location] = set()
    for spec_location, pod_spec in _pod_specs(document, kind):
        for field in CONTAINER_FIELDS:
            containers = pod_spec.get(field)
            if not isinstance(containers, list):
                continue
            for index, container in enumerate(containers):
                if not isinstance(container, Mapping):
                    continue
                image = container.get("image")
                if isinstance(image, str) and image.strip():
                    location = (*spec_location, field, index, "image")
                    seen.add(location)
                    found = FoundImage(image, kind, name, _text(container.get("name")), field)
                    yield location, found
        volumes = pod_spec.get("volumes")
        for index, volume in enumerate(volumes if isinstance(volumes, list) else ()):
            source = volume.get("image") if isinstance(volume, Mapping) else None
            image = source.get("reference") if isinstance(source, Mapping) else None
            if isinstance(image, str) and image.strip():
                # An image volume (Kubernetes 1.31+): the kubelet pulls it like a container's.
                location = (*spec_location, "volumes", index, "image", "reference")
                seen.add(location)
                yield location, FoundImage(image, kind, name, _text(volume.get("name")), "volumes")
    for spec in field_specs:
        if not spec.applies_to(document):
            continue
        for location, value in _field_values(document, spec.path):
            if isinstance(value, str) and value.strip() and location not in seen:
                seen.add(location)
                yield location, FoundImage(value, kind, name, "", _path_text(location))


def _field_values(
    document: Mapping[str, Any], path: tuple[str, ...]
) -> Iterator[tuple[_Location, object]]:
    """The values at ``path`` in the document, stepping through every list on the way (lists of lists
    too), in document order."""
    stack: list[tuple[object, int, _Location]] = [(document, 0, ())]
    while stack:
        node, step, location = stack.pop()
        if step == len(path):
            yield location, node
        elif isinstance(node, list):
            stack.extend(
                (item, step, (*location, i)) for i, item in reversed(list(enumerate(node)))
            )
        elif isinstance(node, Mapping) and path[step] in node:
            key = path[step]
            stack.append((node[key], step + 1, (*location, key)))


def _strings(document: Mapping[str, Any]) -> Iterator[tuple[_Location, str]]:
    """Every string value in the document with its place, in document order (keys are not values)."""
    stack: list[tuple[object, _Location]] = [(document, ())]
    while stack:
        node, location = stack.pop()
        if isinstance(node, str):
            yield location, node
        elif isinstance(node, Mapping):
            stack.extend(
                (value, (*location, _key(key))) for key, value in reversed(list(node.items()))
            )
        elif isinstance(node, list):
            stack.extend((item, (*location, i)) for i, item in reversed(list(enumerate(node))))


def _key(key: object) -> str | int:
    """A mapping key as a step of a place: YAML may have made a number or a date of it."""
    return key if isinstance(key, str) else str(key)


_PLAIN_KEY: Final = re.compile(r"[A-Za-z0-9_-]+")


def _path_text(location: _Location) -> str:
    """A place as text: ``spec.tasks[1].image``; a key with other characters is quoted,
    ``metadata.annotations["example.com/image"]``."""
    text = ""
    for step in location:
        if isinstance(step, int):
            text += f"[{step}]"
        elif _PLAIN_KEY.fullmatch(step):
            text += f".{step}" if text else step
        else:
            text += f"[{json.dumps(step)}]"
    return text


def _reference(text: str) -> Reference | None:
    """The parsed reference, or None when the text is not one."""
    try:
        return parse_reference(text)
    except InvalidReferenceError:
        return None


def _identity(document: Mapping[str, Any]) -> tuple[str, str]:
    """The document's kind and ``metadata.name`` as text."""
    metadata = document.get("metadata")
    name = _text(metadata.get("name")) if isinstance(metadata, Mapping) else ""
    return _text(document.get("kind")), name


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


def _pod_specs(
    document: Mapping[str, Any], kind: str
) -> Iterator[tuple[_Location, Mapping[str, Any]]]:
    """The pod specs of one document with their places: a Pod's spec, and any pod template at the
    usual paths."""
    if kind == "Pod":
        spec = document.get("spec")
        if isinstance(spec, Mapping):
            yield ("spec",), spec
    for path in _POD_SPEC_PATHS:
        node: object = document
        for key in path:
            node = node.get(key) if isinstance(node, Mapping) else None
        if isinstance(node, Mapping):
            yield path, node


def _text(value: object) -> str:
    """A name-like field as text; YAML may have made a number of it (``name: 2024``)."""
    if value is None:
        return ""
    return value if isinstance(value, str) else str(value)
