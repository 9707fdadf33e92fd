"""YAML reading for config files: YAML 1.2 (ruamel.yaml), the line of every key, duplicate keys refused.

YAML 1.1 (PyYAML) reads ``no`` as false, ``010`` as 8 and ``10:30`` as 630. Octy's CLI (and
most YAML today) reads 1.2, where those stay text or decimal numbers, so a property value
means what it looks like. Dates stay text too; the code that compares them knows when a
date is meant.

``ConfigReader`` turns a file into data plus ``ConfigProblem``s that carry the line
of the key at fault, so every config module reports problems the same way.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails
from ruamel.yaml import YAML
from ruamel.yaml.constructor import DuplicateKeyError, SafeConstructor
from ruamel.yaml.error import YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from segment_pipeline.config.errors import ConfigProblem

Path = tuple[str | int, ...]


class _DatesAsText(SafeConstructor):
    """YAML 1.2's safe constructor, but a date-looking scalar stays the text it is."""


_DatesAsText.add_constructor("tag:yaml.org,2002:timestamp", SafeConstructor.construct_yaml_str)


def _loader(*, pure: bool = False) -> YAML:
    # Not pure: libyaml through ruamel.yaml.clib parses thousands of segments in a second, where
    # the pure-Python parser takes several.
    yaml = YAML(typ="safe", pure=pure)
    yaml.Constructor = _DatesAsText
    return yaml


def _compose(text: str) -> tuple[YAML, Node | None]:
    yaml = _loader()
    try:
        return yaml, yaml.compose(text)
    except YAMLError:
        # libyaml's scanner predates YAML 1.2 on a few plain scalars (``at: 10:30`` inside
        # ``{...}``); the pure-Python parser, which follows 1.2, has the last word.
        yaml = _loader(pure=True)
        return yaml, yaml.compose(text)


@dataclass
class YamlDocument:
    """The parsed data, the line of each key/item by its path, and duplicate keys found."""

    data: Any
    lines: dict[Path, int] = field(default_factory=dict)
    duplicates: list[tuple[Path, int]] = field(default_factory=list)

    def line_of(self, path: Path) -> int | None:
        """Line of the deepest part of ``path`` that exists in the file."""
        for end in range(len(path), -1, -1):
            if path[:end] in self.lines:
                return self.lines[path[:end]]
        return None


def _walk(node: Node, path: Path, lines: dict[Path, int], keys_at: dict[tuple[int, int], Path]) -> None:
    """The line of every key and item by its path, and every key's path by its position."""
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, ScalarNode) else str(key_node.value)
            keys_at[(key_node.start_mark.line, key_node.start_mark.column)] = (*path, key)
            lines.setdefault((*path, key), key_node.start_mark.line + 1)
            _walk(value_node, (*path, key), lines, keys_at)
    elif isinstance(node, SequenceNode):
        for index, item in enumerate(node.value):
            _walk(item, (*path, index), lines, keys_at)


def parse_yaml(text: str) -> YamlDocument:
    """Parse one YAML document; raises ruamel's ``YAMLError`` (with a mark) when it is not YAML.

    A key given twice in one mapping (ruamel.yaml refuses it) is reported, not raised: the
    document then has no data, and ``duplicates`` holds the repeated key's path and line."""
    yaml, node = _compose(text)
    doc = YamlDocument(None)
    if node is None:
        return doc
    keys_at: dict[tuple[int, int], Path] = {}
    _walk(node, (), doc.lines, keys_at)
    try:
        doc.data = yaml.constructor.construct_document(node)
    except DuplicateKeyError as exc:
        mark = exc.problem_mark
        if mark is None:
            raise
        doc.duplicates.append((keys_at.get((mark.line, mark.column), ()), mark.line + 1))
    return doc


class ConfigReader:
    """One config file being checked: parsed data plus every problem found so far, with lines."""

    def __init__(self, text: str, file: str):
        self.file = file
        self.problems: list[ConfigProblem] = []
        try:
            self.doc = parse_yaml(text)
        except YAMLError as exc:
            mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
            self.doc = YamlDocument(None)
            self.add_at(mark.line + 1 if mark else None, None, "YAML syntax", f"{exc}".replace("\n", " "))
            return
        for path, line in self.doc.duplicates:
            self.add_at(
                line,
                None,
                "unique keys",
                f"key '{_dotted(path)}' is given twice in one mapping; keep the one you mean",
            )

    def add_at(self, line: int | None, item: str | None, rule: str, message: str) -> None:
        self.problems.append(ConfigProblem(self.file, item, rule, message, line))

    def add(self, path: Path, item: str | None, rule: str, message: str) -> None:
        self.add_at(self.doc.line_of(path), item, rule, message)

    def known_keys(self, mapping: dict, allowed: list[str], path: Path, item: str | None) -> dict:
        """``mapping`` without unknown keys, each reported with the closest valid key."""
        kept = {}
        for key, value in mapping.items():
            if key in allowed:
                kept[key] = value
                continue
            close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
            hint = f"did you mean '{close[0]}'?" if close else f"valid keys: {', '.join(allowed)}"
            self.add((*path, key), item, "known keys", f"unknown key '{key}'; {hint}")
        return kept

    def add_validation_error(
        self, error: ValidationError, path: Path, item: str | None, rule_for: dict[str, str] | None = None
    ) -> None:
        """Report each pydantic error as a problem; ``rule_for`` maps a key to the rule its values break."""
        for err in error.errors():
            loc = tuple(err["loc"])
            key = next((part for part in reversed(loc) if isinstance(part, str)), "")
            rule = (rule_for or {}).get(key, "format")
            self.add(path + loc, item, rule, f"{_dotted(loc) or 'item'}: {_describe(err)}")

    def entries(
        self,
        items: list,
        base: Path,
        *,
        label: str,
        name_key: str,
        keys: list[str],
        nested: tuple[str, list[str]],
        rule_names: str,
        duplicate_fix: str,
    ) -> Iterator[tuple[Path, str, dict]]:
        """Each definition of a list as ``(path, item label, mapping)``: non-mappings, unknown
        keys (also in the ``nested`` list of mappings) and repeated names are reported here."""
        seen: set[str] = set()
        list_key, list_keys = nested
        for index, raw in enumerate(items):
            path = (*base, index)
            name = raw.get(name_key) if isinstance(raw, dict) else None
            item = f"{label} '{name}'" if isinstance(name, str) else f"{label} #{index + 1}"
            if not isinstance(raw, dict):
                self.add(path, item, "format", f"each {label} must be a mapping of keys")
                continue
            raw = self.known_keys(raw, keys, path, item)
            if isinstance(raw.get(list_key), list):
                raw[list_key] = [
                    self.known_keys(e, list_keys, (*path, list_key, j), item) if isinstance(e, dict) else e
                    for j, e in enumerate(raw[list_key])
                ]
            if isinstance(name, str):
                if name in seen:
                    self.add(
                        (*path, name_key),
                        item,
                        rule_names,
                        f"the name is used by another {label} too. Fix: {duplicate_fix}",
                    )
                seen.add(name)
            yield path, item, raw

    def document(self, kind: str, list_key: str) -> tuple[list, Path]:
        """The list of definitions under ``list_key`` (empty for an empty file), checking ``kind``."""
        data = self.doc.data
        if data is None:
            return [], ()
        if not isinstance(data, dict):
            self.add((), None, "format", f"the file must be a mapping with 'kind: {kind}' and '{list_key}'")
            return [], ()
        data = self.known_keys(data, ["kind", list_key], (), None)
        if data.get("kind", kind) != kind:
            self.add(("kind",), None, "format", f"kind is {data['kind']!r}; this file needs 'kind: {kind}'")
        items = data.get(list_key)
        if items is None:
            return [], (list_key,)
        if not isinstance(items, list):
            self.add((list_key,), None, "format", f"{list_key} must be a list")
            return [], (list_key,)
        return items, (list_key,)


def _dotted(loc: tuple) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


_PLAIN_MESSAGES = {
    "missing": "is required",
    "int_type": "must be a whole number",
    "string_type": "must be text (quote it if it looks like a number)",
    "bool_type": "must be true or false",
    "dict_type": "must be a mapping of key: value",
    "list_type": "must be a list",
    "string_too_short": "must not be empty",
    "too_short": "must not be empty",
}


def _describe(err: ErrorDetails) -> str:
    kind = err["type"]
    if kind in _PLAIN_MESSAGES:
        text = _PLAIN_MESSAGES[kind]
    else:
        text = err["msg"].removeprefix("Value error, ").replace("Input should be", "should be")
    if kind != "missing":
        text += f", found {err['input']!r}"
    return text
