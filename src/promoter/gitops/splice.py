"""The splice editor behind overlay edits: changes a kustomization's ``images:`` in its original text.

A promotion is a Git change someone reviews, so the diff must be the one value that moved: comments,
key order, quoting, indentation and blank lines everywhere else stay byte for byte. ruamel.yaml's
round-trip dumper cannot promise that (it applies one indentation to every sequence in the file and
normalises spacing after colons), so ruamel.yaml is used for what it does exactly: composing the
file into nodes that carry their start and end offsets. ``ImagesEditor`` collects splices of the
original text at those offsets, applies them, and parses the result again to compare it with the
intended data, so a splice that went wrong is refused instead of written. The node and offset
helpers and the YAML quoting rules it needs live here with it; which file to edit, the planned
edit as a value and writing it are ``promoter.gitops.overlay``'s.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import yaml
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from promoter.config.yaml_input import yaml_error_line
from promoter.errors import ConfigError, InvalidReferenceError
from promoter.reference import parse_reference

# The keys of a Kustomize ``images:`` entry; ``NEW_TAG`` and ``DIGEST`` are what callers ask
# ``ImagesEditor.set`` to set.
_NAME: Final = "name"
_NEW_NAME: Final = "newName"
NEW_TAG: Final = "newTag"
DIGEST: Final = "digest"
_IMAGES: Final = "images"
_STR_TAG: Final = "tag:yaml.org,2002:str"
_NULL_TAG: Final = "tag:yaml.org,2002:null"


def _repository_of(image: str) -> str | None:
    """The repository path of an image name, or None when it does not parse (it cannot match)."""
    try:
        return parse_reference(image, default_tag=None).repository
    except InvalidReferenceError:
        return None


def _plain_is_safe(value: str) -> bool:
    """Whether ``value`` can be written unquoted and still read back as the same string.

    Checked with both YAML 1.1 (PyYAML; Go's yaml libraries still read ``yes`` or ``0777`` the 1.1
    way in places) and YAML 1.2 (ruamel.yaml), so a tag like ``1.10`` is quoted and ``v1.10`` not.
    """
    if not value or value != value.strip() or "\n" in value:
        return False
    try:
        return bool(
            yaml.safe_load(value) == value and YAML(typ="safe", pure=True).load(value) == value
        )
    except (yaml.YAMLError, YAMLError, ValueError):  # ValueError: a date that is no date
        return False


def _scalar(value: str, style: str | None = None) -> str:
    """``value`` as a YAML scalar, in the quoting style of the value it replaces when it had one."""
    if style == "'":
        return "'" + value.replace("'", "''") + "'"
    if style == '"' or not _plain_is_safe(value):
        return json.dumps(value)  # a JSON string is a valid YAML double-quoted scalar
    return value


def _tag(node: Node) -> str:
    """A node's resolved tag as text (ruamel.yaml may hold it as a ``Tag`` object)."""
    tag = node.tag
    return str(getattr(tag, "value", tag))


def _start(node: Node) -> int:
    return int(node.start_mark.index)


def _end(node: Node) -> int:
    return int(node.end_mark.index)


def _column(node: Node) -> int:
    return int(node.start_mark.column)


def _pairs(mapping: MappingNode) -> list[tuple[Node, Node]]:
    return list(mapping.value)


def _scalar_keys(mapping: MappingNode) -> dict[str, int]:
    """Index of each pair by its key, for keys that are plain scalars (first one wins)."""
    keys: dict[str, int] = {}
    for index, (key, _) in enumerate(_pairs(mapping)):
        if isinstance(key, ScalarNode) and isinstance(key.value, str):
            keys.setdefault(key.value, index)
    return keys


def _flow_entry(fields: list[tuple[str, str]]) -> str:
    """An ``images:`` entry as a flow mapping: ``{name: a, newTag: b}``."""
    return "{" + ", ".join(f"{field}: {_scalar(text)}" for field, text in fields) + "}"


def _block_entry(dash: int, fields: list[tuple[str, str]]) -> list[str]:
    """An ``images:`` entry as block lines, its dash at column ``dash``."""
    (first, first_text), *rest = fields
    return [
        f"{' ' * dash}- {first}: {_scalar(first_text)}",
        *(f"{' ' * (dash + 2)}{field}: {_scalar(text)}" for field, text in rest),
    ]


class ImagesEditor:
    """One planned edit of one file's text: collects splices, applies them, checks the result.

    Args:
        text: the kustomization's text as read (CRLF line ends are kept, and used for new lines).
        path: the file the text came from; it names the file in errors and is never read here.
    """

    def __init__(self, text: str, path: Path) -> None:
        self.text = text
        self.path = path
        self.newline = "\r\n" if "\r\n" in text else "\n"
        self.splices: list[tuple[int, int, str]] = []

    # -- the edit ------------------------------------------------------------------------------

    def set(
        self,
        match_repository: str,
        name: str,
        key: str,
        value: str,
        *,
        keep_other: bool = False,
        new_name: str | None = None,
    ) -> str:
        """The new text with ``key: value`` set in every matching entry, or a new entry appended.

        Args:
            match_repository: the repository path an entry's ``newName`` (else ``name``) must have.
            name: the ``name`` of an appended entry.
            key: ``NEW_TAG`` or ``DIGEST``.
            value: the tag or the digest.
            keep_other: leave the other of newTag/digest in place instead of replacing it.
            new_name: the ``newName`` of an appended entry, if it needs one (the resources write
                ``name`` and the image is renamed into the environment's registry).

        Raises:
            ConfigError: invalid YAML, a kustomization or ``images:`` of the wrong shape, a value
                that spans lines, or a splice whose result does not parse to the intended data.
        """
        root = self._compose()
        data = self._load(self.text)
        expected = copy.deepcopy(data) if data is not None else {}
        fields = [(_NAME, name), *([(_NEW_NAME, new_name)] if new_name else []), (key, value)]
        if root is None:
            self._append_images_key(None, fields)
            expected[_IMAGES] = [dict(fields)]
        elif not isinstance(root, MappingNode) or not isinstance(expected, dict):
            raise ConfigError(f"{self.path}: expected a mapping at the top of the kustomization")
        elif (images_index := _scalar_keys(root).get(_IMAGES)) is None:
            self._append_images_key(root, fields)
            expected[_IMAGES] = [dict(fields)]
        else:
            images_key, images = _pairs(root)[images_index]
            if isinstance(images, ScalarNode) and _tag(images) == _NULL_TAG:
                self._fill_empty_images(root, images_key, images, fields)
                expected[_IMAGES] = [dict(fields)]
            elif isinstance(images, SequenceNode):
                matched = list(self._matching_entries(images, match_repository))
                entries = expected[_IMAGES]
                for index, entry in matched:
                    self._set_in_entry(entry, key, value, keep_other=keep_other)
                    if not keep_other:
                        entries[index].pop(DIGEST if key == NEW_TAG else NEW_TAG, None)
                    entries[index][key] = value
                if not matched:
                    self._append_entry(images, fields)
                    entries.append(dict(fields))
            else:
                raise ConfigError(f"{self.path}: images: expected a list of images")
        return self._verified(self._apply(), expected)

    def rename(self, match_repository: str, new_name: str) -> str:
        """The new text with ``newName: new_name`` in every matching entry whose image (``newName``,
        else ``name``) is another: an entry that names another environment's registry is moved
        into this one's. The key is set in place, or added right after ``name``.

        Raises:
            ConfigError: invalid YAML, a kustomization or ``images:`` of the wrong shape, a
                ``newName`` that spans lines, or a splice whose result does not parse to the
                intended data.
        """
        root = self._compose()
        data = self._load(self.text)
        if not isinstance(root, MappingNode) or not isinstance(data, dict):
            return self.text
        images_index = _scalar_keys(root).get(_IMAGES)
        images = _pairs(root)[images_index][1] if images_index is not None else None
        if not isinstance(images, SequenceNode):
            return self.text
        expected = copy.deepcopy(data)
        for index, entry in self._matching_entries(images, match_repository):
            keys = _scalar_keys(entry)
            if _NEW_NAME in keys and self._text_value(entry, _NEW_NAME):
                node = self._one_line_scalar(_pairs(entry)[keys[_NEW_NAME]][1], _NEW_NAME)
                if node.value == new_name:
                    continue
                self.splices.append((_start(node), _end(node), _scalar(new_name, node.style)))
            elif self._text_value(entry, _NAME) == new_name:
                continue
            elif _NEW_NAME in keys:  # `newName:` left empty renames nothing
                empty = _pairs(entry)[keys[_NEW_NAME]][1]
                self.splices.append((_start(empty), _end(empty), _scalar(new_name)))
            else:
                self._add_pair(entry, _NEW_NAME, _scalar(new_name), after=keys.get(_NAME))
            expected[_IMAGES][index][_NEW_NAME] = new_name
        return self._verified(self._apply(), expected)

    def entries(self, match_repository: str) -> list[dict[str, str]]:
        """The matching entries of ``images:`` as written: each entry's ``name``, ``newName``,
        ``newTag`` and ``digest`` that are one-line strings (the others are left out).

        Raises:
            ConfigError: invalid YAML, or a kustomization or ``images:`` of the wrong shape.
        """
        root = self._compose()
        if not isinstance(root, MappingNode):
            return []
        images_index = _scalar_keys(root).get(_IMAGES)
        images = _pairs(root)[images_index][1] if images_index is not None else None
        if not isinstance(images, SequenceNode):
            return []
        return [
            {
                field: text
                for field in (_NAME, _NEW_NAME, NEW_TAG, DIGEST)
                if (text := self._text_value(entry, field)) is not None
            }
            for _, entry in self._matching_entries(images, match_repository)
        ]

    def _matching_entries(
        self, images: SequenceNode, repository: str
    ) -> Iterator[tuple[int, MappingNode]]:
        """Entries (and their positions) whose effective image (``newName``, else ``name``) is in
        ``repository``."""
        for index, entry in enumerate(images.value):
            if not isinstance(entry, MappingNode):
                raise ConfigError(f"{self.path}: images: every entry must be a mapping with a name")
            names = [
                value
                for field in (_NEW_NAME, _NAME)
                if (value := self._text_value(entry, field))  # an empty newName renames nothing
            ]
            if names and _repository_of(names[0]) == repository:
                yield index, entry

    def _text_value(self, entry: MappingNode, key: str) -> str | None:
        """The text of ``key`` in an entry; None when absent, null or not a scalar."""
        position = _scalar_keys(entry).get(key)
        if position is None:
            return None
        node = _pairs(entry)[position][1]
        if not isinstance(node, ScalarNode) or _tag(node) == _NULL_TAG:
            return None
        return str(node.value)

    def _set_in_entry(
        self, entry: MappingNode, key: str, value: str, *, keep_other: bool = False
    ) -> None:
        """Set ``key`` in one entry and drop the other of newTag/digest (unless ``keep_other``), in
        place where possible."""
        other = DIGEST if key == NEW_TAG else NEW_TAG
        keys = _scalar_keys(entry)
        pairs = _pairs(entry)
        if keep_other:
            if key in keys:
                node = self._one_line_scalar(pairs[keys[key]][1], key)
                if node.value != value or _tag(node) != _STR_TAG:
                    self.splices.append((_start(node), _end(node), _scalar(value, node.style)))
            else:
                self._add_pair(entry, key, _scalar(value))
            return
        for present in (key, other):
            if present in keys:
                self._one_line_scalar(pairs[keys[present]][1], present)
        if key in keys:
            node = self._one_line_scalar(pairs[keys[key]][1], key)
            if node.value != value or _tag(node) != _STR_TAG:
                self.splices.append((_start(node), _end(node), _scalar(value, node.style)))
            if other in keys:
                self._remove_pair(entry, keys[other])
        elif other in keys:
            # Turn `digest: sha256:...` into `newTag: 1.2` (or back) where it stands. The old
            # value's quotes are not carried over: a tag is often quoted only because it looks
            # like a number, which says nothing about how a digest should be written.
            old_key, old_value = pairs[keys[other]]
            self.splices.append((_start(old_key), _end(old_value), f"{key}: {_scalar(value)}"))
        else:
            self._add_pair(entry, key, _scalar(value))

    def _one_line_scalar(self, node: Node, key: str) -> ScalarNode:
        """The value node of ``key``, refused when its text spans lines (block scalars ``|`` and
        ``>``, folded plain text): their end offsets include line breaks, and splicing them is
        not worth the risk for a value that is one word."""
        if (
            not isinstance(node, ScalarNode)
            or node.style in {"|", ">"}
            or node.start_mark.line != node.end_mark.line
        ):
            raise ConfigError(
                f"{self.path}: images: {key} must be a one-line plain or quoted string"
            )
        return node

    # -- splices -------------------------------------------------------------------------------

    def _remove_pair(self, mapping: MappingNode, index: int) -> None:
        """Remove one pair: its whole line when it has one, else just its text and a separator."""
        pairs = _pairs(mapping)
        key, value = pairs[index]
        line_start = self.text.rfind("\n", 0, _start(key)) + 1
        line_end = self._rest_of_line_end(_end(value))
        if (
            not mapping.flow_style
            and not self.text[line_start : _start(key)].strip()
            and line_end is not None
        ):
            self.splices.append((line_start, line_end, ""))
        elif index + 1 < len(pairs):
            self.splices.append((_start(key), _start(pairs[index + 1][0]), ""))
        else:
            self.splices.append((self._pair_end(*pairs[index - 1]), _end(value), ""))

    def _add_pair(
        self, mapping: MappingNode, key: str, value_text: str, *, after: int | None = None
    ) -> None:
        """Add ``key: value`` after the pair at index ``after`` (default: the last pair), at the
        column of the mapping's keys."""
        pairs = _pairs(mapping)
        last_end = self._pair_end(*pairs[-1 if after is None else after])
        if mapping.flow_style:
            self.splices.append((last_end, last_end, f", {key}: {value_text}"))
            return
        indent = " " * _column(pairs[0][0])
        self._insert_lines(last_end, [f"{indent}{key}: {value_text}"])

    def _append_entry(self, images: SequenceNode, fields: list[tuple[str, str]]) -> None:
        """Append an entry of ``fields`` (``name`` first) to ``images:``, shaped like the entries
        already there."""
        entry = [f"{field}: {_scalar(text)}" for field, text in fields]
        flow_entry = _flow_entry(fields)
        if images.flow_style:
            if images.value:
                at = self._content_end(images.value[-1])
                self.splices.append((at, at, f", {flow_entry}"))
            else:
                closing = self.text.rfind("]", 0, _end(images))
                self.splices.append((closing, closing, flow_entry))
            return
        first = images.value[0]
        dash = _column(images)
        same_line = first.start_mark.line == images.start_mark.line
        item = _column(first) if same_line else dash + 2
        after_dash = " " * max(item - dash - 1, 1)
        if isinstance(first, MappingNode) and first.flow_style:
            lines = [f"{' ' * dash}-{after_dash}{flow_entry}"]
        else:
            lines = [
                f"{' ' * dash}-{after_dash}{entry[0]}",
                *(f"{' ' * item}{line}" for line in entry[1:]),
            ]
        self._insert_lines(self._content_end(images), lines)

    def _fill_empty_images(
        self,
        root: MappingNode,
        images_key: Node,
        images: ScalarNode,
        fields: list[tuple[str, str]],
    ) -> None:
        """Give ``images:`` (written empty, ``~`` or ``null``) its first entry."""
        if images.value:
            self.splices.append((_start(images), _end(images), f"[{_flow_entry(fields)}]"))
            return
        dash = _column(images_key) + self._sequence_offset(root)
        self._insert_lines(_end(images_key), _block_entry(dash, fields))

    def _append_images_key(self, root: MappingNode | None, fields: list[tuple[str, str]]) -> None:
        """Add ``images:`` with one entry at the end of the file (inside a flow mapping: at its end)."""
        if root is not None and root.flow_style:
            at = self._pair_end(*_pairs(root)[-1])
            self.splices.append((at, at, f", {_IMAGES}: [{_flow_entry(fields)}]"))
            return
        column = _column(_pairs(root)[0][0]) if root is not None and root.value else 0
        offset = self._sequence_offset(root) if root is not None else 0
        lines = [f"{' ' * column}{_IMAGES}:", *_block_entry(column + offset, fields)]
        end = len(self.text)
        prefix = "" if not self.text or self.text.endswith("\n") else self.newline
        self.splices.append((end, end, prefix + "".join(line + self.newline for line in lines)))

    def _sequence_offset(self, root: MappingNode | None) -> int:
        """How far this file indents a block list under its key (``resources:\\n  - a`` is 2)."""
        for key, value in _pairs(root) if root is not None else []:
            if isinstance(value, SequenceNode) and not value.flow_style:
                return max(_column(value) - _column(key), 0)
        return 0

    def _insert_lines(self, after: int, lines: list[str]) -> None:
        """Insert whole lines after the line holding offset ``after``."""
        newline_at = self.text.find("\n", after)
        if newline_at < 0:
            at, prefix = len(self.text), self.newline
        else:
            at, prefix = newline_at + 1, ""
        self.splices.append((at, at, prefix + "".join(line + self.newline for line in lines)))

    def _rest_of_line_end(self, offset: int) -> int | None:
        """The start of the next line when only blanks or a comment follow ``offset``, else None."""
        newline_at = self.text.find("\n", offset)
        end = len(self.text) if newline_at < 0 else newline_at + 1
        rest = self.text[offset:end].strip()
        return end if not rest or rest.startswith("#") else None

    def _content_end(self, node: Node) -> int:
        """Where a node's own text ends. A block collection's end mark points at the next token
        (possibly lines further down, past comments), so descend to its last value instead."""
        if isinstance(node, MappingNode) and not node.flow_style and node.value:
            return self._pair_end(*node.value[-1])
        if isinstance(node, SequenceNode) and not node.flow_style and node.value:
            return self._content_end(node.value[-1])
        return _end(node)

    def _pair_end(self, key: Node, value: Node) -> int:
        """Where a ``key: value`` pair's text ends; an empty value (``key:``) ends with its key."""
        if isinstance(value, ScalarNode) and not value.value and _tag(value) == _NULL_TAG:
            return _end(key)
        return self._content_end(value)

    def _apply(self) -> str:
        text = self.text
        for start, end, replacement in sorted(self.splices, reverse=True):
            text = text[:start] + replacement + text[end:]
        return text

    # -- parsing -------------------------------------------------------------------------------

    def _verified(self, after: str, expected: Any) -> str:
        """``after`` when it parses to ``expected`` (or changes nothing).

        Raises:
            ConfigError: it parses to other data, or not at all (an edited value carried a YAML
                anchor that an alias elsewhere uses: ``newTag: &v 1.8.0`` ... ``newTag: *v``).
        """
        if after == self.text:
            return after
        try:
            same = self._load(after) == expected
        except ConfigError:
            raise ConfigError(
                f"{self.path}: cannot change images: in place: the edited value is shared through "
                "a YAML anchor (&name ... *name); write the values out and run again"
            ) from None
        if not same:
            raise ConfigError(
                f"{self.path}: cannot change images: without disturbing the rest of the file; "
                "edit it by hand"
            )
        return after

    def _compose(self) -> Node | None:
        try:
            return YAML(typ="rt").compose(self.text)  # type: ignore[no-any-return]
        except (YAMLError, ValueError) as exc:  # ValueError: a date that is no date (2024-02-30)
            raise ConfigError(yaml_error_line(str(self.path), exc)) from exc

    def _load(self, text: str) -> Any:
        return load_text(text, self.path)


def load_text(text: str, path: Path) -> Any:
    """A kustomization's text as plain data (the safe loader).

    Raises:
        ConfigError: invalid YAML, named by ``path``'s line and column.
    """
    try:
        return YAML(typ="safe", pure=True).load(text)
    except (YAMLError, ValueError) as exc:  # ValueError: a date that is no date (2024-02-30)
        raise ConfigError(yaml_error_line(str(path), exc)) from exc
