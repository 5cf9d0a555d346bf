"""YAML that remembers where every value came from, and errors that say file:line.

Every config in Towerwatch (device profiles, site configs, simulated buildings,
scenarios) is read with :func:`load_yaml`, which returns ordinary ``dict``/``list``
subclasses carrying the file and line of each key and item. A pydantic
``ValidationError`` on such data is turned by :func:`issues_from_validation` into
:class:`SourceIssue` objects that name the file and line of the offending value, so
an installer sees ``site.yaml:14: devices[2].port: ...`` rather than a stack trace.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError


@dataclass(frozen=True, order=True)
class Location:
    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class SourceIssue:
    """One problem in a source file: where, which field, and what is wrong."""

    location: Location
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        return f"{self.location}: {where}{self.message}"


class SourceError(Exception):
    """A source file (or several) could not be accepted; ``issues`` lists every problem."""

    def __init__(self, issues: Sequence[SourceIssue]) -> None:
        self.issues = sorted(issues, key=lambda i: (i.location, i.path))
        super().__init__("\n".join(str(i) for i in self.issues))


class SourceDict(dict[str, Any]):
    """A mapping read from YAML; ``key_lines`` gives the line of each key."""

    file: str
    line: int
    key_lines: dict[str, int]
    key_files: dict[str, str]
    """Files of keys that came from another file (after merging); others are in ``file``."""


class SourceList(list[Any]):
    """A sequence read from YAML; ``item_lines`` gives the line of each item."""

    file: str
    line: int
    item_lines: list[int]


def _make_loader(file: str) -> type[yaml.SafeLoader]:
    class Loader(yaml.SafeLoader):
        pass

    def construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> SourceDict:
        loader.flatten_mapping(node)
        result = SourceDict()
        result.file, result.line, result.key_lines = file, node.start_mark.line + 1, {}
        result.key_files = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if key in result:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            result[key] = loader.construct_object(value_node, deep=True)
            result.key_lines[key] = key_node.start_mark.line + 1
        return result

    def construct_sequence(loader: yaml.SafeLoader, node: yaml.SequenceNode) -> SourceList:
        result = SourceList(loader.construct_object(child, deep=True) for child in node.value)
        result.file, result.line = file, node.start_mark.line + 1
        result.item_lines = [child.start_mark.line + 1 for child in node.value]
        return result

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, construct_sequence)
    return Loader


def load_yaml_text(text: str, file: str) -> Any:
    """Parse YAML text; syntax errors become a :class:`SourceError` with file:line."""
    try:
        return yaml.load(text, Loader=_make_loader(file))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        problem = exc.problem or str(exc)
        raise SourceError([SourceIssue(Location(file, line), "", f"YAML: {problem}")]) from exc


def load_yaml(path: Path | str) -> Any:
    """Read and parse a YAML file; unreadable files raise :class:`SourceError` too."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError([SourceIssue(Location(file, 1), "", f"cannot read: {exc}")]) from exc
    return load_yaml_text(text, file)


def locate(root: Any, loc: Iterable[int | str], default: Location | None = None) -> Location:
    """The location of the deepest node along ``loc`` (pydantic-style path) found in ``root``.

    Path elements that are not keys of the data (pydantic's union tags, for instance)
    are skipped, so an error inside a discriminated union still finds its line.
    """
    node = root
    found = default or _node_location(root) or Location("<unknown>", 1)
    for part in loc:
        if isinstance(node, SourceDict) and isinstance(part, str) and part in node:
            file = node.key_files.get(part, node.file)
            found = Location(file, node.key_lines.get(part, node.line))
            node = node[part]
        elif isinstance(node, SourceList) and isinstance(part, int) and 0 <= part < len(node):
            found = Location(node.file, node.item_lines[part])
            node = node[part]
        else:
            continue
        inner = _node_location(node)
        if inner is not None and inner.file != found.file:
            found = inner
    return found


def _node_location(node: Any) -> Location | None:
    if isinstance(node, SourceDict | SourceList):
        return Location(node.file, node.line)
    return None


def format_path(loc: Iterable[int | str]) -> str:
    """``('devices', 2, 'port')`` -> ``devices[2].port``."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def issues_from_validation(
    error: ValidationError, root: Any, *, prefix: Sequence[int | str] = (), skip: Iterable[str] = ()
) -> list[SourceIssue]:
    """Turn every error of a pydantic validation into a located :class:`SourceIssue`.

    ``skip`` names path parts to leave out of the printed path (e.g. union tags).
    """
    skipped = set(skip)
    issues = []
    for err in error.errors(include_url=False):
        loc = [*prefix, *err["loc"]]
        shown = [p for p in loc if p not in skipped]
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown field (check the spelling)"
        issues.append(SourceIssue(locate(root, loc), format_path(shown), message))
    return issues
