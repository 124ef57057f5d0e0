"""Finding promoter.yaml, and a first look at it that needs no validation machinery.

This module stays light (no pydantic) because the CLI uses it before loading what validation
needs: the overlay a plan will render can start building while the rest of promoter loads.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from promoter.config.input_files import CONFIG_CAP, read_regular_text
from promoter.config.kustomize_options import build_arguments
from promoter.errors import ConfigError, Remedy

CONFIG_NAME: Final = "promoter.yaml"


def find_config(start: Path) -> Path:
    """Find ``promoter.yaml`` in ``start`` or the nearest of its parents, as git finds ``.git``.

    The nearest folder with anything named ``promoter.yaml`` is the answer: a folder, a named pipe or
    a broken link there is refused when it is read, rather than passed over for a parent's file.

    Args:
        start: a folder (or a file, whose folder is used), usually the current directory.

    Raises:
        ConfigError: no folder from ``start`` up to the root has the file.
    """
    folder = start.resolve()
    if not folder.is_dir():
        folder = folder.parent
    for candidate in (folder, *folder.parents):
        path = candidate / CONFIG_NAME
        if os.path.lexists(path):
            return path
    raise ConfigError(
        f"no {CONFIG_NAME} in {start} or its parents",
        hint="create one or name one explicitly",
        remedy=Remedy.NAME_CONFIG,
    )


def named_config(path: Path) -> Path:
    """The promoter.yaml that ``--config PATH`` names: the file itself, or ``PATH/promoter.yaml``
    when PATH is a folder (as ``kustomize build DIR`` and ``helm install ... DIR`` take folders).

    Whatever the answer is (a named pipe, a device, a folder named promoter.yaml) is checked when it
    is read (:func:`read_config_document`), without blocking.

    Raises:
        ConfigError: PATH is a folder without anything named promoter.yaml.
    """
    if not path.is_dir():
        return path
    candidate = path / CONFIG_NAME
    if not os.path.lexists(candidate):
        raise ConfigError(
            f"--config {path}: a folder without {CONFIG_NAME}",
            hint=f"name the file itself, or a folder that has a {CONFIG_NAME}",
        )
    return candidate


def read_config_document(path: Path) -> Any:
    """promoter.yaml as YAML values, before validation: every reader of the file reads it this way.

    The file is read up to :data:`~promoter.config.input_files.CONFIG_CAP` and no further, must be a
    regular file (a named pipe would block the command, a device never ends), and it takes no YAML
    aliases and no duplicate keys: it is promoter's own file, written by hand, and the in-cluster hook
    and the Argo CD plugin read it too.

    Raises:
        ConfigError: unreadable, no regular file, too large, not UTF-8, not YAML, or using aliases;
            one line.
    """
    from promoter.config.yaml_input import load_yaml  # noqa: PLC0415 - YAML only when a file is read

    text = read_regular_text(path, name=str(path), cap=CONFIG_CAP)
    return load_yaml(text, source=str(path))


def overlay_hint(config_path: Path, environment: str) -> Path | None:
    """The overlay folder ``environment`` names in ``config_path``, read without validating.

    Only a guess to start rendering early: None on any doubt, and the caller checks it against the
    validated configuration before using what was rendered.
    """
    hint = render_hint(config_path, environment)
    return None if hint is None else hint[0]


def render_hint(
    config_path: Path, environment: str, added: Sequence[str] = ()
) -> tuple[Path, tuple[str, ...]] | None:
    """The overlay folder ``environment`` names in ``config_path`` and the build options to render
    it with (its ``kustomizeBuildOptions``, then ``added``: a command's own), read without
    validating the rest of the file.

    Only a guess to start rendering early: None on any doubt, and the caller checks both against
    the validated configuration before using what was rendered. The options are checked here
    all the same (:func:`~promoter.config.kustomize_options.build_arguments`), since they become
    the early build's arguments; any refusal is None, and the real load reports it.
    """
    try:
        entry = read_config_document(config_path)["environments"][environment]
        overlay = entry["overlay"]
        written = entry.get("kustomizeBuildOptions") or []
        plugins = entry.get("allowKustomizePlugins") is True
        if not isinstance(written, list) or not all(isinstance(w, str) for w in written):
            return None
        options = build_arguments([*written, *added], where=CONFIG_NAME, plugins_allowed=plugins)
    except (ConfigError, KeyError, TypeError, AttributeError):
        return None
    if not isinstance(overlay, str) or not overlay:
        return None
    return (config_path.parent / overlay).resolve(), options
