"""Configs that make a loader run code: ``auto_map`` (trust_remote_code) and Hydra
``_target_`` nodes, reviewed as data and judged by the allowlist; look-alikes stay clean."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bastion.findings import Severity
from bastion.scan import scan
from bastion.scan.sniff import sniff_bytes


def _findings(path: Path) -> list[tuple[str, Severity, str]]:
    return sorted((f.rule, f.severity, f.title) for f in scan(path, workers=1).findings)


def test_auto_map_names_each_python_file_that_runs_on_load(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"model_type": "x", "auto_map": {
        "AutoConfig": "configuration_x.XConfig", "AutoModel": "modeling_x.XModel",
        "AutoModelForCausalLM": "modeling_x.XForCausalLM",
        "AutoTokenizer": ["other/repo--tokenization_x.XTok", None]}}))
    report = scan(config, workers=1)
    assert report.files[0].format.value == "hf-config"
    found = {f.evidence["file"]: f for f in report.findings}
    assert set(found) == {"configuration_x.py", "modeling_x.py", "other/repo:tokenization_x.py"}
    assert {f.severity for f in found.values()} == {Severity.HIGH}
    assert len(found["modeling_x.py"].evidence["auto_map"]) == 2  # both classes, one file


def test_a_tokenizer_config_is_reviewed_for_auto_map_too(tmp_path: Path) -> None:
    path = tmp_path / "tokenizer_config.json"
    path.write_text(json.dumps({"chat_template": "{{ messages[0]['content'] }}",
                                "auto_map": {"AutoTokenizer": ["tok.T", None]}}))
    assert [r for r, _, _ in _findings(path)] == ["repo.remote-code"]


@pytest.mark.parametrize(("text", "rule", "severity"), [
    ("hook:\n  _target_: os.system\n  command: id\n", "config.target.unsafe", Severity.CRITICAL),
    ("layers:\n  - _target_: builtins.eval\n    source: x\n", "config.target.unsafe",
     Severity.CRITICAL),
    ('{"model": {"_target_": "mylib.nets.Net", "width": 4}}', "config.target.unsafe",
     Severity.HIGH),
    ("model:\n  _class_: subprocess.Popen\n", "config.target.unsafe", Severity.CRITICAL),
    ("a: &x [1, 2]\nb: *x\n_target_: os.system\n", "config.target.unsafe",  # OmegaConf reads
     Severity.CRITICAL),                                                  # aliases: so do we
])
def test_hydra_targets_are_judged_by_the_allowlist(
    tmp_path: Path, canary: Path, text: str, rule: str, severity: Severity
) -> None:
    path = tmp_path / "model_config.yaml"
    path.write_text(text.replace("id", f"touch {canary}"))
    assert [(r, s) for r, s, _ in _findings(path)] == [(rule, severity)]
    assert not canary.exists()


def test_a_reviewed_target_passes(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text("name: run\nparams:\n  _target_: collections.OrderedDict\n")
    report = scan(path, workers=1)
    assert report.files[0].format.value == "hydra-config" and report.findings == ()


@pytest.mark.parametrize("data", [
    b'{"note": "auto_map is explained in the docs"}',
    b"We describe the _target_ key below, in prose.\n",
    b"auto_map: not json\n",
])
def test_look_alikes_are_not_configs(data: bytes) -> None:
    assert sniff_bytes(data).value == "unknown"


def test_python_source_that_spells_a_target_is_not_a_config(tmp_path: Path) -> None:
    """A loader cannot read what does not parse: code holding a Hydra-style dict stays code."""
    from bastion.scan.sniff import sniff_bytes

    code = b'def build():\n    return {"_target_": "os.system", "command": "id"}\n'
    assert sniff_bytes(code).value == "unknown"
    assert sniff_bytes(b'{"auto_map": {}}').value == "unknown"  # mentions it, names nothing


def test_an_alias_bomb_is_walked_once_per_node(tmp_path: Path) -> None:
    lines = ["a0: &a0 {_target_: os.system}"]
    lines += [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]" for i in range(1, 40)]
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n")
    assert [(r, s) for r, s, _ in _findings(path)] == [("config.target.unsafe", Severity.CRITICAL)]
