"""Configs that make a loader run code: ``auto_map`` (trust_remote_code) and Hydra
``_target_`` nodes, reviewed as data and judged by the allowlist; look-alikes stay clean."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bastion.findings import Location, Severity
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


# -- a repository's own Python: what trust_remote_code runs, followed through its imports ------

def _repository(root: Path, files: dict[str, str], config: object | None = None) -> Path:
    """A model repository as save_pretrained with custom code leaves it (config.json with
    auto_map, the modeling files beside it), plus ``files``."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.json").write_text(json.dumps(config or {
        "architectures": ["XForCausalLM"], "model_type": "x",
        "auto_map": {"AutoConfig": "configuration_x.XConfig",
                     "AutoModelForCausalLM": "modeling_x.XForCausalLM"}}, indent=2))
    (root / "model.safetensors").write_bytes(b"\x02\x00\x00\x00\x00\x00\x00\x00{}")
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


_CONFIGURATION = """from transformers import PretrainedConfig


class XConfig(PretrainedConfig):
    model_type = "x"
"""
_MODELING = """import torch
from torch import nn

from .configuration_x import XConfig
from .modeling_utils import rotary
from . import layers
from .kernels.attention import flash

try:
    from .fast_path import fused
except ImportError:
    fused = None


class XForCausalLM(nn.Module):
    config_class = XConfig
"""


def _remote(report: Any) -> dict[str, tuple[str, Severity]]:
    return {f.evidence["file"]: (f.rule, f.severity) for f in report.findings
            if f.rule.startswith("repo.remote-code.")}


def test_auto_map_files_and_their_relative_imports_run_on_load(
    tmp_path: Path, canary: Path,
) -> None:
    payload = f"import os\nos.system('touch {canary}')\n"
    repo = _repository(tmp_path / "repo", {
        "configuration_x.py": _CONFIGURATION,
        "modeling_x.py": _MODELING,
        "modeling_utils.py": f"{payload}\ndef rotary(x):\n    return x\n",
        "layers.py": "from .modeling_utils import rotary\n",
        "kernels/__init__.py": "",
        "kernels/attention.py": "from ..modeling_utils import rotary\nfrom .. import layers\n"
                                "from ... import elsewhere\n\ndef flash():\n    pass\n",
        "train.py": payload,  # shipped, but nothing the loader imports reaches it
        "scripts/convert.py": payload,
    })
    report = scan(repo, workers=1)
    assert _remote(report) == {
        "configuration_x.py": ("repo.remote-code.file", Severity.HIGH),
        "modeling_x.py": ("repo.remote-code.file", Severity.HIGH),
        "modeling_utils.py": ("repo.remote-code.file", Severity.HIGH),
        "layers.py": ("repo.remote-code.file", Severity.HIGH),
        "kernels/__init__.py": ("repo.remote-code.file", Severity.HIGH),
        "kernels/attention.py": ("repo.remote-code.file", Severity.HIGH),
        "fast_path.py": ("repo.remote-code.missing", Severity.HIGH),
    }
    found = {f.evidence["file"]: f for f in report.findings
             if f.rule.startswith("repo.remote-code.")}
    utils = found["modeling_utils.py"]
    assert utils.location == Location(str(repo / "modeling_utils.py"))
    assert utils.evidence["trigger"] == "trust_remote_code=True"
    assert "trust_remote_code=True" in utils.title and utils.evidence["imports"] == ["os"]
    assert set(utils.evidence["via"]) == {  # every way in, not just the first
        "modeling_x.py: from .modeling_utils import rotary",
        "layers.py: from .modeling_utils import rotary",
        "kernels/attention.py: from ..modeling_utils import rotary"}
    assert found["modeling_x.py"].evidence["via"] == [
        "config.json: auto_map AutoModelForCausalLM → modeling_x.XForCausalLM"]
    assert found["kernels/attention.py"].evidence["outside"] == ["from ... import elsewhere"]
    missing = found["fast_path.py"]
    assert missing.location == Location(str(repo / "modeling_x.py"))
    assert "downloads" in missing.detail and "Hub" in missing.detail
    assert not canary.exists()


def test_an_auto_map_module_that_is_not_in_the_directory(tmp_path: Path) -> None:
    """A snapshot downloaded without its .py files: from_pretrained(repo_id, ...) fetches
    modeling_x.py at load time, code this scan never saw."""
    repo = _repository(tmp_path / "snapshot", {"configuration_x.py": _CONFIGURATION})
    found = {f.evidence["file"]: f for f in scan(repo, workers=1).findings
             if f.rule == "repo.remote-code.missing"}
    assert set(found) == {"modeling_x.py"}
    assert found["modeling_x.py"].location == Location(str(repo / "config.json"))
    assert found["modeling_x.py"].severity is Severity.HIGH


def test_a_tokenizer_config_auto_map_is_followed_too(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "tokenizer_config.json").write_text(json.dumps({
        "chat_template": "{{ messages[0]['content'] }}",
        "auto_map": {"AutoTokenizer": ["tokenization_x.XTokenizer", None]}}))
    (repo / "tokenization_x.py").write_text("from .vocab import load\n")
    (repo / "vocab.py").write_text("def load():\n    return {}\n")
    assert _remote(scan(repo, workers=1)) == {
        "tokenization_x.py": ("repo.remote-code.file", Severity.HIGH),
        "vocab.py": ("repo.remote-code.file", Severity.HIGH)}


def test_python_files_nothing_reaches_are_not_escalated(tmp_path: Path) -> None:
    """A repository without auto_map, and one whose modeling file imports nothing of its own:
    the other Python files there are not code the loader runs."""
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (plain / "modeling_x.py").write_text("import os\n")
    assert _remote(scan(plain, workers=1)) == {}
    repo = _repository(tmp_path / "repo", {
        "configuration_x.py": _CONFIGURATION, "modeling_x.py": "import torch\n",
        "utils.py": "from .modeling_x import XForCausalLM\n"})
    assert set(_remote(scan(repo, workers=1))) == {"configuration_x.py", "modeling_x.py"}


def test_a_config_scanned_alone_is_not_a_repository(tmp_path: Path) -> None:
    repo = _repository(tmp_path / "repo", {"configuration_x.py": _CONFIGURATION,
                                           "modeling_x.py": _MODELING})
    assert _remote(scan(repo / "config.json", workers=1)) == {}


def test_python_that_does_not_parse_is_reported_without_its_imports(tmp_path: Path) -> None:
    repo = _repository(tmp_path / "repo", {"configuration_x.py": _CONFIGURATION,
                                           "modeling_x.py": "def broken(:\n    from .x import y\n"})
    found = {f.evidence["file"]: f for f in scan(repo, workers=1).findings
             if f.rule == "repo.remote-code.file"}
    assert found["modeling_x.py"].evidence["parsed"] is False
    assert "not followed" in found["modeling_x.py"].detail


def test_import_chains_are_bounded(tmp_path: Path) -> None:
    chain = {f"m{i}.py": f"from .m{i + 1} import f\n" for i in range(12)}
    chain["modeling_x.py"] = "from .m0 import f\n"
    repo = _repository(tmp_path / "repo", {"configuration_x.py": _CONFIGURATION, **chain})
    rules = [f.rule for f in scan(repo, workers=1).findings if f.rule.startswith("repo.")]
    assert rules.count("repo.remote-code.limit") == 1
    assert rules.count("repo.remote-code.file") <= 11


def test_the_repository_review_follows_a_parallel_scan(tmp_path: Path) -> None:
    files = {"configuration_x.py": _CONFIGURATION, "modeling_x.py": "from .utils import f\n",
             "utils.py": "def f():\n    pass\n"}
    files |= {f"shard_{i:02d}.txt": "weights\n" for i in range(20)}  # enough for a pool
    repo = _repository(tmp_path / "repo", files)
    parallel = scan(repo, workers=2)
    assert set(_remote(parallel)) == {"configuration_x.py", "modeling_x.py", "utils.py"}
    assert [f.to_dict() for f in parallel.findings] == [
        f.to_dict() for f in scan(repo, workers=1).findings]


_FILLER: str = "".join(f"key_{i}: {'v' * 100}\n" for i in range(1_000))
"""About 110 KiB of plain YAML: more than the sniffer's 64 KiB head."""


def test_a_target_past_the_first_64_kib_is_found(tmp_path: Path) -> None:
    """Hydra reads the whole file: a target placed after the sniffer's head still runs."""
    path = tmp_path / "model_config.yaml"
    path.write_text(_FILLER + "hook:\n  _target_: os.system\n  command: id\n")
    assert path.stat().st_size > 1 << 16
    assert [(r, s) for r, s, _ in _findings(path)] == [
        ("config.target.unsafe", Severity.CRITICAL)]


def test_long_text_without_a_target_stays_unknown(tmp_path: Path) -> None:
    path = tmp_path / "notes.yaml"
    path.write_text(_FILLER + "last: _target_ is only mentioned in a value, not a key\n")
    report = scan(path, workers=1)
    assert report.files[0].format.value == "unknown"
    assert [f.rule for f in report.findings] == ["scan.format.unknown"]


def test_a_config_too_large_to_read_is_reported_not_passed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bastion.scan.formats import configs

    monkeypatch.setattr(configs, "MAX_CONFIG", 100_000)
    path = tmp_path / "model_config.yaml"
    path.write_text(_FILLER + "hook:\n  _target_: os.system\n")
    assert [(r, s) for r, s, _ in _findings(path)] == [("config.unreadable", Severity.HIGH)]
