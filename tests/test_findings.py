from __future__ import annotations

import json
import re

import pytest
from tests.conftest import shared_file

from bastion.errors import UsageError
from bastion.findings import Finding, Location, Principle, Severity, at_or_above, worst

REFERENCE = "reference/ncsc-principles-for-the-security-of-machine-learning.md"


def _finding(severity: Severity, rule: str = "r.x") -> Finding:
    return Finding(rule=rule, severity=severity, title="t", principle=Principle.P2_2)


def test_severity_order_is_info_to_critical() -> None:
    ordered = sorted(
        [Severity.HIGH, Severity.INFO, Severity.CRITICAL, Severity.LOW, Severity.MEDIUM]
    )
    assert ordered == [
        Severity.INFO,
        Severity.LOW,
        Severity.MEDIUM,
        Severity.HIGH,
        Severity.CRITICAL,
    ]
    assert Severity.MEDIUM >= Severity.MEDIUM
    assert not Severity.LOW > Severity.MEDIUM


def test_severity_parse_accepts_case_and_names_choices_on_error() -> None:
    assert Severity.parse(" High ") is Severity.HIGH
    with pytest.raises(UsageError) as info:
        Severity.parse("severe")
    assert "critical" in str(info.value.hint)


def test_principles_match_the_ncsc_quick_reference_table() -> None:
    text = shared_file(REFERENCE).read_text(encoding="utf-8")
    quick = text[
        text.index("## Quick reference table") : text.index(
            "# Development prerequisites", text.index("## Quick")
        )
    ]
    numbers = sorted(set(re.findall(r"<p>(\d\.\d) ", quick)) | {"2.3"})
    assert [p.number for p in Principle] == numbers
    for principle in Principle:
        if principle is Principle.P2_3:  # the table groups 2.2 and 2.3 under one title
            continue
        assert principle.title in quick.replace("\u2019", "'"), principle


def test_principle_lookup_by_number() -> None:
    assert Principle.from_number("3.2") is Principle.P3_2
    with pytest.raises(UsageError):
        Principle.from_number("9.9")


def test_finding_json_round_trip_keeps_every_field() -> None:
    finding = Finding(
        rule="pickle.global.unsafe",
        severity=Severity.CRITICAL,
        title="os.system is called",
        detail="runs a shell command on load",
        principle=Principle.P2_2,
        location=Location(path="m.pt", member="archive/data.pkl", offset=17),
        techniques=("AML.T0010", "AML.T0011"),
        remediation="do not load it",
        evidence={"global": "os.system"},
    )
    text = json.dumps(finding.to_dict())
    assert Finding.from_dict(json.loads(text)) == finding


def test_finding_from_dict_names_the_missing_key() -> None:
    data = _finding(Severity.LOW).to_dict()
    del data["principle"]
    with pytest.raises(UsageError, match="'principle'"):
        Finding.from_dict(data)


def test_finding_needs_rule_and_title() -> None:
    with pytest.raises(UsageError):
        Finding(rule="", severity=Severity.LOW, title="x", principle=Principle.P1_1)


def test_threshold_helpers() -> None:
    findings = [_finding(Severity.LOW), _finding(Severity.HIGH), _finding(Severity.CRITICAL)]
    assert worst(findings) is Severity.CRITICAL
    assert worst([]) is None
    assert [f.severity for f in at_or_above(findings, Severity.HIGH)] == [
        Severity.HIGH,
        Severity.CRITICAL,
    ]


def test_location_text_shows_path_member_offset() -> None:
    assert str(Location("a.zip", "inner.pkl", 3)) == "a.zip → inner.pkl @ 3"
    assert str(Location("a.pkl")) == "a.pkl"
