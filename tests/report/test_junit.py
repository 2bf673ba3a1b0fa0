"""JUnit XML: read back as CI reporters read it (junitparser), counts that match the exit code,
fail-closed outcomes, and input that XML cannot carry."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime

import pytest
from junitparser import Error, Failure, JUnitXml, Skipped

from bastion.findings import Finding, Location, Principle, Severity, at_or_above
from bastion.report.junit import (
    Checked,
    Outcome,
    could_not_check,
    junit_document,
    junit_xml,
    outcome,
)

WHEN = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)


def _finding(rule: str, severity: Severity, title: str, where: Location | None = None,
             **extra: object) -> Finding:
    return Finding(rule=rule, severity=severity, title=title, principle=Principle.P2_2,
                   location=where, **extra)  # type: ignore[arg-type]


def _scan_findings() -> list[Finding]:
    return [
        _finding("pickle.global.dangerous", Severity.CRITICAL, "posix.system is imported",
                 Location("m.pt", "archive/data.pkl", 40), detail="runs code when loaded",
                 remediation="do not load", techniques=("AML.T0010.003", "AML.T0011.000"),
                 evidence={"global": "posix.system"}),
        _finding("archive.zip.truncated", Severity.HIGH, "the zip ends early", Location("t.pt")),
        _finding("numpy.data.truncated", Severity.MEDIUM, "fewer bytes than the header says",
                 Location("w.npy")),
        _finding("onnx.domain.unknown", Severity.MEDIUM, "custom operator domain",
                 Location("n.onnx")),
    ]


def _checked() -> list[Checked]:
    return [Checked(Location(name)) for name in ("m.pt", "t.pt", "w.npy", "n.onnx", "ok.onnx")]


def _parse(text: str) -> JUnitXml:
    return JUnitXml.fromstring(text.encode("utf-8"))


def test_a_reporter_reads_one_suite_with_a_case_per_finding_and_per_clean_file() -> None:
    xml = _parse(junit_xml(_scan_findings(), tool="scan", fail_on=Severity.HIGH,
                           checked=_checked(), elapsed_s=1.25, timestamp=WHEN))
    (suite,) = list(xml)
    assert suite.name == "bastion scan"
    assert (suite.tests, suite.failures, suite.errors, suite.skipped) == (5, 1, 1, 1)
    assert suite.time == 1.25
    cases = {(c.classname, c.name): c for c in suite}
    dangerous = cases["pickle.global.dangerous", "m.pt → archive/data.pkl @ 40"]
    (failure,) = dangerous.result
    assert isinstance(failure, Failure)
    assert failure.message == "posix.system is imported"
    assert failure.type == "pickle.global.dangerous"
    for part in ("runs code when loaded", "remediation: do not load", "NCSC principle: 2.2",
                 "AML.T0010.003, AML.T0011.000", "severity: critical (at or above --fail-on high)",
                 '"global": "posix.system"'):
        assert part in (failure.text or ""), part
    # an unreadable file at the threshold is an error: the check could not be done
    assert isinstance(cases["archive.zip.truncated", "t.pt"].result[0], Error)
    # below the threshold a truncated file is skipped, never passed (fail closed)...
    assert isinstance(cases["numpy.data.truncated", "w.npy"].result[0], Skipped)
    # ...while an ordinary finding below it passes, with the finding in system-out
    onnx = cases["onnx.domain.unknown", "n.onnx"]
    assert onnx.is_passed and "custom operator domain" in (onnx.system_out or "")
    clean = cases["bastion.scan", "ok.onnx"]
    assert clean.is_passed and clean.system_out == "ok.onnx: no findings"
    # files with a finding get no passing testcase of their own
    assert ("bastion.scan", "m.pt") not in cases and ("bastion.scan", "t.pt") not in cases


@pytest.mark.parametrize("fail_on", list(Severity))
def test_failures_and_errors_are_exactly_what_the_exit_code_counts(fail_on: Severity) -> None:
    findings = _scan_findings()
    root = junit_document(findings, tool="scan", fail_on=fail_on, checked=_checked())
    suite = root.find("testsuite")
    assert suite is not None
    cases = suite.findall("testcase")
    assert int(root.get("failures", "")) + int(root.get("errors", "")) == len(
        at_or_above(findings, fail_on))
    # every count on both elements is the count of the elements it summarises
    for element in (root, suite):
        assert int(element.get("tests", "")) == len(cases)
        for kind, attribute in (("failure", "failures"), ("error", "errors"),
                                ("skipped", "skipped")):
            assert int(element.get(attribute, "")) == sum(
                1 for c in cases if c.find(kind) is not None), (kind, fail_on)
    for case in cases:
        assert case.get("name") and case.get("classname") and case.get("time") is not None
        assert len([child for child in case if child.tag != "system-out"]) <= 1


def test_outcomes_fail_closed() -> None:
    unreadable = _finding("archive.7z.unreadable", Severity.HIGH, "cannot read")
    assert could_not_check(unreadable)
    assert outcome(unreadable, Severity.HIGH) is Outcome.ERROR
    assert outcome(unreadable, Severity.CRITICAL) is Outcome.SKIPPED
    for rule in ("scan.limit.time", "assess.test.not_run", "assess.test.incomplete",
                 "deps.unresolved", "scan.format.unknown", "scan.error"):
        assert could_not_check(_finding(rule, Severity.INFO, "x")), rule
    for rule in ("pickle.global.dangerous", "deps.vulnerable", "deps.db.age",
                 "assess.pgd_linf.robust_accuracy", "scan.polyglot"):
        assert not could_not_check(_finding(rule, Severity.INFO, "x")), rule
    found = _finding("deps.vulnerable", Severity.MEDIUM, "jinja2 2.0")
    assert outcome(found, Severity.MEDIUM) is Outcome.FAILED
    assert outcome(found, Severity.HIGH) is Outcome.PASSED


def test_each_requirement_of_an_assessment_is_a_testcase_named_by_the_requirement() -> None:
    model = Location("/tmp/run-1/cnn.pt")
    findings = [
        _finding("assess.pgd_linf.robust_accuracy", Severity.INFO,
                 "passed: pgd_linf robust_accuracy at ε 0.05 ≥ 0.5", model,
                 evidence={"requirement": "pgd_linf robust_accuracy at ε 0.05 ≥ 0.5",
                           "measured": 0.8}),
        _finding("assess.pgd_linf.robust_accuracy", Severity.HIGH,
                 "failed: pgd_linf robust_accuracy at ε 0.1 ≥ 0.9", model,
                 evidence={"requirement": "pgd_linf robust_accuracy at ε 0.1 ≥ 0.9",
                           "measured": 0.2}),
        _finding("assess.test.not_run", Severity.HIGH, "AutoPGD could not run: not torch",
                 model),
    ]
    suite = next(iter(_parse(junit_xml(findings, tool="assess run", fail_on=Severity.HIGH))))
    cases = {c.name: c for c in suite}
    assert suite.name == "bastion assess run"
    passed = cases["pgd_linf robust_accuracy at ε 0.05 ≥ 0.5"]
    assert passed.is_passed and '"measured": 0.8' in (passed.system_out or "")
    failed = cases["pgd_linf robust_accuracy at ε 0.1 ≥ 0.9"]
    assert isinstance(failed.result[0], Failure)
    assert failed.classname == "assess.pgd_linf.robust_accuracy"
    assert isinstance(cases[str(model)].result[0], Error)


def test_no_findings_and_nothing_listed_is_still_one_passing_testcase() -> None:
    suite = next(iter(_parse(junit_xml([], tool="deps audit", fail_on=Severity.HIGH))))
    (case,) = list(suite)
    assert (case.classname, case.name) == ("bastion.deps.audit", "no findings")
    assert case.is_passed and suite.tests == 1 and suite.failures == 0


def test_a_member_or_a_version_of_a_checked_thing_concerns_it() -> None:
    package = Checked(Location("requirements.txt", "jinja2"), name="requirements.txt → x")
    assert package.concerned_by(_finding("deps.vulnerable", Severity.HIGH, "v",
                                         Location("requirements.txt", "jinja2==2.0")))
    assert package.concerned_by(_finding("deps.unresolved", Severity.HIGH, "u",
                                         Location("requirements.txt", "jinja2")))
    assert not package.concerned_by(_finding("deps.vulnerable", Severity.HIGH, "v",
                                             Location("requirements.txt", "jinja2-ext==1")))
    assert not package.concerned_by(_finding("deps.vulnerable", Severity.HIGH, "v",
                                             Location("other.txt", "jinja2==2.0")))
    archive = Checked(Location("m.zip", "inner.zip"))
    assert archive.concerned_by(_finding("pickle.global.dangerous", Severity.HIGH, "p",
                                         Location("m.zip", "inner.zip!data.pkl")))
    assert not archive.concerned_by(_finding("pickle.global.dangerous", Severity.HIGH, "p"))


def test_repeated_case_names_stay_distinct() -> None:
    twice = [_finding("pickle.global.unknown", Severity.HIGH, f"g{i}", Location("a.pkl"))
             for i in range(2)]
    names = [c.name for c in next(iter(_parse(junit_xml(twice, tool="scan",
                                                         fail_on=Severity.HIGH))))]
    assert sorted(names) == ["a.pkl", "a.pkl #2"]


def test_characters_xml_cannot_carry_are_escaped_not_written() -> None:
    """A hostile pickle names a global with control characters and a lone surrogate; the
    report must still parse (an unparseable report would hide the finding)."""
    hostile = _finding("pickle.global.dangerous", Severity.CRITICAL,
                       "os.system\x00\x1b[31m\udcff", Location("e\x07vil.pkl"),
                       evidence={"global": "a\x0bb\udcfe"})
    text = junit_xml([hostile], tool="scan", fail_on=Severity.HIGH)
    text.encode("utf-8")  # no lone surrogate survives
    case = next(iter(next(iter(_parse(text)))))
    assert case.name == "e\\x07vil.pkl"
    assert case.result[0].message == "os.system\\x00\\x1b[31m\\udcff"
    assert '"global": "a\\u000bb\\udcfe"' in (case.result[0].text or "")  # JSON, then XML


def test_the_document_has_a_declaration_and_a_timestamp_reporters_accept() -> None:
    text = junit_xml([], tool="scan", fail_on=Severity.HIGH, timestamp=WHEN)
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<testsuites')
    suite = ET.fromstring(text).find("testsuite")
    assert suite is not None and suite.get("timestamp") == "2026-12-01T09:30:00"
    properties = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert properties["bastion.fail_on"] == "high" and properties["bastion.tool"] == "scan"
