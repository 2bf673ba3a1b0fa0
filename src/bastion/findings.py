"""The one noun every Bastion check produces: a :class:`Finding`.

Scanners, data checks, assessments and gateway detectors all report findings; the catalog stores
them against the asset version they concern, and gates and reports read them back::

    >>> from bastion.findings import Finding, Severity, Principle, Location
    >>> f = Finding(rule="pickle.global.unsafe", severity=Severity.CRITICAL,
    ...             title="os.system is imported", principle=Principle.P2_2,
    ...             location=Location(path="model.pt", member="archive/data.pkl", offset=42))
    >>> Finding.from_dict(f.to_dict()) == f
    True
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Self

from bastion.errors import UsageError

__all__ = ["Finding", "Location", "Principle", "Severity", "at_or_above", "worst"]


class Severity(enum.StrEnum):
    """How bad a finding is. Ordered: ``INFO < LOW < MEDIUM < HIGH < CRITICAL``."""

    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """0 for info up to 4 for critical."""
        return _SEVERITY_RANK[self]

    # str already defines every comparison, so each one is overridden here: comparing by
    # text would make "low" > "critical".
    def __lt__(self, other: object) -> bool:
        return self.rank < _rank(other)

    def __le__(self, other: object) -> bool:
        return self.rank <= _rank(other)

    def __gt__(self, other: object) -> bool:
        return self.rank > _rank(other)

    def __ge__(self, other: object) -> bool:
        return self.rank >= _rank(other)

    def __hash__(self) -> int:
        return str.__hash__(self)

    @classmethod
    def parse(cls, text: str) -> Severity:
        """Read a severity from user input, with an error that lists the choices."""
        try:
            return cls(text.strip().lower())
        except ValueError:
            choices = ", ".join(s.value for s in cls)
            raise UsageError(f"unknown severity {text!r}", hint=f"use one of: {choices}") from None


_SEVERITY_RANK: dict[Severity, int] = {s: i for i, s in enumerate(Severity)}


def _rank(other: object) -> int:
    if not isinstance(other, Severity):
        raise TypeError(f"cannot compare a Severity with {type(other).__name__}")
    return _SEVERITY_RANK[other]


class Principle(enum.Enum):
    """The NCSC principles for the security of machine learning, numbered as in the guidance.

    Titles are those of the NCSC quick-reference table (``shared/reference``).
    """

    P1_1 = ("1.1", "Be aware of ML security vulnerabilities and model failure modes")
    P1_2 = ("1.2", "Consider failure modes")
    P1_3 = ("1.3", "Understand what attackers can do with information about your system")
    P2_1 = ("2.1", "Consider the vulnerability of your system to known ML threats")
    P2_2 = ("2.2", "Consider digital and physical supply chains risk")
    P2_3 = ("2.3", "Consider digital and physical supply chains risk (development environment)")
    P2_4 = ("2.4", "Secure your infrastructure")
    P2_5 = ("2.5", "Document the creation, operation and lifecycle management of assets")
    P2_6 = ("2.6", "Ensure your model capacity is proportionate to your requirements")
    P3_1 = ("3.1", "Limit access to your model")
    P3_2 = ("3.2", "Monitor and log your users' inference requests and queries")
    P3_3 = (
        "3.3",
        "Understand the trade-off between security during operation and the output a model "
        "provides to users",
    )
    P4_1 = ("4.1", "Understand what continual learning is and the potential risks of using it")
    P4_2 = ("4.2", "Track and test continual learning models")
    P5_1 = ("5.1", "Decommission your assets appropriately")
    P5_2 = ("5.2", "Collate lessons learned and share")

    @property
    def number(self) -> str:
        """The principle's number as written in the guidance, e.g. ``"2.2"``."""
        return str(self.value[0])

    @property
    def title(self) -> str:
        """The principle's title from the NCSC quick-reference table."""
        return str(self.value[1])

    @classmethod
    def from_number(cls, number: str) -> Principle:
        """Look a principle up by its number (``"2.2"``)."""
        for principle in cls:
            if principle.number == number:
                return principle
        known = ", ".join(p.number for p in cls)
        raise UsageError(f"unknown NCSC principle {number!r}", hint=f"use one of: {known}")

    def __str__(self) -> str:
        return f"{self.number} {self.title}"


@dataclass(frozen=True, slots=True)
class Location:
    """Where a finding is: a file, optionally a member inside an archive, and a byte offset."""

    path: str
    """The file (or asset reference such as ``NAME@VER``) the finding concerns."""
    member: str | None = None
    """The member inside an archive or container, nested members joined by ``!``."""
    offset: int | None = None
    """Byte offset inside the member (or the file when there is no member)."""

    def __str__(self) -> str:
        text = self.path
        if self.member:
            text += f" → {self.member}"
        if self.offset is not None:
            text += f" @ {self.offset}"
        return text

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form."""
        return {"path": self.path, "member": self.member, "offset": self.offset}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Inverse of :meth:`to_dict`."""
        return cls(path=str(data["path"]), member=data.get("member"), offset=data.get("offset"))


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing a check found, tied to the NCSC principle it serves."""

    rule: str
    """Stable identifier of the check, dotted (``pickle.global.unsafe``); SARIF's ruleId."""
    severity: Severity
    """How bad it is."""
    title: str
    """One line for people."""
    principle: Principle
    """The NCSC principle this evidence bears on."""
    detail: str = ""
    """Why it matters, in a sentence or two."""
    location: Location | None = None
    """Where it was found, when it is about a place."""
    techniques: tuple[str, ...] = ()
    """MITRE ATLAS technique ids (``AML.T0010``)."""
    remediation: str = ""
    """What to do about it."""
    evidence: Mapping[str, Any] = field(default_factory=dict)
    """Machine-readable facts behind the finding (the exact global, a score, a count)."""

    def __post_init__(self) -> None:
        if not self.rule or not self.title:
            raise UsageError("a finding needs a rule id and a title")
        if not isinstance(self.severity, Severity):
            object.__setattr__(self, "severity", Severity.parse(str(self.severity)))
        object.__setattr__(self, "techniques", tuple(self.techniques))
        object.__setattr__(self, "evidence", dict(self.evidence))

    def __hash__(self) -> int:
        return hash((self.rule, self.severity, self.title, self.location))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form; stable keys, documented in ``docs/findings.md``."""
        return {
            "rule": self.rule,
            "severity": self.severity.value,
            "title": self.title,
            "detail": self.detail,
            "principle": self.principle.number,
            "location": self.location.to_dict() if self.location else None,
            "techniques": list(self.techniques),
            "remediation": self.remediation,
            "evidence": dict(self.evidence),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Inverse of :meth:`to_dict`; raises :class:`UsageError` naming a missing key."""
        try:
            location = data.get("location")
            return cls(
                rule=str(data["rule"]),
                severity=Severity.parse(str(data["severity"])),
                title=str(data["title"]),
                detail=str(data.get("detail", "")),
                principle=Principle.from_number(str(data["principle"])),
                location=Location.from_dict(location) if location else None,
                techniques=tuple(data.get("techniques", ())),
                remediation=str(data.get("remediation", "")),
                evidence=dict(data.get("evidence", {})),
            )
        except KeyError as exc:
            raise UsageError(f"finding is missing the key {exc.args[0]!r}") from None


def worst(findings: Iterable[Finding]) -> Severity | None:
    """The highest severity among ``findings``, or ``None`` when there are none."""
    return max((f.severity for f in findings), default=None)


def at_or_above(findings: Iterable[Finding], threshold: Severity) -> list[Finding]:
    """The findings whose severity is ``threshold`` or worse: what ``--fail-on`` counts."""
    return [f for f in findings if f.severity >= threshold]
