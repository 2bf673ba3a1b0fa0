"""Every format fixture through the real engine: sniffed by content, the exact rule reported,
benign files clean, and the canary never created."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.scan.corpus import Written
from tests.scan.corpus_formats import FORMAT_BENIGN, FORMAT_MALICIOUS, write_format_corpus

from bastion.findings import Finding, Severity
from bastion.scan import ScanReport, scan


@dataclass(frozen=True)
class Scanned:
    written: dict[str, Written]
    report: ScanReport
    canary: Path


@pytest.fixture(scope="module")
def scanned(tmp_path_factory: pytest.TempPathFactory) -> Scanned:
    root = tmp_path_factory.mktemp("formats")
    canary = root / "CANARY-was-executed"
    written = write_format_corpus(root / "files", canary)
    assert not canary.exists()  # building never leaves it behind
    return Scanned({w.case.name: w for w in written}, scan(root / "files"), canary)


def _findings_for(scanned: Scanned, name: str) -> list[Finding]:
    path = str(scanned.written[name].path)
    return [f for f in scanned.report.findings
            if f.location is not None and f.location.path.startswith(path)]


@pytest.mark.parametrize("case", FORMAT_BENIGN, ids=lambda c: c.name)
def test_benign_has_no_finding_at_medium_or_above(scanned: Scanned, case: object) -> None:
    name = case.name  # type: ignore[attr-defined]
    assert [f for f in _findings_for(scanned, name) if f.severity >= Severity.MEDIUM] == []


@pytest.mark.parametrize("case", FORMAT_MALICIOUS, ids=lambda c: c.name)
def test_malicious_reports_the_exact_rule(scanned: Scanned, case: object) -> None:
    name, rule = case.name, case.rule  # type: ignore[attr-defined]
    evidence = case.evidence  # type: ignore[attr-defined]
    matching = [f for f in _findings_for(scanned, name) if f.rule == rule]
    assert matching, f"{name}: {rule} not in {[f.rule for f in _findings_for(scanned, name)]}"
    found = matching[0]
    assert found.severity >= Severity.MEDIUM
    assert found.principle.number == "2.2" and found.techniques
    for key, value in evidence.items():
        assert found.evidence.get(key) == value, (key, found.evidence)


def test_formats_are_sniffed_by_content(scanned: Scanned) -> None:
    formats = {f.location.path.rsplit("/", 1)[-1] + (f"!{f.location.member}"
                                                     if f.location.member else ""): f.format.value
               for f in scanned.report.files}
    assert formats["keras_benign.keras"] == "keras"
    assert formats["keras_benign.keras!model.weights.h5"] == "hdf5"
    assert formats["keras_benign.h5"] == "hdf5"
    assert formats["onnx_benign.onnx"] == "onnx"
    assert formats["saved_model.pb"] == "tf-savedmodel"
    assert formats["gguf_benign.gguf"] == "gguf"
    assert formats["safetensors_benign.safetensors"] == "safetensors"
    assert formats["keras_metadata.pb"] == "tf-savedmodel"
    assert formats["tokenizer_config_llama3.json"] == "hf-tokenizer-config"


def test_renamed_files_are_scanned_as_what_they_are(scanned: Scanned, tmp_path: Path) -> None:
    """Extensions mean nothing: a Keras archive called .bin and a GGUF called .txt."""
    for name, disguise in [("keras_lambda.keras", "weights.bin"),
                           ("gguf_template_globals.gguf", "notes.txt")]:
        (tmp_path / disguise).write_bytes(scanned.written[name].path.read_bytes())
    rules = {f.rule for f in scan(tmp_path).findings}
    assert {"keras.lambda.bytecode", "gguf.template.internals"} <= rules


def test_canary_never_created(scanned: Scanned) -> None:
    assert scanned.report.findings  # the scan ran over the malicious files
    assert not scanned.canary.exists()


def test_cli_exit_codes_and_sarif(scanned: Scanned, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from bastion.cli.app import main

    gguf = str(scanned.written["gguf_template_globals.gguf"].path)
    assert main(["scan", gguf, "--format", "sarif"]) == 1
    sarif = json.loads(capsys.readouterr().out)
    rule_ids = {r["ruleId"] for run in sarif["runs"] for r in run["results"]}
    assert "gguf.template.internals" in rule_ids
    # A custom ONNX domain is medium: it fails a medium gate, not the default (high) one.
    custom = str(scanned.written["onnx_custom_domain_in_subgraph.onnx"].path)
    assert main(["scan", custom]) == 0
    assert main(["scan", custom, "--fail-on", "medium"]) == 1
    assert main(["scan", str(scanned.written["onnx_benign.onnx"].path), "--fail-on", "low"]) == 0
    assert not scanned.canary.exists()
