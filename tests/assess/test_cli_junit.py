"""``bastion assess run --format junit``: one testcase per policy requirement, as CI test
reporters read it, failing exactly where the command's exit code does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import yaml
from junitparser import Failure, JUnitXml
from tests.assess.conftest import Digits

from bastion.cli.app import main


def test_each_requirement_is_a_testcase(tmp_path: Path, digits: Digits,
                                        digits_cnn: torch.nn.Module) -> None:
    torch.save(digits_cnn, tmp_path / "cnn.pt")
    np.savez(tmp_path / "test.npz", X=digits.x_test, y=digits.y_test)
    policy = tmp_path / "policy.yaml"
    policy.write_text(yaml.safe_dump({
        "version": 1, "sample_size": 60,
        "tests": {"pgd_linf": {"eps": [0.0, 0.1], "steps": 5}},
        "requirements": [
            {"test": "pgd_linf", "metric": "clean_accuracy", "min": 0.5},
            {"test": "pgd_linf", "metric": "robust_accuracy", "eps": 0.1, "min": 0.99},
        ]}))
    report = tmp_path / "assess.xml"
    argv = ["assess", "run", str(tmp_path / "cnn.pt"), "--data", str(tmp_path / "test.npz"),
            "--policy", str(policy), "--format", "junit", "--output", str(report)]
    assert main(argv) == 1
    (suite,) = list(JUnitXml.fromfile(str(report)))
    cases = {c.name: c for c in suite}
    assert suite.name == "bastion assess run"
    met = cases["pgd_linf: clean accuracy ≥ 0.5"]
    assert met.is_passed and met.classname == "assess.pgd_linf.clean_accuracy"
    assert "measured" in (met.system_out or "")
    failed = cases["pgd_linf: robust accuracy at ε 0.1 ≥ 0.99"]
    (failure,) = failed.result
    assert isinstance(failure, Failure)
    assert failure.message == "failed: pgd_linf: robust accuracy at ε 0.1 ≥ 0.99"
    assert "remediation: Adversarially train" in (failure.text or "")
    assert "AML." in (failure.text or "")
    assert (suite.failures, suite.errors) == (1, 0)
    # under a looser --fail-on nothing fails, in the exit code or in the report
    assert main([*argv, "--fail-on", "critical"]) == 0
    (lenient,) = list(JUnitXml.fromfile(str(report)))
    assert lenient.failures == lenient.errors == 0
    assert lenient.tests == suite.tests

