"""``bastion assess …`` through ``main([...])``: exit codes, reports, and nothing unscanned."""

from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from sklearn.neural_network import MLPClassifier
from tests.assess.conftest import Digits

from bastion.cli.app import main


class Canary:
    """Creates the canary file when unpickled (and only then)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, ...]:
        return (open, (str(self.path), "w"))


def _policy(path: Path, minimum: float = 0.9, typo: str = "eps") -> Path:
    path.write_text(yaml.safe_dump({
        "version": 1, "sample_size": 60,
        "tests": {"pgd_linf": {typo: [0.0, 0.1], "steps": 5}},
        "requirements": [{"test": "pgd_linf", "metric": "robust_accuracy", "eps": 0.1,
                          "min": minimum}]}))
    return path


@pytest.fixture
def files(tmp_path: Path, digits: Digits, digits_cnn: torch.nn.Module) -> dict[str, Path]:
    torch.save(digits_cnn, tmp_path / "cnn.pt")
    np.savez(tmp_path / "test.npz", X=digits.x_test, y=digits.y_test)
    return {"model": tmp_path / "cnn.pt", "data": tmp_path / "test.npz",
            "strict": _policy(tmp_path / "strict.yaml"),
            "lenient": _policy(tmp_path / "lenient.yaml", minimum=0.0)}


def test_policy_init_writes_a_policy_that_checks(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["assess", "policy", "init", "--risk", "high"]) == 0
    assert "square:" in capsys.readouterr().out
    out = tmp_path / "p.yaml"
    assert main(["assess", "policy", "init", "--risk", "low", "--output", str(out)]) == 0
    assert main(["assess", "policy", "init", "--output", str(out)]) == 2  # no overwrite
    assert "--force" in capsys.readouterr().err
    assert main(["assess", "policy", "check", str(out)]) == 0
    assert "tests: fgsm, pgd_linf" in capsys.readouterr().out
    assert main(["assess", "policy", "init", "--risk", "extreme"]) == 2


def test_a_failed_requirement_exits_1_with_json_evidence(
        files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["assess", "run", str(files["model"]), "--data", str(files["data"]),
                 "--policy", str(files["strict"]), "--format", "json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 1
    (failed,) = [f for f in doc["findings"] if f["rule"] == "assess.pgd_linf.robust_accuracy"]
    assert failed["severity"] == "high" and failed["principle"] == "2.1"
    assert failed["evidence"]["measured"] < 0.9 and failed["remediation"]
    summary = doc["summary"]
    assert summary["model_sha256"] == hashlib.sha256(files["model"].read_bytes()).hexdigest()
    assert summary["tests"][0]["attack"] == "pgd_linf" and summary["seed"] == 0
    assert main(["assess", "run", str(files["model"]), "--data", str(files["data"]),
                 "--policy", str(files["strict"]), "--fail-on", "critical"]) == 0


def test_a_met_policy_exits_0(files: dict[str, Path],
                              capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["assess", "run", str(files["model"]), "--data", str(files["data"]),
                 "--policy", str(files["lenient"])]) == 0
    out = capsys.readouterr().out
    assert "PGD (L∞)" in out and "passed: pgd_linf" in out


def test_a_policy_typo_exits_2_naming_the_field(files: dict[str, Path], tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    typo = _policy(tmp_path / "typo.yaml", typo="epsilon")
    assert main(["assess", "run", str(files["model"]), "--data", str(files["data"]),
                 "--policy", str(typo)]) == 2
    err = capsys.readouterr().err
    assert "tests.pgd_linf.epsilon" in err and "'eps'" in err and "Traceback" not in err


def test_a_model_that_fails_the_scan_is_never_loaded(
        files: dict[str, Path], tmp_path: Path, canary: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps(Canary(canary), protocol=4))
    code = main(["assess", "run", str(evil), "--data", str(files["data"]),
                 "--policy", str(files["lenient"])])
    err = capsys.readouterr().err
    assert code != 0 and not canary.exists()
    assert "error:" in err and "evil.pkl" in err and "Traceback" not in err


def test_html_report_and_saved_examples(files: dict[str, Path], tmp_path: Path) -> None:
    report, adv = tmp_path / "r.html", tmp_path / "adv.npz"
    code = main(["assess", "run", str(files["model"]), "--data", str(files["data"]),
                 "--policy", str(files["strict"]), "--format", "html", "--output",
                 str(report), "--save-adversarial", str(adv)])
    assert code == 1
    html = report.read_text()
    assert html.count("data:image/png") >= 3  # accuracy vs ε, per class, image grid
    assert "Clean and adversarial images" in html
    with np.load(adv, allow_pickle=False) as saved:
        assert saved["x_adv"].shape == (60, 1, 8, 8)


def test_white_box_tests_on_a_scikit_learn_model_fail_in_sarif(
        tmp_path: Path, digits: Digits, digits_mlp: MLPClassifier,
        files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "mlp.pkl").write_bytes(pickle.dumps(digits_mlp))
    np.savez(tmp_path / "flat.npz", X=digits.x_test.reshape(len(digits.x_test), -1),
             y=digits.y_test)
    code = main(["assess", "run", str(tmp_path / "mlp.pkl"), "--data",
                 str(tmp_path / "flat.npz"), "--policy", str(files["lenient"]),
                 "--format", "sarif"])
    sarif = json.loads(capsys.readouterr().out)
    rules = {r["ruleId"] for r in sarif["runs"][0]["results"]}
    assert code == 1 and {"assess.test.not_run", "assess.pgd_linf.robust_accuracy"} <= rules


def test_a_terminal_gets_a_progress_bar_per_test(digits: Digits,
                                                 digits_cnn: torch.nn.Module) -> None:
    import io

    from rich.console import Console
    from tests.assess.conftest import policy

    from bastion.assess import assess
    from bastion.cli._context import State
    from bastion.cli.assess import _progress
    from bastion.models import as_predictor

    screen = io.StringIO()
    st = State(err=Console(file=screen, force_terminal=True, width=100))
    pol = policy({"fgsm": {"eps": [0.0, 0.1]},
                  "hopskipjump": {"eps": [1.0], "samples": 3, "max_queries": 60}},
                 sample_size=20)
    with _progress(st) as bars:
        assert bars is not None
        assess(as_predictor(digits_cnn), digits.x_test, digits.y_test, pol, progress=bars)
    shown = screen.getvalue()
    assert "fgsm" in shown and "hopskipjump" in shown and "2/2" in shown and "3/3" in shown
    with _progress(State(err=Console(file=io.StringIO(), force_terminal=False))) as none:
        assert none is None  # quiet in pipes


def test_a_registered_version_is_assessed_recorded_and_gates_its_release(
    files: dict[str, Path], workspace: object, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from bastion.store.workspace import Workspace

    assert isinstance(workspace, Workspace)
    monkeypatch.setenv("BASTION_HOME", str(workspace.settings.home))
    assert main(["model", "add", "cnn", str(files["model"])]) == 0
    assert main(["grant", "cnn", "rev", "reviewer"]) == 0
    assert main(["review", "request", "cnn@1"]) == 0
    # no policy given and none set for the workspace: a usage error, nothing run
    assert main(["assess", "run", "cnn@1", "--data", str(files["data"])]) == 2
    assert "no release policy" in capsys.readouterr().err
    assert main(["assess", "policy", "release", str(files["strict"])]) == 0
    assert main(["assess", "run", "cnn@1", "--data", str(files["data"])]) == 1
    assert "recorded assessment #1 of cnn@1: failed" in capsys.readouterr().err
    monkeypatch.setenv("BASTION_ACTOR", "rev")
    assert main(["review", "approve", "cnn@1"]) == 2
    assert "its assessment under it failed" in capsys.readouterr().err
    monkeypatch.setenv("BASTION_ACTOR", "tester")
    assert main(["assess", "policy", "release", str(files["lenient"])]) == 0
    assert main(["assess", "run", "cnn@production", "--data", str(files["data"])]) == 2
    capsys.readouterr()  # not an alias yet: nothing to assess
    assert main(["assess", "run", "cnn@1", "--data", str(files["data"]),
                 "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["summary"]["source"] == "cnn@1:cnn.pt"
    assert doc["summary"]["model_sha256"] == hashlib.sha256(
        files["model"].read_bytes()).hexdigest()
    monkeypatch.setenv("BASTION_ACTOR", "rev")
    assert main(["review", "approve", "cnn@1"]) == 0
    monkeypatch.setenv("BASTION_ACTOR", "tester")
    assert main(["alias", "set", "cnn", "production", "1"]) == 0
    assert main(["show", "cnn@1", "--format", "json"]) == 0
    shown = json.loads(capsys.readouterr().out)["assessments"]
    assert [(a["passed"], a["stale"]) for a in shown] == [(False, True), (True, False)]


def test_without_a_policy_or_a_workspace_the_error_says_to_write_a_policy(
        files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["assess", "run", str(files["model"]), "--data", str(files["data"])]) == 2
    err = capsys.readouterr().err
    assert "no --policy given" in err and "bastion assess policy init" in err
