"""Findings as JUnit XML, the test-report format every CI system reads.

One ``<testsuite>`` per command run, one ``<testcase>`` per finding and one per thing checked
that no finding concerns::

    >>> from bastion.findings import Finding, Location, Principle, Severity
    >>> bad = Finding(rule="pickle.global.dangerous", severity=Severity.CRITICAL,
    ...               title="posix.system is imported", principle=Principle.P2_2,
    ...               location=Location("model.pkl"))
    >>> xml = junit_xml([bad], tool="scan", fail_on=Severity.HIGH,
    ...                 checked=[Checked(Location("model.pkl")), Checked(Location("ok.onnx"))])
    >>> '<testsuite name="bastion scan" tests="2" failures="1" errors="0"' in xml
    True

How a finding becomes a testcase (``classname`` is its rule, ``name`` where it is, or the
requirement for an assessment's findings):

1. at or above ``--fail-on``: a ``<failure>``, or an ``<error>`` when the finding says the
   check could not read or finish its input (an unreadable or truncated file, a limit reached,
   a test that did not run, a package without a version: :func:`could_not_check`);
2. below ``--fail-on``: a passing testcase with the finding in ``<system-out>``, except that a
   check that could not read or finish is ``<skipped>``, never a pass (fail closed, DESIGN
   invariant 2);
3. something checked with no finding about it: a passing testcase.

So ``failures + errors > 0`` exactly when the command exits 1. Text from the scanned input
(a pickle's global names, a package's name) may hold characters XML 1.0 cannot carry; they are
written as ``\\xNN`` escapes, so a hostile file cannot make the report unreadable.
"""

from __future__ import annotations

import enum
import json
import re
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from bastion import __version__
from bastion.findings import Finding, Location, Severity

__all__ = ["Checked", "Outcome", "could_not_check", "junit_document", "junit_xml", "outcome"]

UNCHECKED_WORDS: Final = frozenset({
    "corrupt", "encrypted", "error", "incomplete", "invalid", "limit", "malformed", "not_run",
    "truncated", "unparseable", "unreadable", "unresolved", "unscanned", "unsupported",
})
"""Words of a rule id (``archive.zip.truncated``, ``scan.limit.time``, ``assess.test.not_run``,
``deps.unresolved``) that mean the check could not read, understand or finish its input."""
UNCHECKED_RULES: Final = frozenset({"scan.format.unknown"})
"""Whole rule ids with the same meaning: content no scanner understood."""

_NOT_XML: Final = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
"""Characters XML 1.0 forbids (control characters, lone surrogates, U+FFFE, U+FFFF)."""


class Outcome(enum.StrEnum):
    """What a testcase reports."""

    PASSED = "passed"
    FAILED = "failure"
    ERROR = "error"
    SKIPPED = "skipped"


@dataclass(frozen=True, slots=True)
class Checked:
    """Something a command checked (a file, a package): a passing testcase unless a finding
    concerns it."""

    location: Location
    """What was checked. A finding concerns it when the finding has the same path and, if this
    names a member, the same member or one inside it (``!``) or a version of it (``==``)."""
    name: str = ""
    """The testcase's name; ``str(location)`` when empty."""

    def concerned_by(self, finding: Finding) -> bool:
        """Whether ``finding`` is about this (and so replaces its passing testcase)."""
        where = finding.location
        if where is None or where.path != self.location.path:
            return False
        mine = self.location.member
        if mine is None:
            return True
        theirs = where.member or ""
        return theirs == mine or theirs.startswith((mine + "!", mine + "=="))


def could_not_check(finding: Finding) -> bool:
    """Whether ``finding`` says its check could not read or finish (see :data:`UNCHECKED_WORDS`)
    rather than that it found something: such a check is never reported as passed."""
    return finding.rule in UNCHECKED_RULES or not UNCHECKED_WORDS.isdisjoint(
        finding.rule.split("."))


def outcome(finding: Finding, fail_on: Severity) -> Outcome:
    """The testcase result for ``finding`` under ``--fail-on fail_on`` (steps 1 and 2 above)."""
    unchecked = could_not_check(finding)
    if finding.severity >= fail_on:
        return Outcome.ERROR if unchecked else Outcome.FAILED
    return Outcome.SKIPPED if unchecked else Outcome.PASSED


def junit_document(
    findings: Iterable[Finding],
    *,
    tool: str,
    fail_on: Severity,
    checked: Iterable[Checked] = (),
    elapsed_s: float | None = None,
    timestamp: datetime | None = None,
) -> ET.Element:
    """The ``<testsuites>`` element for one run of ``bastion {tool}``.

    Args:
        findings: everything the run found.
        tool: the command (``scan``, ``deps audit``, ``assess run``).
        fail_on: the command's ``--fail-on``; it decides failure against pass.
        checked: what the run checked; each one no finding concerns is a passing testcase.
        elapsed_s: the run's wall-clock time (the suite's ``time``).
        timestamp: when it ran (default: now).
    """
    items = sorted(findings, key=lambda f: (-f.severity.rank, f.rule, str(f.location or "")))
    clean_class = "bastion." + tool.replace(" ", ".")
    cases: list[ET.Element] = []
    names: Counter[tuple[str, str]] = Counter()

    def case(classname: str, name: str) -> ET.Element:
        # reporters key history on (classname, name): keep each one distinct
        names[classname, name] += 1
        if names[classname, name] > 1:
            name = f"{name} #{names[classname, name]}"
        element = ET.Element("testcase", classname=_xml(classname), name=_xml(name),
                             time="0")
        cases.append(element)
        return element

    results: Counter[Outcome] = Counter()
    for finding in items:
        result = outcome(finding, fail_on)
        results[result] += 1
        element = case(finding.rule, _case_name(finding, tool))
        text = _describe(finding, fail_on)
        if result is Outcome.PASSED:
            ET.SubElement(element, "system-out").text = text
        else:
            child = ET.SubElement(element, result.value, message=_xml(finding.title))
            if result is not Outcome.SKIPPED:
                child.set("type", _xml(finding.rule))
            child.text = text
    by_path: dict[str, list[Finding]] = {}
    for finding in items:
        if finding.location is not None:
            by_path.setdefault(finding.location.path, []).append(finding)
    for thing in checked:
        if not any(thing.concerned_by(f) for f in by_path.get(thing.location.path, ())):
            results[Outcome.PASSED] += 1
            element = case(clean_class, thing.name or str(thing.location))
            ET.SubElement(element, "system-out").text = _xml(f"{thing.location}: no findings")
    if not cases:  # a report with no testcase reads as "no tests ran" to some reporters
        results[Outcome.PASSED] += 1
        element = case(clean_class, "no findings")
        ET.SubElement(element, "system-out").text = f"bastion {tool}: no findings"

    counts = {
        "tests": str(len(cases)),
        "failures": str(results[Outcome.FAILED]),
        "errors": str(results[Outcome.ERROR]),
        "skipped": str(results[Outcome.SKIPPED]),
        "time": f"{elapsed_s or 0.0:.3f}",
    }
    when = (timestamp or datetime.now(UTC)).astimezone(UTC).replace(tzinfo=None)
    root = ET.Element("testsuites", {"name": "bastion", **counts})
    suite = ET.SubElement(root, "testsuite", {"name": f"bastion {tool}", **counts,
                                              "timestamp": when.isoformat(timespec="seconds")})
    properties = ET.SubElement(suite, "properties")
    for key, value in (("bastion.version", __version__), ("bastion.tool", tool),
                       ("bastion.fail_on", fail_on.value)):
        ET.SubElement(properties, "property", name=key, value=value)
    suite.extend(cases)
    return root


def junit_xml(
    findings: Iterable[Finding],
    *,
    tool: str,
    fail_on: Severity,
    checked: Iterable[Checked] = (),
    elapsed_s: float | None = None,
    timestamp: datetime | None = None,
) -> str:
    """:func:`junit_document` as an indented UTF-8 XML document, with its declaration."""
    root = junit_document(findings, tool=tool, fail_on=fail_on, checked=checked,
                          elapsed_s=elapsed_s, timestamp=timestamp)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode")


def _case_name(finding: Finding, tool: str) -> str:
    """Where the finding is; an assessment's requirement names its own testcase (the model's
    path changes between runs, the requirement does not)."""
    requirement = finding.evidence.get("requirement")
    if isinstance(requirement, str) and requirement:
        return requirement
    return str(finding.location) if finding.location is not None else f"bastion {tool}"


def _describe(finding: Finding, fail_on: Severity) -> str:
    """The testcase's text: everything a reader needs without the JSON report."""
    relation = "at or above" if finding.severity >= fail_on else "below"
    lines = [
        finding.title,
        f"severity: {finding.severity.value} ({relation} --fail-on {fail_on.value})",
        f"rule: {finding.rule}",
    ]
    if finding.location is not None:
        lines.append(f"location: {finding.location}")
    if finding.detail:
        lines.append(f"detail: {finding.detail}")
    if finding.remediation:
        lines.append(f"remediation: {finding.remediation}")
    lines.append(f"NCSC principle: {finding.principle}")
    if finding.techniques:
        lines.append(f"MITRE ATLAS: {', '.join(finding.techniques)}")
    if finding.evidence:
        lines.append("evidence: " + json.dumps(dict(finding.evidence), sort_keys=True,
                                               default=str, ensure_ascii=False))
    return _xml("\n".join(lines))


def _xml(text: str) -> str:
    """``text`` with every character XML 1.0 cannot hold written as an escape."""
    return _NOT_XML.sub(lambda m: _escape(m.group()), text)


def _escape(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"

