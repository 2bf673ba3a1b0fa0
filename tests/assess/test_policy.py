"""Policies: presets, the published schema, and errors that name the field."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest
import yaml

from bastion.assess.interface import Attack, Norm, PolicyError
from bastion.assess.policy import Metric, Policy, Risk, policy_template, schema
from bastion.findings import Severity


def test_the_published_schema_is_a_valid_json_schema_and_accepts_every_preset() -> None:
    jsonschema.Draft202012Validator.check_schema(schema())
    for risk in Risk:
        jsonschema.validate(yaml.safe_load(policy_template(risk)), schema())


@pytest.mark.parametrize("risk", list(Risk))
def test_each_template_is_commented_and_reads_back_as_its_preset(risk: Risk) -> None:
    text = policy_template(risk)
    assert sum(line.lstrip().startswith("#") for line in text.splitlines()) >= 5
    written = Policy.from_yaml(text)
    assert written.digest == Policy.preset(risk).digest and written.risk is risk


def test_higher_risk_runs_more_and_asks_more() -> None:
    low, medium, high = (Policy.preset(r) for r in Risk)
    names = [{t.attack for t in p.tests} for p in (low, medium, high)]
    assert names[0] < names[1] < names[2] and Attack.SQUARE in names[2]
    assert low.sample_size < medium.sample_size < high.sample_size
    pgd = [next(r for r in p.requirements if r.test is Attack.PGD_LINF)
           for p in (medium, high)]
    assert pgd[0].eps == pgd[1].eps == 0.1 and pgd[0].minimum < pgd[1].minimum


def test_fields_are_read_with_their_defaults() -> None:
    policy = Policy.from_yaml("""
version: 1
tests:
  pgd_l2: {eps: [0, 0.5], steps: 7}
  hopskipjump: {eps: [1.0], norm: inf}
requirements:
  - {test: pgd_l2, metric: robust_accuracy, eps: 0.5, min: 0.6}
""")
    pgd, hsj = policy.tests
    assert (pgd.norm, pgd.steps, pgd.eps) == (Norm.L2, 7, (0.0, 0.5))
    assert hsj.norm is Norm.LINF and hsj.samples == 20 and hsj.max_queries == 1000
    (req,) = policy.requirements
    assert (req.metric, req.severity, str(req)) == (
        Metric.ROBUST_ACCURACY, Severity.HIGH, "pgd_l2: robust accuracy at ε 0.5 ≥ 0.6")


def test_comments_do_not_change_the_digest_but_values_do() -> None:
    text = "version: 1\ntests:\n  fgsm: {eps: [0.1]}\n"
    assert Policy.from_yaml(text).digest == Policy.from_yaml("# hi\n" + text).digest
    assert Policy.from_yaml(text).digest != Policy.from_yaml(text.replace("0.1", "0.2")).digest


@pytest.mark.parametrize(("text", "named", "hint"), [
    ("version: 1\ntests:\n  pgd_linf:\n    epss: [0.1]\n", "tests.pgd_linf.epss", "'eps'"),
    ("version: 1\ntests:\n  pgd_lnf: {eps: [0.1]}\n", "tests.pgd_lnf", "'pgd_linf'"),
    ("version: 1\nsead: 3\ntests:\n  fgsm: {eps: [0.1]}\n", "sead", "'seed'"),
    ("version: 1\ntests:\n  autopgd: {eps: [0.1], norm: 1}\n", "tests.autopgd.norm", "inf, 2"),
    ("version: 1\ntests:\n  fgsm: {eps: [0.1, -0.2]}\n", "tests.fgsm.eps[1]", ""),
    ("version: 1\ntests:\n  fgsm: {eps: [0.2, 0.1]}\n", "tests.fgsm.eps", "[0.1, 0.2]"),
    ("version: 1\ntests:\n  fgsm: {eps: [0.1]}\nrequirements:\n"
     "  - {test: fgsm, metric: robust_accuracy, eps: 0.3, min: 0.5}\n",
     "requirements[0].eps", "[0.1]"),
    ("version: 1\ntests:\n  fgsm: {eps: [0.1]}\nrequirements:\n"
     "  - {test: square, metric: robust_accuracy, eps: 0.1, min: 0.5}\n",
     "requirements[0].test", "tests.square"),
    ("version: 1\ntests:\n  fgsm: {eps: [0.1]}\nrequirements:\n"
     "  - {test: fgsm, metric: median_perturbation, min: 0.5}\n",
     "requirements[0]", "hopskipjump"),
    ("version: 1\ntests:\n  fgsm: {eps: [0.1]}\nrequirements:\n"
     "  - {test: fgsm, metric: robust_accuracy, eps: 0.1, min: 0.5, severity: huge}\n",
     "requirements[0].severity", "critical"),
])
def test_an_error_names_the_field_and_how_to_fix_it(text: str, named: str, hint: str) -> None:
    with pytest.raises(PolicyError) as caught:
        Policy.from_yaml(text, source="p.yaml")
    assert caught.value.message.startswith("p.yaml: ")
    assert named in caught.value.message
    assert hint in (caught.value.hint or "")


def test_unreadable_or_malformed_files_are_policy_errors(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read") as caught:
        Policy.from_file(tmp_path / "missing.yaml")
    assert "policy init" in (caught.value.hint or "")
    (tmp_path / "bad.yaml").write_text("version: 1\ntests: {fgsm: {eps: [0.1]}\n")
    with pytest.raises(PolicyError, match="line 3"):
        Policy.from_file(tmp_path / "bad.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(PolicyError, match="mapping"):
        Policy.from_file(tmp_path / "list.yaml")
