"""Reading an overlay's kustomization tree on disk: its kustomization files, and the image fieldSpecs
its ``configurations:`` files declare.

Kustomize's ``images:`` transformer rewrites images in pod specs, and in any other field the
kustomizations name in their transformer configurations (``configurations: [images-config.yaml]``, a
file of ``images: [{path: spec/image, kind: SparkApplication}]``). Configurations of a base or a
component count in every kustomization that pulls it in (kustomize merges them upward as it
accumulates resources), so the whole local tree is read.

Only local folders are read: a remote base (a Git URL, an HTTP archive) is fetched by kustomize while it
renders, but not here, so fieldSpecs declared only there are not seen; images in those fields are
then reported as unmanaged references (see :func:`promoter.gitops.discover.scan_manifests`), not
planned. Read after kustomize has rendered the overlay, so the tree is one kustomize accepted.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Final

from promoter.config.input_files import KUSTOMIZATION_CAP, read_regular_text
from promoter.config.yaml_input import ALIAS_EXPANSION_LIMIT, load_yaml
from promoter.errors import ConfigError
from promoter.gitops.discover import ImageFieldSpec, parse_field_spec_path

#: The file names Kustomize looks for in a folder, in its order.
KUSTOMIZATION_NAMES: Final = ("kustomization.yaml", "kustomization.yml", "Kustomization")
#: The fields of a kustomization that pull in other kustomizations (folders) or resource files.
_INCLUDES: Final = ("resources", "bases", "components")
#: The optional keys of a fieldSpec besides ``path`` that decide where it applies.
_MATCH_KEYS: Final = ("kind", "group", "version")
_FIELD_SPEC_SHAPE: Final = "write {path: spec/image, kind: KIND} (group: and version: optional)"


def kustomization_path(overlay: Path) -> Path:
    """The kustomization file of an overlay folder, found as Kustomize finds it: by name, whatever
    it is (a named pipe or a link is refused when it is read, not passed over).

    Raises:
        ConfigError: the folder does not exist, has no kustomization file, or has more than one
            (Kustomize refuses that too).
    """
    if not overlay.is_dir():
        raise ConfigError(
            f"overlay {overlay} does not exist; check the overlay path in promoter.yaml"
        )
    found = [overlay / name for name in KUSTOMIZATION_NAMES if os.path.lexists(overlay / name)]
    if not found:
        raise ConfigError(f"no {', '.join(KUSTOMIZATION_NAMES)} in overlay {overlay}")
    if len(found) > 1:
        names = ", ".join(path.name for path in found)
        raise ConfigError(f"overlay {overlay} has several kustomization files ({names}); keep one")
    return found[0]


def image_field_specs(overlay: Path) -> tuple[ImageFieldSpec, ...]:
    """Every image fieldSpec the overlay's kustomization tree declares, each once, in the order met.

    The overlay's own ``configurations:`` come first, then those of each folder its ``resources:``,
    ``bases:`` and ``components:`` name, depth first, in the order listed. Entries that are files
    (resources) or remote URLs are not followed; a folder reached twice is read once.

    Args:
        overlay: the overlay folder.

    Returns:
        The fieldSpecs (see :class:`~promoter.gitops.discover.ImageFieldSpec`).

    Raises:
        ConfigError: a kustomization or configurations file cannot be read, is over
            :data:`~promoter.config.input_files.KUSTOMIZATION_CAP`, is not YAML, or an ``images:``
            entry is not a fieldSpec; one line naming the file.
    """
    found: dict[ImageFieldSpec, None] = {}
    for folder, kustomization in _walk(overlay):
        configurations = kustomization.get("configurations")
        for entry in configurations if isinstance(configurations, list) else ():
            if isinstance(entry, str):
                found.update(dict.fromkeys(_read_field_specs(folder / entry)))
    return tuple(found)


def image_entry_names(overlay: Path) -> dict[str, str]:
    """The ``images:`` entries of the overlay's kustomization tree, by ``name`` (the image as
    resources write it), each with the image it becomes (``newName``, else the name itself).

    Raises:
        ConfigError: see :func:`image_field_specs`.
    """
    names: dict[str, str] = {}
    for _, kustomization in _walk(overlay):
        entries = kustomization.get("images")
        for entry in entries if isinstance(entries, list) else ():
            if isinstance(entry, Mapping) and isinstance(entry.get("name"), str):
                renamed = entry.get("newName")
                names.setdefault(
                    entry["name"], renamed if isinstance(renamed, str) else entry["name"]
                )
    return names


#: The fields of a kustomization whose entries are paths (files or folders), besides ``_INCLUDES``.
_PATH_LISTS: Final = (
    "crds",
    "configurations",
    "generators",
    "transformers",
    "validators",
    "patchesStrategicMerge",
)
#: The fields of a kustomization that are lists of mappings, each with a ``path`` of a file.
_PATH_ENTRIES: Final = ("patches", "patchesJson6902", "replacements")
#: The fields of a kustomization that are lists of generators reading files.
_GENERATORS: Final = ("configMapGenerator", "secretGenerator")


def local_sources(overlay: Path) -> tuple[Path, ...]:
    """Every local folder and file the overlay renders from: the folder of each kustomization of
    its tree (the overlay's, and those of the folders its ``resources:``, ``bases:`` and
    ``components:`` name, as :func:`image_field_specs` walks them), and every file or folder any of
    them names outside its own folder (a patch, a generator's file, a configurations file, a Helm
    chart home or values file: possible with ``--load-restrictor LoadRestrictionsNone``).

    For reading the overlay's history: a change to any of these may change what it deploys. Each
    path is absolute, without ``..``, and given once; a path through a symbolic link is given as
    written and also as the link resolves. Remote bases (URLs) and inline patches are no local
    paths and are left out; a name that does not exist in the folder is left out too.

    Raises:
        ConfigError: see :func:`image_field_specs`.
    """
    found: dict[Path, None] = {}
    for folder, kustomization in _walk(overlay):
        absolute = normal_path(folder)
        found[absolute] = None
        for name in _named_paths(kustomization):
            try:
                named = normal_path(folder / name)
                exists = os.path.lexists(named)
            except (OSError, ValueError):  # an inline patch in patchesStrategicMerge, a NUL
                continue
            if exists and not named.is_relative_to(absolute):
                found[named] = None
    for path in list(found):
        try:
            resolved = path.resolve()
        except (OSError, RuntimeError):  # a symbolic link loop: kustomize cannot read it either
            continue
        found.setdefault(resolved, None)
    return tuple(found)


def copy_sources(overlay: Path, into: Path) -> Path:
    """Copy everything the overlay renders from (:func:`local_sources`) under the empty folder
    ``into``, in the same layout, so that a copy of the overlay renders as the original does; for
    rendering an edit without writing it (``promote --dry-run``).

    Returns:
        The folder the copy is relative to: a path ``p`` under it is copied to
        ``into / p.relative_to(root)``; the copied overlay is that of ``overlay``. Files are
        copied, never linked: a render may write into its folder (an exec plugin, Helm pulling a
        chart into its chart home), and must not reach the checkout through a shared file.
        Symbolic links are copied as links; ``.git`` folders, named pipes, sockets and devices
        are left out (Kustomize reads none of them).

    Raises:
        ConfigError: the kustomization tree cannot be read, or a file cannot be copied.
    """
    overlay = normal_path(overlay)
    sources = sorted({overlay, *local_sources(overlay)}, key=lambda path: len(path.parts))
    root = Path(os.path.commonpath(sources))
    copied: list[Path] = []
    try:
        for source in sources:
            if any(source.is_relative_to(done) for done in copied):
                continue  # inside a folder copied already
            destination = into / source.relative_to(root)
            if source.is_dir() and not source.is_symlink():
                shutil.copytree(
                    source,
                    destination,
                    symlinks=True,
                    ignore=_not_copied,
                    dirs_exist_ok=True,
                )
                copied.append(source)
            else:
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, destination, follow_symlinks=False)
    except shutil.Error as exc:
        first = exc.args[0][0] if exc.args and exc.args[0] else ("", "", str(exc))
        raise ConfigError(f"cannot copy overlay {overlay} to render it: {first[2]}") from exc
    except OSError as exc:
        raise ConfigError(
            f"cannot copy overlay {overlay} to render it: {exc.strerror or exc}"
        ) from exc
    return root


def _not_copied(folder: str, names: list[str]) -> set[str]:
    """What :func:`copy_sources` leaves out of a folder: ``.git`` and what is no file, folder or
    link (a named pipe would block the copy)."""
    left = {".git"}
    for name in names:
        try:
            mode = (Path(folder) / name).lstat().st_mode
        except OSError:
            continue
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode) or stat.S_ISLNK(mode)):
            left.add(name)
    return left


def _named_paths(kustomization: Mapping[str, Any]) -> Iterator[str]:
    """Each path a kustomization names, as written (relative to its folder, or absolute)."""
    for field in (*_INCLUDES, *_PATH_LISTS):
        yield from _strings(kustomization.get(field))
    for field in _PATH_ENTRIES:
        yield from _mapping_paths(kustomization.get(field), "path")
    openapi = kustomization.get("openapi")
    yield from _mapping_paths([openapi], "path")
    for field in _GENERATORS:
        for generator in _mappings(kustomization.get(field)):
            # files: entries are "path" or "key=path"
            yield from (
                entry.partition("=")[2] or entry for entry in _strings(generator.get("files"))
            )
            yield from _strings(generator.get("envs"))
            yield from _mapping_paths([generator], "env")
    helm_globals = kustomization.get("helmGlobals")
    yield from _mapping_paths([helm_globals], "chartHome")
    for chart in _mappings(kustomization.get("helmCharts")):
        yield from _mapping_paths([chart], "valuesFile")
        yield from _strings(chart.get("additionalValuesFiles"))


def _mappings(value: object) -> list[Mapping[str, Any]]:
    """The mapping entries of a list field."""
    return (
        [entry for entry in value if isinstance(entry, Mapping)] if isinstance(value, list) else []
    )


def _mapping_paths(value: object, key: str) -> list[str]:
    """The text values at ``key`` of the mapping entries of a list."""
    return [entry[key] for entry in _mappings(value) if isinstance(entry.get(key), str)]


def normal_path(path: Path) -> Path:
    """``path`` made absolute with ``..`` and ``.`` steps taken away, links not followed."""
    return Path(os.path.normpath(path.absolute()))


def _walk(overlay: Path) -> Iterator[tuple[Path, Mapping[str, Any]]]:
    """Each kustomization folder of the tree with its parsed kustomization, depth first."""
    seen: set[Path] = set()
    pending = [overlay]
    while pending:
        folder = pending.pop()
        try:
            key = folder.resolve()
        except (OSError, RuntimeError):  # a symbolic link loop: kustomize did not follow it either
            continue
        if key in seen:
            continue
        seen.add(key)
        kustomization = _read_yaml_mapping(kustomization_path(folder), "kustomization")
        yield folder, kustomization
        included = [
            folder / entry
            for field in _INCLUDES
            for entry in _strings(kustomization.get(field))
            if (folder / entry).is_dir()
        ]
        pending.extend(reversed(included))


def _read_field_specs(path: Path) -> list[ImageFieldSpec]:
    """The ``images:`` fieldSpecs of one configurations file; its other sections are kustomize's.

    Raises:
        ConfigError: see :func:`image_field_specs`.
    """
    document = _read_yaml_mapping(path, "kustomize configurations file")
    entries = document.get("images")
    if entries is None:
        return []
    if not isinstance(entries, list):
        raise ConfigError(f"{path}: images: must be a list of fieldSpecs; {_FIELD_SPEC_SHAPE}")
    specs = []
    for index, entry in enumerate(entries):
        where = f"{path}: images[{index}]"
        if not isinstance(entry, Mapping) or not isinstance(entry.get("path"), str):
            raise ConfigError(f"{where}: a fieldSpec needs a path; {_FIELD_SPEC_SHAPE}")
        matches = {key: entry.get(key) or "" for key in _MATCH_KEYS}
        wrong = [key for key, value in matches.items() if not isinstance(value, str)]
        if wrong:
            raise ConfigError(f"{where}: {', '.join(wrong)} must be text; {_FIELD_SPEC_SHAPE}")
        specs.append(ImageFieldSpec(parse_field_spec_path(entry["path"]), **matches))
    return specs


def _read_yaml_mapping(path: Path, what: str) -> Mapping[str, Any]:
    """A YAML file that must hold one mapping (an empty file is an empty one).

    Raises:
        ConfigError: unreadable, no regular file (a named pipe would block), over the cap, not
            UTF-8 or YAML, or not a mapping.
    """
    text = read_regular_text(path, name=f"{what} {path}", cap=KUSTOMIZATION_CAP)
    document = load_yaml(text, source=str(path), alias_expansion=ALIAS_EXPANSION_LIMIT)
    if document is None:
        return {}
    if not isinstance(document, Mapping):
        raise ConfigError(f"{path}: expected a mapping of fields, as a {what} is")
    return document


def _strings(value: object) -> list[str]:
    """The text entries of a list field; kustomize has already refused other shapes when it rendered."""
    return [entry for entry in value if isinstance(entry, str)] if isinstance(value, list) else []
