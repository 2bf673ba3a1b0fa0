"""Chat templates in Hugging Face tokenizer configs, reviewed like GGUF's, never rendered.

The files are Meta-Llama-3-8B-Instruct's ``tokenizer_config.json`` as transformers'
``save_pretrained`` writes it (``write_tokenizer_config``; transformers is not installed).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, given, settings
from tests.scan.corpus_formats import (
    LLAMA3_TEMPLATE,
    MALICIOUS_TEMPLATE,
    OBFUSCATED_TEMPLATE,
    QWEN2_TEMPLATE,
    tokenizer_config,
    write_tokenizer_config,
)
from tests.scan.formats.conftest import scan_file

from bastion.findings import Finding, Location, Severity
from bastion.scan.formats import tokenizer
from bastion.scan.formats.tokenizer import (
    TokenizerConfigScanner,
    is_tokenizer_config,
    probe_tokenizer_config,
)
from bastion.scan.interface import ScanLimits, Source

SCANNER = TokenizerConfigScanner()


def _written(tmp_path: Path, template: object) -> Path:
    path = tmp_path / "tokenizer_config.json"
    write_tokenizer_config(path, template)
    return path


def _probe(path: Path) -> bool:
    data = path.read_bytes()
    with path.open("rb") as stream:
        return probe_tokenizer_config(data[: 1 << 16], stream, len(data))


@pytest.mark.parametrize("template", [
    LLAMA3_TEMPLATE,
    QWEN2_TEMPLATE,
    [{"name": "default", "template": LLAMA3_TEMPLATE},
     {"name": "chatml", "template": QWEN2_TEMPLATE}],
    {"default": LLAMA3_TEMPLATE},
    None,
])
def test_real_templates_are_clean(tmp_path: Path, template: object) -> None:
    path = _written(tmp_path, template)
    assert _probe(path)
    assert scan_file(SCANNER, path) == ([], [])


@pytest.mark.parametrize("template", [MALICIOUS_TEMPLATE, OBFUSCATED_TEMPLATE])
def test_template_reaching_python_internals_is_critical(tmp_path: Path, canary: Path,
                                                       template: str) -> None:
    path = _written(tmp_path, template.replace("CANARY", str(canary)))
    (found,) = scan_file(SCANNER, path)[0]
    assert (found.rule, found.severity) == ("tokenizer.template.internals", Severity.CRITICAL)
    assert found.evidence["key"] == "chat_template"
    assert any("__globals__" in line for line in found.evidence["issues"])
    assert found.techniques == ("AML.T0010.003", "AML.T0011.000")
    assert not canary.exists()


def test_named_templates_are_each_reviewed(tmp_path: Path) -> None:
    path = _written(tmp_path, [{"name": "default", "template": LLAMA3_TEMPLATE},
                               {"name": "tool_use",
                                "template": "{{ lipsum.__globals__.os.popen('id').read() }}"}])
    (found,) = scan_file(SCANNER, path)[0]
    assert found.rule == "tokenizer.template.internals"
    assert found.evidence["key"] == "chat_template.tool_use"


@pytest.mark.parametrize(("template", "rule", "severity"), [
    ("{{ x|attr('__cla' ~ y) }}", "tokenizer.template.dynamic-name", Severity.HIGH),
    ("{% include 'other.jinja' %}", "tokenizer.template.loads", Severity.MEDIUM),
    ("{% for m in messages %}", "tokenizer.template.syntax", Severity.MEDIUM),
])
def test_same_review_and_severities_as_gguf(tmp_path: Path, template: str, rule: str,
                                            severity: Severity) -> None:
    (found,) = scan_file(SCANNER, _written(tmp_path, template))[0]
    assert (found.rule, found.severity) == (rule, severity)


@pytest.mark.parametrize(("template", "why"), [
    (42, "is a int"),
    ([{"name": "default"}, "{{ messages }}"], "2 chat_template entries"),
])
def test_entries_that_are_not_templates(tmp_path: Path, template: object, why: str) -> None:
    (found,) = scan_file(SCANNER, _written(tmp_path, template))[0]
    assert (found.rule, found.severity) == ("tokenizer.config.invalid", Severity.HIGH)
    assert why in found.detail


def test_invalid_json_and_non_object(tmp_path: Path) -> None:
    for text in ('{"chat_template": "{{ x }}"', "[1, 2]"):
        path = tmp_path / "t.json"
        path.write_text(text)
        (found,) = scan_file(SCANNER, path)[0]
        assert found.rule == "tokenizer.config.invalid"


def test_size_limit_from_the_engine_limits(tmp_path: Path) -> None:
    blob = _written(tmp_path, LLAMA3_TEMPLATE).read_bytes()
    (found,) = _scan_bytes(blob, ScanLimits(max_member_bytes=1000))
    assert (found.rule, found.severity) == ("tokenizer.limit", Severity.HIGH)


def test_probe_by_content_not_name() -> None:
    assert is_tokenizer_config(b'\xef\xbb\xbf  {"chat_template": null}')
    # json.loads decodes an escaped key, and so does transformers.
    assert is_tokenizer_config(b'{"chat\\u005ftemplate": "{{ x }}"}')
    for other in [b'{"model_type": "llama"}', b'{"nested": {"chat_template": "x"}}',
                  b'["chat_template"]', b"chat_template: x", b'{"chat_template": ', b""]:
        assert not is_tokenizer_config(other)


def test_probe_reads_past_the_head(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tokenizer_config(LLAMA3_TEMPLATE)
    config["added_tokens_decoder"].update({str(i): {"content": "x" * 200} for i in range(400)})
    path = tmp_path / "tokenizer_config.json"
    path.write_text(json.dumps(config, indent=2, sort_keys=True))
    assert path.read_bytes().index(b'"chat_template"') > 1 << 16 and _probe(path)
    # Past the parse limit the key is searched for in the bytes, so the limit gets reported.
    monkeypatch.setattr(tokenizer, "MAX_CONFIG", 1000)
    assert _probe(path)
    path.write_text(json.dumps({"data": ["x" * 100] * 100}))
    assert not _probe(path)
    # A large tokenizer.json escapes its vocabulary (\u0120...), but no key spells chat_template.
    path.write_text(json.dumps({"model": {"vocab": {f"\u0120tok{i}": i for i in range(500)}}}))
    assert b"\\u0120" in path.read_bytes() and not _probe(path)
    path.write_text(json.dumps({"chat\u005ftemplate": "x", "pad": "y" * 2000}, ensure_ascii=False)
                    .replace("chat_template", "chat\\u005Ftemplate"))
    assert _probe(path)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(['"', ":", " ", "chat", "_", "template", "\\u005f", "\\u005F",
                                 "\\u0063", "\\u", "x", "{"]), max_size=12))
def test_the_quick_key_search_finds_what_the_pattern_finds(parts: list[str]) -> None:
    data = "".join(parts).encode()
    for text in (data, b'{"chat_template" :' + data, data + b'"chat\\u005ftemplate":'):
        assert tokenizer._spells_key(text) == (tokenizer._KEY_BYTES.search(text) is not None)


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_fuzz_mutated_configs_never_raise(tmp_path: Path, data: st.DataObject) -> None:
    raw = bytearray(json.dumps({"bos_token": "<s>", "chat_template": [
        {"name": "default", "template": QWEN2_TEMPLATE},
        {"name": "x", "template": MALICIOUS_TEMPLATE.replace("CANARY", str(tmp_path / "C"))}],
    }).encode())
    for _ in range(data.draw(st.integers(1, 6))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    blob = bytes(raw[: data.draw(st.integers(1, len(raw)))])
    path = tmp_path / "tokenizer_config.json"
    path.write_bytes(blob)
    assert probe_tokenizer_config(blob, io.BytesIO(blob), len(blob)) in (True, False)
    for finding in scan_file(SCANNER, path)[0]:
        assert finding.rule.startswith("tokenizer.")
    assert not (tmp_path / "C").exists()


def _scan_bytes(blob: bytes, limits: ScanLimits | None = None) -> list[Finding]:
    source = Source(Location("tokenizer_config.json"), len(blob), lambda: io.BytesIO(blob))
    return [f for f in SCANNER.scan(source, limits or ScanLimits()) if isinstance(f, Finding)]


@settings(max_examples=200, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=30),
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.sampled_from(["name", "template", "x"]), inner,
                                      max_size=3), max_leaves=12))
def test_fuzz_any_chat_template_value(value: object) -> None:
    findings = _scan_bytes(json.dumps({"chat_template": value}).encode())
    assert {f.rule for f in findings} <= {
        "tokenizer.config.invalid", "tokenizer.template.syntax", "tokenizer.template.internals",
        "tokenizer.template.loads", "tokenizer.template.dynamic-name"}


def test_a_standalone_chat_template_is_reviewed(tmp_path: Path) -> None:
    """``chat_template.jinja`` (what newer transformers save beside the tokenizer) gets the
    same review as a template inside tokenizer_config.json; it passed as an unknown format."""
    from bastion.scan import scan

    evil = tmp_path / "chat_template.jinja"
    evil.write_text("{% for m in messages %}{{ m.content }}{% endfor %}"
                    "{{ cycler.__init__.__globals__.os.popen('id').read() }}")
    benign = tmp_path / "template.jinja"
    benign.write_text("{% for message in messages %}<|{{ message.role }}|>{{ message.content }}"
                      "{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}")
    report = scan(tmp_path, workers=1)
    assert {f.location.path: f.format.value for f in report.files} == {
        str(evil): "chat-template", str(benign): "chat-template"}
    assert [(f.rule, f.severity.value, f.location.path) for f in report.findings] == [
        ("tokenizer.template.internals", "critical", str(evil))]


def test_a_web_page_template_is_not_a_chat_template() -> None:
    from bastion.scan.sniff import sniff_bytes

    assert sniff_bytes(b"<html>{% block body %}{{ title }}{% endblock %}</html>\n").value == (
        "unknown")
