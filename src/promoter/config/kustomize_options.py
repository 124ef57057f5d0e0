"""Kustomize build options (``kustomizeBuildOptions:`` in promoter.yaml, ``--kustomize-build-option``):
the strings Argo CD takes in ``kustomize.buildOptions``, checked against an allow-list.

The options become arguments of a child process (``kubectl kustomize DIR OPTIONS``) that runs on a
workstation, in CI and in the Argo CD plugin's sidecar, so only flags that change how the overlay
renders are passed: an unknown flag is refused rather than handed on (a kubectl global flag such as
``--kubeconfig``, or ``--output`` writing the manifests to a file instead of promoter). Flags that
make Kustomize run programs of the repository (exec plugins, KRM functions in containers, their
network, mounts and environment) are refused too unless the environment says
``allowKustomizePlugins: true``: a render then runs code that a reviewer of the overlay may not
expect, so the switch is written down next to the environment, in Git, and reviewed.

An entry may hold several flags separated by whitespace, as Argo CD splits ``kustomize.buildOptions``
(Go's ``strings.Fields``: no quoting), so a value holds no spaces. Each flag comes out as one
argument (``--load-restrictor=LoadRestrictionsNone``), so no value is ever read as a flag.

This module is light (no pydantic, no YAML): the CLI checks the options before it starts the early
render, and :mod:`promoter.config.load` checks the file's.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from promoter.errors import ConfigError

__all__ = ["PLUGIN_SWITCH", "build_arguments"]

#: promoter.yaml's per-environment key that allows the plugin flags.
PLUGIN_SWITCH: Final = "allowKustomizePlugins"


@dataclass(frozen=True, slots=True)
class _Flag:
    """What one accepted flag takes.

    Attributes:
        value: whether it takes a value (``--flag VALUE`` or ``--flag=VALUE``); otherwise it is a
            switch (``--flag``, or ``--flag=true``/``--flag=false`` as Go's flag parser takes).
        choices: the values it accepts, or empty for any value that does not start with ``-``.
        plugin: it makes the render run plugins (needs :data:`PLUGIN_SWITCH`).
    """

    value: bool = False
    choices: tuple[str, ...] = ()
    plugin: bool = False


_FLAGS: Final[dict[str, _Flag]] = {
    # Helm charts (helmCharts:): kustomize runs `helm template` (and `helm pull` for a repository).
    "--enable-helm": _Flag(),
    # Names the program kustomize runs as helm: a script of the repository would run as a
    # plugin does, so it needs the same switch (helm from PATH needs no option).
    "--helm-command": _Flag(value=True, plugin=True),
    "--helm-kube-version": _Flag(value=True),
    "--helm-api-versions": _Flag(value=True),
    "--helm-debug": _Flag(),
    # Files outside the kustomization's folder (a shared chart home, a values file).
    "--load-restrictor": _Flag(
        value=True, choices=("LoadRestrictionsRootOnly", "LoadRestrictionsNone")
    ),
    # Deprecated in Kustomize 5 (sortOptions in the kustomization replaces it), still accepted.
    "--reorder": _Flag(value=True, choices=("legacy", "none")),
    # Plugins: exec plugins, and KRM functions run as programs or in containers.
    "--enable-alpha-plugins": _Flag(plugin=True),
    "--enable-exec": _Flag(plugin=True),
    "--network": _Flag(plugin=True),
    "--network-name": _Flag(value=True, plugin=True),
    "--mount": _Flag(value=True, plugin=True),
    "--env": _Flag(value=True, plugin=True),
    "--as-current-user": _Flag(plugin=True),
}

#: Short spellings Kustomize takes, by the long flag they stand for.
_SHORT: Final = {"-e": "--env"}

#: Flags refused whatever the settings, each with why.
_REFUSED: Final = {
    "--output": "writes the manifests to a file, and promoter reads them from the build's output",
    "-o": "writes the manifests to a file, and promoter reads them from the build's output",
}


def build_arguments(
    entries: Iterable[str], *, where: str, plugins_allowed: bool = False
) -> tuple[str, ...]:
    """The arguments that ``entries`` (Argo CD's ``kustomize.buildOptions`` strings) add to a
    ``kustomize build``, one per flag, each checked.

    Args:
        entries: the option strings; each may hold several whitespace-separated flags, and a flag's
            value may be the next word (``--load-restrictor LoadRestrictionsNone``).
        where: where they were written, for the message (``promoter.yaml:
            environments.production.kustomizeBuildOptions``, ``--kustomize-build-option``).
        plugins_allowed: the environment says ``allowKustomizePlugins: true``.

    Returns:
        ``--flag`` or ``--flag=VALUE`` for each flag, in the order given.

    Raises:
        ConfigError: one line naming ``where`` and the flag: not a flag, an unknown or refused
            flag, a missing or wrong value, or a plugin flag without the switch.
    """
    words = [word for entry in entries for word in entry.split()]
    arguments: list[str] = []
    position = 0
    while position < len(words):
        word = words[position]
        position += 1
        name, has_value, value = word.partition("=")
        name = _SHORT.get(name, name)
        if name in _REFUSED:
            raise ConfigError(f"{where}: {word!r} is refused: it {_REFUSED[name]}")
        flag = _FLAGS.get(name)
        if flag is None:
            if not word.startswith("-"):
                raise ConfigError(
                    f"{where}: {word!r} is no option (expected flags such as --enable-helm; the "
                    "overlay folder is promoter.yaml's overlay:)"
                )
            raise ConfigError(
                f"{where}: unknown kustomize build option {name!r}; promoter passes only "
                f"{', '.join(_FLAGS)}"
            )
        if flag.plugin and not plugins_allowed:
            raise ConfigError(
                f"{where}: {name} lets the render run plugins (programs or containers of the "
                f"repository); set {PLUGIN_SWITCH}: true on the environment in promoter.yaml to "
                "allow it"
            )
        if not flag.value:
            if has_value and value not in ("true", "false"):
                raise ConfigError(f"{where}: {name} takes no value, got {word!r}")
            arguments.append(word if has_value else name)
            continue
        if not has_value:
            if position == len(words) or words[position].startswith("-"):
                raise ConfigError(f"{where}: {name} needs a value{_choices(flag)}")
            value = words[position]
            position += 1
        if not value or value.startswith("-"):
            raise ConfigError(f"{where}: {name} needs a value{_choices(flag)}, got {value!r}")
        if flag.choices and value not in flag.choices:
            raise ConfigError(f"{where}: {name}{_choices(flag)}, got {value!r}")
        arguments.append(f"{name}={value}")
    return tuple(arguments)


def _choices(flag: _Flag) -> str:
    return f" ({' or '.join(flag.choices)})" if flag.choices else ""
