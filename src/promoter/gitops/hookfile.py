"""The Kustomize component's image list: ``promoter-images.txt`` in an overlay.

The component (deploy/kustomize/promoter-hook) hands the hook Job the images to promote through
this file, one destination reference per line. An image the overlay runs but the file lacks would
be applied without having been copied, so ``plan`` reports the difference and ``promote`` rewrites
the file with the overlay. Also how the hook itself is told apart in rendered manifests
(:func:`without_hook_containers`). Pure apart from reading that one file.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from promoter.config.input_files import LIST_CAP, decode_text, read_regular_file
from promoter.config.lists import list_entries
from promoter.errors import ConfigError, InvalidReferenceError
from promoter.reference import parse_reference

HOOK_IMAGES_FILE: Final = "promoter-images.txt"
_HOOK_ANNOTATION: Final = "argocd.argoproj.io/hook"
#: The container lists of a pod spec that may hold promoter's hook container.
_CONTAINER_LISTS: Final = ("containers", "initContainers")
#: What kustomize names when an overlay uses the component without the ConfigMap its Job mounts
#: (the component's replacement finds no source, or a source without the key).
_COMPONENT_SOURCE: Final = ("/promoter-hook.[noNs]", "data.sourceRegistry")


@dataclass(frozen=True, slots=True)
class HookFileDrift:
    """How the image file differs from what the overlay runs."""

    path: Path
    missing: tuple[str, ...] = field(default=())  #: run by the overlay, not in the file
    extra: tuple[str, ...] = field(default=())  #: in the file, not run by the overlay
    #: of ``extra``, those not in the environment's registry: the hook Job refuses each (exit 3)
    elsewhere: tuple[str, ...] = field(default=())

    @property
    def blocking(self) -> bool:
        """Whether the list differs from the overlay at all: a missing line makes the hook Job miss
        an image; an extra one makes it copy an image no workload runs, and fail every Argo CD
        sync when nobody has that image (or when it names another registry: ``elsewhere``).
        ``promoter promote`` rewrites the list to match."""
        return bool(self.missing or self.extra)


def is_hook(document: Mapping[str, Any]) -> bool:
    """Whether a manifest holds promoter's own hook container: an Argo CD hook with a container
    that runs ``promoter sync --from-registry`` (see :func:`without_hook_containers`)."""
    return any(_is_hook_container(document, c) for _, c in _pod_containers(document))


def is_hook_settings(document: Mapping[str, Any]) -> bool:
    """Whether a manifest is the Kustomize component's ConfigMap (``promoter-hook``: the source
    registry and the image list the Job reads). Its values name registries on purpose; the plan
    checks the list itself (:func:`drift`), so they are no unmanaged mention of the registry."""
    metadata = document.get("metadata")
    data = document.get("data")
    return (
        document.get("kind") == "ConfigMap"
        and isinstance(metadata, Mapping)
        and isinstance(name := metadata.get("name"), str)
        # kustomize's generator appends a content hash unless disableNameSuffixHash is set
        and (name == HOOK_SETTINGS_NAME or name.startswith(f"{HOOK_SETTINGS_NAME}-"))
        and isinstance(data, Mapping)
        and HOOK_IMAGES_FILE in data
    )


#: The name of the Kustomize component's ConfigMap (deploy/kustomize/promoter-hook).
HOOK_SETTINGS_NAME: Final = "promoter-hook"


def without_hook_containers(
    documents: Iterable[Mapping[str, Any]], removed: list[str] | None = None
) -> Iterator[Mapping[str, Any]]:
    """The documents with promoter's own hook containers left out, for image discovery.

    A hook container's image is the hook's, deployed with it, not one the environment promotes; its
    ``--image`` arguments name what it copies. Only those containers are left out: any other
    container of the same document (a migration step beside promoter's in one Job), and every other
    object, other hooks included, is planned as usual. A document is changed into a copy; the
    given ones are not touched. The images of the containers left out are appended to ``removed``
    when given (an overlay's ``images:`` entry for the hook's image applies to them).
    """
    for document in documents:
        if not is_hook(document):
            yield document
            continue
        pod = dict(document["spec"]["template"]["spec"])
        for key in _CONTAINER_LISTS:
            if isinstance(pod.get(key), list):
                kept = [c for c in pod[key] if not _is_hook_container(document, c)]
                if removed is not None:
                    removed.extend(
                        c["image"]
                        for c in pod[key]
                        if c not in kept
                        and isinstance(c, Mapping)
                        and isinstance(c.get("image"), str)
                    )
                pod[key] = kept
        template = {**document["spec"]["template"], "spec": pod}
        yield {**document, "spec": {**document["spec"], "template": template}}


def _pod_containers(document: Mapping[str, Any]) -> Iterator[tuple[str, object]]:
    """Each container of a document's ``spec.template.spec`` (a Job's pod) with its list's key."""
    spec = document.get("spec")
    template = spec.get("template") if isinstance(spec, Mapping) else None
    pod = template.get("spec") if isinstance(template, Mapping) else None
    for key in _CONTAINER_LISTS:
        containers = pod.get(key) if isinstance(pod, Mapping) else None
        for container in containers if isinstance(containers, list) else ():
            yield key, container


def _is_hook_container(document: Mapping[str, Any], container: object) -> bool:
    """Whether ``container`` of ``document`` is promoter's hook: the document is an Argo CD hook and
    the container runs ``promoter sync --from-registry``."""
    metadata = document.get("metadata")
    annotations = metadata.get("annotations") if isinstance(metadata, Mapping) else None
    return (
        isinstance(annotations, Mapping)
        and _HOOK_ANNOTATION in annotations
        and isinstance(container, Mapping)
        and isinstance(container.get("command"), list)
        and container["command"][-1:] == ["promoter"]
        and _runs_sync_from_registry(container.get("args"))
    )


def _runs_sync_from_registry(args: object) -> bool:
    """``sync ... --from-registry ...``, whatever options come between (``--timeout``)."""
    return isinstance(args, list) and args[:1] == ["sync"] and "--from-registry" in args


def component_hint(kustomize_error: str) -> str:
    """What to do about a failed ``kustomize build`` that the component's missing ConfigMap caused
    (its replacement names it), or "" for any other failure."""
    if not all(part in kustomize_error for part in _COMPONENT_SOURCE):
        return ""
    return (
        "the promoter-hook component needs the overlay's configMapGenerator promoter-hook with "
        f"sourceRegistry=HOST and {HOOK_IMAGES_FILE} (docs/argocd.md, Kustomize component)"
    )


def hook_images_path(overlay: Path) -> Path | None:
    """The overlay's image file, or None when the overlay does not use the component's file.

    Anything of that name counts: a symbolic link, a folder or a named pipe is refused when it is
    read (:func:`read_hook_images`), not passed over as if the overlay had no list.
    """
    path = overlay / HOOK_IMAGES_FILE
    return path if os.path.lexists(path) else None


def read_hook_images(path: Path) -> list[str]:
    """The references in the file, without comments and blank lines.

    Raises:
        ConfigError: the file cannot be read, is a symbolic link or no regular file, is over
            :data:`~promoter.config.input_files.LIST_CAP` or is not UTF-8; one line naming it.
    """
    return [entry for _, entry in list_entries(decode_text(_read(path), _name(path)))]


def drift(path: Path, running: Iterable[str], registry: str | None = None) -> HookFileDrift | None:
    """How the file differs from the managed images the overlay runs; None when they agree.

    A line of the file outside ``registry`` (the environment's) is also ``elsewhere``: the hook
    Job copies into the registry each line names, so such a line is another environment's image
    (refused as foreign-environment, exit 3) or a typo.
    """
    listed = set(read_hook_images(path))
    wanted = set(running)
    missing, extra = tuple(sorted(wanted - listed)), tuple(sorted(listed - wanted))
    elsewhere = tuple(e for e in extra if registry is not None and _registry(e) != registry)
    return HookFileDrift(path, missing, extra, elsewhere) if missing or extra else None


def _registry(text: str) -> str:
    """The registry of a list line, or "" when it does not parse (read_hook_images checked it)."""
    try:
        return parse_reference(text).registry
    except InvalidReferenceError:
        return ""


def rewritten(path: Path, running: Iterable[str]) -> tuple[str, str]:
    """The file's text before and after listing exactly ``running``, sorted; a list of the same
    images in another order is left as it is (after equals before).

    Comment and blank lines at the top (the file's explanation) are kept; the list below them is
    replaced. ``before`` is the file's exact text, as :func:`~promoter.gitops.overlay.write_edit`
    compares it; ``after`` keeps its byte order mark and ``\r\n`` line ends, if it has them.

    Raises:
        ConfigError: as :func:`read_hook_images` says.
    """
    data = _read(path)
    text = decode_text(data, _name(path))  # checks UTF-8 and drops a byte order mark
    before = data.decode("utf-8")
    header: list[str] = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            break
        header.append(line)
    wanted = sorted(set(running))
    listed = [line.strip() for line in text.splitlines()[len(header) :] if line.strip()]
    if sorted(set(listed)) == wanted:
        return before, before  # the same images (in another order, or twice): nothing to change
    newline = "\r\n" if "\r\n" in text else "\n"
    after = before[: len(before) - len(text)] + newline.join([*header, *wanted])
    after += newline
    if len(after.encode("utf-8")) > CONFIGMAP_LIMIT:
        raise ConfigError(
            f"{_name(path)}: listing the overlay's images would make it "
            f"{len(after.encode('utf-8')):,} bytes, over the 1 MiB a Kubernetes ConfigMap holds "
            "(the hook Job reads it from one); use the Argo CD plugin, which lists the images in "
            "the Job itself"
        )
    return before, after


#: The most a Kubernetes ConfigMap holds (its data, all keys together): the component's list is in
#: one, so a list larger than this never reaches the Job.
CONFIGMAP_LIMIT: Final = 1024 * 1024


def _name(path: Path) -> str:
    return f"image list {path}"


def _read(path: Path) -> bytes:
    """The file's bytes: capped as every list file is, and never through a symbolic link (Git stores
    links, so a pull request could point the list at any file: ``plan`` would print its lines and
    ``promote`` overwrite it)."""
    return read_regular_file(path, name=_name(path), cap=LIST_CAP, follow_links=False)
