"""Black-box tests against a model served by a real MLServer over loopback: the same attack
finds the same weakness through the URL as in process, and white-box tests do not run."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import joblib
import numpy as np
import pytest
import yaml
from sklearn.neural_network import MLPClassifier
from tests.assess.conftest import Digits, policy
from tests.mlserver import serve_sklearn

from bastion.assess import EvasionResult, assess
from bastion.cli.app import main
from bastion.models import as_predictor
from bastion.models.remote import RemotePredictor


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory, digits_mlp: MLPClassifier) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("served")
    joblib.dump(digits_mlp, folder / "mlp.joblib")
    with serve_sklearn(folder / "mlp.joblib", folder / "srv", name="digits") as served:
        yield served


def _flat(digits: Digits) -> np.ndarray:
    return digits.x_test.reshape(len(digits.x_test), -1)


def test_hopskipjump_through_the_url_matches_in_process(
        url: str, digits: Digits, digits_mlp: MLPClassifier) -> None:
    pol = policy({"hopskipjump": {"eps": [0.5, 1.0, 2.0], "samples": 10, "max_queries": 300}})
    local = assess(as_predictor(digits_mlp), _flat(digits), digits.y_test, pol)
    with RemotePredictor.connect(url) as remote:
        served = assess(remote, _flat(digits), digits.y_test, pol)
    (near,), (far,) = local.results, served.results
    assert isinstance(near, EvasionResult) and isinstance(far, EvasionResult)
    assert far.samples == near.samples == 10
    assert far.clean_accuracy == pytest.approx(near.clean_accuracy)
    assert abs(far.success_rate - near.success_rate) <= 0.2  # type: ignore[operator]
    assert far.median_perturbation is not None and near.median_perturbation is not None
    assert far.median_perturbation == pytest.approx(near.median_perturbation, rel=0.3)
    for a, b in zip(near.curve, far.curve, strict=True):
        assert abs(a.robust_accuracy - b.robust_accuracy) <= 0.2


def test_the_command_takes_a_url_and_runs_black_box_only(
        url: str, digits: Digits, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    np.savez(tmp_path / "test.npz", X=_flat(digits), y=digits.y_test)
    (tmp_path / "p.yaml").write_text(yaml.safe_dump({
        "version": 1, "sample_size": 40,
        "tests": {"fgsm": {"eps": [0.0, 0.1]},
                  "hopskipjump": {"eps": [0.5, 2.0], "samples": 6, "max_queries": 200}}}))
    code = main(["assess", "run", url, "--data", str(tmp_path / "test.npz"), "--policy",
                 str(tmp_path / "p.yaml"), "--format", "json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 1  # FGSM cannot run without gradients: a failed requirement, not a pass
    not_run = [f for f in doc["findings"] if f["rule"] == "assess.test.not_run"]
    assert len(not_run) == 1 and not_run[0]["severity"] == "high"
    assert "FGSM" in not_run[0]["title"] or "fgsm" in not_run[0]["title"]
    (hsj,) = [t for t in doc["summary"]["tests"] if t["attack"] == "hopskipjump"]
    assert hsj["samples"] == 6 and hsj["median_queries"] <= 200
    assert doc["summary"]["source"] == url and doc["summary"]["model_sha256"] is None
    assert main(["assess", "run", url.replace("digits", "ghost"), "--data",
                 str(tmp_path / "test.npz"), "--policy", str(tmp_path / "p.yaml")]) == 2
    assert "HTTP 404" in capsys.readouterr().err
