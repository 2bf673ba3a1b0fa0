"""Reading OSV records by the schema (ossf/osv-schema, "Evaluation"): which versions they affect,
what fixes them, how severe they are.

Version ordering per range type: ``ECOSYSTEM`` ranges of PyPI packages use PEP 440 (``packaging``),
``SEMVER`` ranges use Semantic Versioning 2.0 precedence, ``GIT`` ranges name commits and are left
to the record's explicit ``versions`` list (which the PyPA database always fills in).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, Final

from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import InvalidVersion, Version

from bastion.deps._cvss import base_score
from bastion.deps.interface import DepsError, Record
from bastion.findings import Severity

__all__ = [
    "ECOSYSTEM",
    "affects",
    "aliases",
    "fixed_versions",
    "last_affected",
    "parse_record",
    "parse_time",
    "pypi_names",
    "severity",
    "summary",
]

ECOSYSTEM: Final = "PyPI"
_GHSA_LABELS: Final = {
    "LOW": Severity.LOW,
    "MODERATE": Severity.MEDIUM,
    "MEDIUM": Severity.MEDIUM,
    "HIGH": Severity.HIGH,
    "CRITICAL": Severity.CRITICAL,
}
_SEMVER: Final = re.compile(
    r"^v?(0|[1-9]\d*)(?:\.(0|[1-9]\d*))?(?:\.(0|[1-9]\d*))?"
    r"(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$"
)
_ZERO: Final = (0,)  # sorts before every version key, which start with 1

_Key = tuple[Any, ...]


def parse_time(text: object, what: str) -> datetime:
    """An RFC 3339 timestamp as an aware datetime, or a :class:`DepsError` naming ``what``."""
    if not isinstance(text, str):
        raise DepsError(f"{what} is not a timestamp: {text!r}")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise DepsError(f"{what} is not an RFC 3339 timestamp: {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _dicts(value: object, what: str) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise DepsError(f"{what} must be a list of mappings")
    return value


def parse_record(data: object, origin: str) -> Record:
    """Check the structure the audit relies on and wrap the record; ``origin`` names it in errors.

    Checks: 1. a mapping with an ``id`` and an RFC 3339 ``modified``; 2. ``severity`` lists of
    mappings; 3. each affected entry names its package; 4. ranges have a type and events whose
    values are strings; ``versions`` is a list. The matcher then never meets a wrong type.
    """
    # 1. Identity and age.
    if not isinstance(data, dict):
        raise DepsError(f"{origin}: an OSV record must be a mapping, not {type(data).__name__}")
    ident = data.get("id")
    if not isinstance(ident, str) or not ident:
        raise DepsError(f"{origin}: the OSV record has no 'id'")
    where = f"{origin}: {ident}"
    modified = parse_time(data.get("modified"), f"{where}.modified")
    # 2. Severity, at the top and per entry.
    _dicts(data.get("severity", []), f"{where}.severity")
    for entry in _dicts(data.get("affected", []), f"{where}.affected"):
        # 3. The package.
        package = entry.get("package")
        if not isinstance(package, dict) or not isinstance(package.get("name"), str):
            raise DepsError(f"{where} has an affected entry without a package name")
        _dicts(entry.get("severity", []), f"{where}.affected[].severity")
        # 4. Ranges, events and versions.
        for rng in _dicts(entry.get("ranges", []), f"{where}.affected[].ranges"):
            events = _dicts(rng.get("events", []), f"{where}.affected[].ranges[].events")
            if not isinstance(rng.get("type"), str) or not all(
                isinstance(v, str) for e in events for v in e.values()
            ):
                raise DepsError(f"{where}: a range needs a type and string event versions")
        if not isinstance(entry.get("versions", []), list):
            raise DepsError(f"{where}.affected[].versions must be a list")
    return Record(id=ident, modified=modified, data=data)


def pypi_names(record: Record) -> set[NormalizedName]:
    """The normalised PyPI package names the record concerns."""
    return {canonicalize_name(entry["package"]["name"]) for entry in _pypi_entries(record, None)}


def _pypi_entries(record: Record, key: NormalizedName | None) -> Iterator[Mapping[str, Any]]:
    for entry in record.data.get("affected", []):
        package = entry["package"]
        if package.get("ecosystem") != ECOSYSTEM:
            continue
        if key is None or canonicalize_name(package["name"]) == key:
            yield entry


def _pep440_key(text: str) -> _Key:
    return (1, Version(text))


def _semver_key(text: str) -> _Key:
    match = _SEMVER.match(text.strip())
    if match is None:
        raise InvalidVersion(f"not a semantic version: {text!r}")
    major, minor, patch, pre = match.groups()
    release = (int(major), int(minor or 0), int(patch or 0))
    if pre is None:
        return (1, release, 1, ())
    # SemVer 2.0 §11: numeric identifiers sort numerically and before alphanumeric ones.
    idents = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split("."))
    return (1, release, 0, idents)


_ORDERINGS: Final[dict[str, Callable[[str], _Key]]] = {
    "ECOSYSTEM": _pep440_key,
    "SEMVER": _semver_key,
}


def _event_key(order: Callable[[str], _Key], value: str) -> _Key:
    return _ZERO if value == "0" else order(value)


def _in_range(version: str, events: list[Mapping[str, Any]], order: Callable[[str], _Key]) -> bool:
    """The schema's ``BeforeLimits`` and ``IncludedInRanges`` for one range."""
    v = order(version)
    limits = [_event_key(order, e["limit"]) for e in events if "limit" in e]
    if limits and not any(v < limit for limit in limits):
        return False
    keyed = []
    for event in events:
        kind = next((k for k in ("introduced", "fixed", "last_affected") if k in event), None)
        if kind is not None:
            keyed.append((_event_key(order, event[kind]), kind))
    vulnerable = False
    for at, kind in sorted(keyed, key=lambda item: item[0]):
        if kind == "introduced" and v >= at:
            vulnerable = True
        elif (kind == "fixed" and v >= at) or (kind == "last_affected" and v > at):
            vulnerable = False
    return vulnerable


def _listed(version: str, versions: list[Any]) -> bool:
    """The schema's ``IncludedInVersions``: PEP 440 equality (``1.0 == 1.0.0``), else text."""
    target = Version(version)
    for listed in versions:
        if not isinstance(listed, str):
            continue
        try:
            if Version(listed) == target:
                return True
        except InvalidVersion:
            if listed == version:
                return True
    return False


def affects(record: Record, key: NormalizedName, version: str) -> bool:
    """Whether ``record`` affects package ``key`` at ``version`` (a valid PEP 440 version).

    A range whose events cannot be ordered (a malformed version in the record) counts as
    affecting: an advisory Bastion cannot evaluate is reported, not dropped (fail closed).
    """
    for entry in _pypi_entries(record, key):
        if _listed(version, entry.get("versions", [])):
            return True
        for rng in entry.get("ranges", []):
            order = _ORDERINGS.get(rng["type"])
            if order is None:
                continue  # GIT ranges name commits; the versions list covers them
            events = rng.get("events", [])
            try:
                if _in_range(version, events, order):
                    return True
            except InvalidVersion:
                return True
    return False


def _event_values(record: Record, key: NormalizedName, kind: str) -> list[str]:
    values: set[str] = set()
    for entry in _pypi_entries(record, key):
        for rng in entry.get("ranges", []):
            if rng["type"] in _ORDERINGS:
                values.update(e[kind] for e in rng.get("events", []) if kind in e)
    return sorted(values, key=_sort_key)


def _sort_key(text: str) -> tuple[int, Any]:
    try:
        return (0, Version(text))
    except InvalidVersion:
        return (1, text)


def fixed_versions(record: Record, key: NormalizedName) -> list[str]:
    """Every ``fixed`` version the record names for the package, in PEP 440 order."""
    return _event_values(record, key, "fixed")


def last_affected(record: Record, key: NormalizedName) -> list[str]:
    """Every ``last_affected`` version the record names for the package."""
    return _event_values(record, key, "last_affected")


def aliases(record: Record) -> list[str]:
    """Other ids for the same vulnerability (CVE, GHSA), as listed."""
    found = record.data.get("aliases", [])
    return [a for a in found if isinstance(a, str)] if isinstance(found, list) else []


def summary(record: Record) -> str:
    """One line for people: the summary, else the first line of the details."""
    for field in ("summary", "details"):
        text = record.data.get(field)
        if isinstance(text, str) and text.strip():
            line = text.strip().splitlines()[0]
            return line if len(line) <= 200 else line[:199] + "…"
    return "no description"


def severity(record: Record, key: NormalizedName) -> tuple[Severity, str, float | None]:
    """The finding severity, what it came from, and the CVSS base score when there is one.

    Order: the highest CVSS v3 base score (record or affected entry), then a GitHub-style label in
    ``database_specific.severity``; a record with neither is **high**, because an unscored known
    vulnerability must still fail the default ``--fail-on high`` (fail closed).
    """
    vectors = list(record.data.get("severity", []))
    for entry in _pypi_entries(record, key):
        vectors += entry.get("severity", [])
    scores = [
        score
        for s in vectors
        if s.get("type") == "CVSS_V3" and (score := base_score(str(s.get("score", "")))) is not None
    ]
    if scores:
        best = max(scores)
        return _rating(best), "cvss_v3", best
    specific = record.data.get("database_specific")
    label = specific.get("severity") if isinstance(specific, dict) else None
    if isinstance(label, str) and label.upper() in _GHSA_LABELS:
        return _GHSA_LABELS[label.upper()], "database_specific", None
    return Severity.HIGH, "unscored", None


def _rating(score: float) -> Severity:
    """CVSS v3.1 qualitative rating (specification, table 14)."""
    if score >= 9.0:
        return Severity.CRITICAL
    if score >= 7.0:
        return Severity.HIGH
    if score >= 4.0:
        return Severity.MEDIUM
    if score > 0.0:
        return Severity.LOW
    return Severity.INFO
