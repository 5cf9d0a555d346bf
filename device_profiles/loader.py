"""Find, read, merge (``extends``) and validate device profiles.

:func:`check_profiles` returns every profile it could build together with every
problem found, each with file:line; :func:`load_profiles` raises
:class:`~towerwatch.sourced_yaml.SourceError` when any problem exists.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from device_profiles.schema import DeviceProfile
from device_profiles.validate import semantic_issues
from towerwatch.sourced_yaml import (
    Location,
    SourceDict,
    SourceError,
    SourceIssue,
    SourceList,
    issues_from_validation,
    load_yaml,
    locate,
)

_ADAPTER: TypeAdapter[DeviceProfile] = TypeAdapter(DeviceProfile)
_MERGE_BY_ID = ("points", "alarms")
_MERGE_BY_KEY = ("enums", "bits", "poll_groups", "limits")


@dataclass(frozen=True)
class LoadedProfile:
    profile: DeviceProfile
    raw: SourceDict
    """The merged YAML, for locating problems found later (e.g. by a site config check)."""

    @property
    def file(self) -> str:
        return self.raw.file


@dataclass
class ProfileSet:
    """Profiles by id, as found in one or more folders."""

    profiles: dict[str, LoadedProfile] = field(default_factory=dict)

    def __contains__(self, profile_id: object) -> bool:
        return profile_id in self.profiles

    def __len__(self) -> int:
        return len(self.profiles)

    def get(self, profile_id: str) -> DeviceProfile:
        try:
            return self.profiles[profile_id].profile
        except KeyError:
            known = ", ".join(sorted(self.profiles)) or "none"
            raise KeyError(f"unknown profile {profile_id!r}; known profiles: {known}") from None

    def ids(self) -> list[str]:
        return sorted(self.profiles)


def builtin_profile_dir() -> Path:
    """The folder of profiles shipped with Towerwatch."""
    return Path(str(resources.files("device_profiles") / "profiles"))


def profile_files(paths: Iterable[Path | str]) -> list[Path]:
    """YAML files named directly or found (recursively) in the folders given."""
    files: list[Path] = []
    for entry in map(Path, paths):
        if entry.is_dir():
            files.extend(sorted(p for p in entry.rglob("*") if p.suffix in (".yaml", ".yml")))
        else:
            files.append(entry)
    return files


def check_profiles(paths: Iterable[Path | str]) -> tuple[ProfileSet, list[SourceIssue]]:
    """Read every profile under ``paths``; return what loaded and every problem found."""
    issues: list[SourceIssue] = []
    raws: dict[str, SourceDict] = {}
    for file in profile_files(paths):
        try:
            raw = load_yaml(file)
        except SourceError as exc:
            issues.extend(exc.issues)
            continue
        if not isinstance(raw, SourceDict) or not isinstance(raw.get("id"), str):
            where = Location(str(file), getattr(raw, "line", 1))
            issues.append(SourceIssue(where, "id", "a profile is a mapping with an 'id'"))
            continue
        if raw["id"] in raws:
            first = raws[raw["id"]]
            issues.append(SourceIssue(locate(raw, ["id"]), "id",
                                      f"profile id {raw['id']!r} is also defined in {first.file}"))
            continue
        raws[raw["id"]] = raw

    result = ProfileSet()
    for profile_id, raw in raws.items():
        try:
            merged = _resolve(raw, raws, [])
        except SourceError as exc:
            issues.extend(exc.issues)
            continue
        try:
            profile = _ADAPTER.validate_python(merged)
        except ValidationError as exc:
            issues.extend(issues_from_validation(exc, merged, skip=("modbus", "bacnet")))
            continue
        found = semantic_issues(profile, merged)
        issues.extend(found)
        if not found:
            result.profiles[profile_id] = LoadedProfile(profile, merged)
    return result, sorted(set(issues), key=lambda i: (i.location, i.path, i.message))


def load_profiles(paths: Iterable[Path | str] | None = None) -> ProfileSet:
    """Load profiles (the shipped ones when ``paths`` is None); raise if any is wrong."""
    profiles, issues = check_profiles([builtin_profile_dir()] if paths is None else paths)
    if issues:
        raise SourceError(issues)
    return profiles


def _resolve(raw: SourceDict, raws: Mapping[str, SourceDict], chain: list[str]) -> SourceDict:
    parent_id = raw.get("extends")
    if parent_id is None:
        return raw
    if parent_id in chain or parent_id == raw["id"]:
        cycle = " -> ".join([*chain, raw["id"], str(parent_id)])
        raise SourceError([SourceIssue(locate(raw, ["extends"]), "extends",
                                       f"extends forms a cycle: {cycle}")])
    if parent_id not in raws:
        raise SourceError([SourceIssue(locate(raw, ["extends"]), "extends",
                                       f"extends unknown profile {parent_id!r}")])
    parent = _resolve(raws[parent_id], raws, [*chain, raw["id"]])
    return _merge(parent, raw)


def _merge(parent: SourceDict, child: SourceDict) -> SourceDict:
    """The child's keys over the parent's; points/alarms by id, enums/bits/groups by key."""
    merged = _copy_dict(child.file, child.line)
    for source in (parent, child):
        for key, value in source.items():
            if key in _MERGE_BY_ID and key in merged and isinstance(value, SourceList):
                merged[key] = _merge_by_id(merged[key], value)
            elif key in _MERGE_BY_KEY and key in merged and isinstance(value, SourceDict):
                both = _copy_dict(value.file, value.line)
                _put_all(both, merged[key])
                _put_all(both, value)
                merged[key] = both
            else:
                merged[key] = value
            merged.key_lines[key] = source.key_lines.get(key, source.line)
            merged.key_files[key] = source.key_files.get(key, source.file)
    return merged


def _merge_by_id(base: Any, override: SourceList) -> SourceList:
    result = SourceList()
    result.file, result.line, result.item_lines = override.file, override.line, []
    index: dict[Any, int] = {}
    if isinstance(base, SourceList):
        for item, line in zip(base, base.item_lines, strict=True):
            if isinstance(item, Mapping) and "id" in item:
                index[item["id"]] = len(result)
            result.append(item)
            result.item_lines.append(line)
    for item, line in zip(override, override.item_lines, strict=True):
        key = item.get("id") if isinstance(item, Mapping) else None
        if key is not None and key in index:
            result[index[key]] = item
            result.item_lines[index[key]] = line
        else:
            result.append(item)
            result.item_lines.append(line)
    return result


def _copy_dict(file: str, line: int) -> SourceDict:
    result = SourceDict()
    result.file, result.line, result.key_lines, result.key_files = file, line, {}, {}
    return result


def _put_all(target: SourceDict, source: Any) -> None:
    if isinstance(source, SourceDict):
        for key, value in source.items():
            target[key] = value
            target.key_lines[key] = source.key_lines.get(key, source.line)
            target.key_files[key] = source.key_files.get(key, source.file)
