"""YAML input: the fast safe loader, and one line for every YAML error, whoever reads the file.

promoter reads YAML written by people (promoter.yaml, kustomizations) and by tools (rendered manifests).
Each parser error becomes one line naming the file, the line and column as editors count them, and the
parser's own words; PyYAML and ruamel.yaml errors carry the same marks, so one function serves both.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any, Protocol

import yaml

try:
    from yaml import CSafeLoader as FastSafeLoader
except ImportError:  # PyYAML built without libyaml: the same rules, in Python
    from yaml import SafeLoader as FastSafeLoader  # type: ignore[assignment]

__all__ = ["FastSafeLoader", "UniqueKeyLoader", "yaml_error_line"]


class _Mark(Protocol):
    line: int
    column: int


class _MarkedError(Protocol):
    problem: str | None
    context: str | None
    problem_mark: _Mark | None
    context_mark: _Mark | None


class UniqueKeyLoader(FastSafeLoader):
    """The fast safe loader, refusing duplicate keys.

    YAML parsers silently keep the last of two equal keys; in a file written by hand that would drop a
    whole entry without a word, so a duplicate is an error that names its line.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: set[object] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, Hashable) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def yaml_error_line(source: str, exc: BaseException) -> str:
    """``SOURCE: invalid YAML at line L, column C: problem`` for a PyYAML or ruamel.yaml error.

    Args:
        source: what to call the input (a path, ``standard input``).
        exc: the parser's exception: a marked error (with line and column), any other YAML error, or
            the ``ValueError`` PyYAML raises for a date that is no date (``2024-02-30``).
    """
    if isinstance(exc, ValueError) and not hasattr(exc, "problem_mark"):
        return f"{source}: invalid YAML value: {exc}; quote it"
    marked: _MarkedError | None = exc if hasattr(exc, "problem_mark") else None  # type: ignore[assignment]
    if marked is None:
        return f"{source}: invalid YAML: {' '.join(str(exc).split())}"
    mark = marked.problem_mark or marked.context_mark
    where = "" if mark is None else f" at line {mark.line + 1}, column {mark.column + 1}"
    problem = " ".join((marked.problem or marked.context or "cannot parse").split())
    return f"{source}: invalid YAML{where}: {problem}"
