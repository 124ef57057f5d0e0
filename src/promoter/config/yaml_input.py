"""YAML input: the one way promoter loads YAML it reads, and one line for every YAML error.

promoter reads YAML written by people (promoter.yaml, kustomizations) and by tools (rendered manifests).
Each parser error becomes one line naming the file, the line and column as editors count them, and the
parser's own words; PyYAML and ruamel.yaml errors carry the same marks, so one function serves both.

Aliases are where a few bytes of YAML become gigabytes: ``&a [*b, *b, ...]`` nested nine deep is a
billion values. PyYAML shares the aliased objects, so loading stays small, but whatever walks the result
afterwards (validation, ``json.dumps`` of a repository policy, a YAML dump for the hook Job) pays for every
copy. :func:`load_yaml_documents` therefore weighs each composed document before anything is built from
it: promoter's own files take no aliases at all, and other YAML may grow through aliases by at most
:data:`ALIAS_EXPANSION_LIMIT` in all. Weighing follows each node once, so it costs what the file is long.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from typing import Any, Final, Protocol

import yaml

try:
    from yaml import CSafeLoader as FastSafeLoader
except ImportError:  # PyYAML built without libyaml: the same rules, in Python
    from yaml import SafeLoader as FastSafeLoader  # type: ignore[assignment]

from promoter.errors import ConfigError
from promoter.reference import hide_credentials

__all__ = [
    "ALIAS_EXPANSION_LIMIT",
    "FastSafeLoader",
    "UniqueKeyLoader",
    "load_yaml",
    "load_yaml_documents",
    "yaml_error_line",
]

#: How much YAML aliases may add to a whole stream of documents, weighed as the loaded values would be
#: if every alias were written out: each scalar counts its characters, each mapping and list one. A
#: Helm chart that shares an env list between containers adds a few thousand; a bomb adds billions.
ALIAS_EXPANSION_LIMIT: Final = 1_000_000


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
                # A registries: key may hold credentials: shown as ***@host, as everywhere.
                shown = hide_credentials(key) if isinstance(key, str) else None
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {shown or key!r}", key_node.start_mark
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


def load_yaml(
    text: str,
    *,
    source: str,
    loader: type[FastSafeLoader] = UniqueKeyLoader,
    alias_expansion: int | None = None,
) -> Any:
    """The one YAML document in ``text`` (None when there is none), checked for aliases first.

    Args:
        text: the YAML.
        source: what to call it in an error (a path, ``standard input``).
        loader: a safe loader class (by default one that refuses duplicate keys).
        alias_expansion: how much aliases may add (see :data:`ALIAS_EXPANSION_LIMIT`); None refuses
            aliases altogether, as promoter's own files do.

    Raises:
        ConfigError: invalid YAML, more than one document, or aliases beyond the rule; one line.
    """
    parser = loader(text)
    try:
        node = parser.get_single_node()
        if node is None:
            return None
        _weigh(node, source, alias_expansion, alias_expansion)
        return parser.construct_document(node)
    except (yaml.YAMLError, ValueError, RecursionError) as exc:
        raise ConfigError(_error_line(source, exc)) from None
    finally:
        parser.dispose()


def load_yaml_documents(
    text: str,
    *,
    source: str,
    loader: type[FastSafeLoader] = FastSafeLoader,
    alias_expansion: int | None = ALIAS_EXPANSION_LIMIT,
) -> Iterator[Any]:
    """Each document of a multi-document stream as it is parsed, each checked for aliases first.

    Arguments as for :func:`load_yaml`; the alias allowance is for the whole stream, not per document.

    Raises:
        ConfigError: when the parse reaches invalid YAML or aliases beyond the rule (documents before
            it were yielded).
    """
    parser = loader(text)
    allowance = alias_expansion
    try:
        while parser.check_node():
            node = parser.get_node()
            if node is None:
                break
            added = _weigh(node, source, allowance, alias_expansion)
            if allowance is not None:
                allowance -= added
            document = parser.construct_document(node)
            yield document
    except (yaml.YAMLError, ValueError, RecursionError) as exc:
        raise ConfigError(_error_line(source, exc)) from None
    finally:
        parser.dispose()


def _error_line(source: str, exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return f"{source}: invalid YAML: nested too deeply"
    return yaml_error_line(source, exc)


def _weigh(root: yaml.Node, source: str, allowance: int | None, limit: int | None) -> int:
    """How much aliases add to the document under ``root``, refused beyond ``allowance``.

    The composed document is a graph in which an alias is a second edge to its anchored node. Each
    node's expanded weight is computed once (children before parents, without recursion, so deep
    documents cannot exhaust the stack); the sum of the weights of the distinct nodes is what the file
    spells out, and the root's expanded weight less that sum is what aliases add.

    Args:
        root: the composed document.
        source: what to call the input in an error.
        allowance: how much aliases may still add; None when they are refused altogether.
        limit: the whole stream's allowance, for the message.

    Raises:
        ConfigError: an alias where none is allowed, an alias inside the node it names (endless), or
            more added than the allowance.
    """
    expanded: dict[int, int] = {}
    in_progress: set[int] = set()
    spelled_out = 0
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        children = _children(node)
        if children_done:
            in_progress.discard(key)
            expanded[key] = _own_weight(node) + sum(expanded[id(child)] for child in children)
            continue
        if key in expanded:  # a second use: the parent adds its weight again
            if allowance is None:
                raise _alias_error(source, node, "aliases are not accepted in this file")
            continue
        if key in in_progress:
            raise _alias_error(source, node, "it is used inside itself, so it expands without end")
        in_progress.add(key)
        spelled_out += _own_weight(node)
        stack.append((node, True))
        stack.extend((child, False) for child in reversed(children))
    added = expanded[id(root)] - spelled_out
    if allowance is not None and added > allowance:
        line = root.start_mark.line + 1
        raise ConfigError(
            f"{source}: YAML aliases in the document at line {line} expand beyond the limit of "
            f"{limit or 0:,} characters and values that aliases may add; write the values out"
        )
    return added


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _own_weight(node: yaml.Node) -> int:
    """A scalar weighs its characters (at least one), a mapping or list one."""
    return max(1, len(node.value)) if isinstance(node, yaml.ScalarNode) else 1


def _alias_error(source: str, node: yaml.Node, problem: str) -> ConfigError:
    mark = node.start_mark
    return ConfigError(
        f"{source}: YAML alias of the value at line {mark.line + 1}, column {mark.column + 1}: "
        f"{problem}; write the value out where it is used"
    )
